"""Run the gateway: in-process on a free port (tests, benchmarks) or in the foreground
(`cascade-studio serve`), as one process or several (`--workers`: forked after the imports, sharing
one listening socket; each worker loads the policy and writes log files of its own)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import uvicorn

from cascade_studio.core.errors import UserError
from cascade_studio.gateway.app import CONFIG_ENV, Gateway, GatewayConfig
from cascade_studio.http_server import AppServer, bind, serve_workers


class GatewayServer:
    """`async with GatewayServer(config) as gw: gw.base_url` — serves on 127.0.0.1 on a free port
    (config.port 0) or the configured one."""

    def __init__(self, config: GatewayConfig, **gateway_args: Any) -> None:
        self.gateway = Gateway(config, **gateway_args)
        self.config = config
        self._server = AppServer(self.gateway.app, config.host, config.port)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    async def start(self) -> str:
        await self._server.start()
        return self.base_url

    async def stop(self) -> None:
        await self._server.stop()
        await self.gateway.aclose()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def check_startup(config: GatewayConfig) -> Gateway:
    """Load the policy and find every tier's key before listening: a bad file or a missing key is a
    message at once, not a failure on every request."""
    gateway = Gateway(config)
    problems = gateway.cascade.key_problems()
    if problems:
        raise UserError("cannot serve the policy: " + "; ".join(problems))
    return gateway


def serve_forever(config: GatewayConfig) -> int:
    gateway = check_startup(config)
    tiers = ", ".join(f"tier {t.tier} {t.model}" for t in gateway.policy.tiers)
    where = f"http://{config.host}:{config.port}/v1"
    print(f"Cascade gateway for {config.policy} ({tiers}) at {where}", flush=True)
    print(f"Log: {config.log_dir or 'off (add --log DIR)'}; content {config.log_content}; "
          f"shadow rate {config.shadow_rate:g}; {config.workers} worker(s). Press Ctrl+C to stop.", flush=True)
    if config.host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("CASCADE_STUDIO_GATEWAY_KEY"):
        print(f"warning: listening on {config.host} without a client key; anyone who reaches it spends your "
              "tiers' keys. Set CASCADE_STUDIO_GATEWAY_KEY.", file=sys.stderr, flush=True)
    try:
        if config.workers == 1:
            uvicorn.run(gateway.app, host=config.host, port=config.port, log_level="warning", access_log=False,
                        lifespan="on")
        elif hasattr(os, "fork"):  # workers forked after the imports share one socket and the loaded code
            asyncio.run(gateway.aclose())  # each worker makes its own clients and log files
            sock = bind(config.host, config.port)
            code = serve_workers(lambda: Gateway(config).app, sock, config.workers)
            sock.close()
            if code:
                raise UserError("a gateway worker failed at start; see its log above")
        else:  # Windows: uvicorn's process manager (each worker imports everything again)
            asyncio.run(gateway.aclose())
            os.environ[CONFIG_ENV] = config.to_env()
            uvicorn.run("cascade_studio.gateway.app:app_from_environment", factory=True, workers=config.workers,
                        host=config.host, port=config.port, log_level="warning", access_log=False, lifespan="on")
    except OSError as exc:
        raise UserError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}. Choose another --port.") from None
    print("Gateway stopped.", flush=True)
    return 0
