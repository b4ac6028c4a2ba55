"""Run the gateway: in-process on a free port (tests, benchmarks) or in the foreground
(`cascade-studio serve`), as one process or several (`--workers`, uvicorn's process manager; each
worker loads the policy and writes log files of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from typing import Any

import uvicorn

from cascade_studio.core.errors import UserError
from cascade_studio.gateway.app import CONFIG_ENV, Gateway, GatewayConfig


class GatewayServer:
    """`async with GatewayServer(config) as gw: gw.base_url` — serves on 127.0.0.1 on a free port
    (config.port 0) or the configured one."""

    def __init__(self, config: GatewayConfig, **gateway_args: Any) -> None:
        self.gateway = Gateway(config, **gateway_args)
        self.config = config
        self.port = config.port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self._sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    async def start(self) -> str:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.config.host, self.config.port))
        self._sock.listen(1024)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        cfg = uvicorn.Config(self.gateway.app, log_level="warning", access_log=False, lifespan="off",
                             timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(cfg)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self.base_url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()
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
        else:
            asyncio.run(gateway.aclose())  # each worker makes its own
            os.environ[CONFIG_ENV] = config.to_env()
            uvicorn.run("cascade_studio.gateway.app:app_from_environment", factory=True, workers=config.workers,
                        host=config.host, port=config.port, log_level="warning", access_log=False, lifespan="on")
    except OSError as exc:
        raise UserError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}. Choose another --port.") from None
    print("Gateway stopped.", flush=True)
    return 0
