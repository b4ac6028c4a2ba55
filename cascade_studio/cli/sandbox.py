"""`sandbox`: serve the built-in OpenAI-compatible sandbox (simulated models)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sb = sub.add_parser("sandbox", help="serve the built-in OpenAI-compatible sandbox")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=0)
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--latency-scale", type=float, default=1.0)
    sb.add_argument("--faults", default="", metavar="SPEC", help="e.g. 429=0.1,500=0.02,503=0.02,slow=0.05,drop=0.01")
    sb.add_argument("--job-seconds", type=float, default=6.0)
    sb.add_argument("--judge-error-rate", type=float, default=0.1, metavar="F",
                    help="share of wrong verdicts of the judge model judge-sim (judge-sim-NN: NN%% wrong), 0-1")
    sb.add_argument("--data-dir", metavar="DIR",
                    help="where the fine-tuned models it makes are remembered across restarts (default: the app's "
                         "sandbox folder, the one the demo uses)")
    sb.add_argument("--forget", action="store_true", help="remember nothing: fine-tuned models last one run")
    sb.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cascade_studio.sandbox.server import serve_forever
    from cascade_studio.services.paths import sandbox_dir

    data_dir = None if args.forget else Path(args.data_dir).expanduser() if args.data_dir else sandbox_dir()
    return serve_forever(host=args.host, port=args.port, seed=args.seed, latency_scale=args.latency_scale,
                         faults=args.faults, job_seconds=args.job_seconds, data_dir=data_dir,
                         judge_error_rate=args.judge_error_rate)
