"""`serve`: the cascade in production, an OpenAI-compatible gateway that applies an exported policy."""

from __future__ import annotations

import argparse

from cascade_studio.core.traffic import CONTENT_MODES, DEFAULT_CONTENT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a policy as an OpenAI-compatible gateway (no GUI)")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy (cascade-studio policy export FILE)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--log", metavar="DIR", help="write every request to JSONL files in DIR (rotated)")
    p.add_argument("--log-content", choices=CONTENT_MODES, default=DEFAULT_CONTENT,
                   help="what the log keeps of messages and answers: none, hash (default) or full")
    p.add_argument("--log-max-mb", type=float, default=64, help="start a new log file past this size (MB)")
    p.add_argument("--shadow-rate", type=float, default=0.0, metavar="R",
                   help="share of lower-tier answers also sent to the teacher in the background (0-1)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes serving the same port")
    p.add_argument("--otlp-endpoint", metavar="URL",
                   help="also export OpenTelemetry GenAI spans over OTLP/HTTP, e.g. http://localhost:4318/v1/traces")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cascade_studio.gateway.app import GatewayConfig
    from cascade_studio.gateway.server import serve_forever

    config = GatewayConfig(policy=args.policy, host=args.host, port=args.port, log_dir=args.log,
                           log_content=args.log_content, shadow_rate=args.shadow_rate, workers=args.workers,
                           max_log_bytes=int(args.log_max_mb * 1024 * 1024), otlp_endpoint=args.otlp_endpoint)
    return serve_forever(config)
