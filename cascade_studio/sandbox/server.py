"""Run the sandbox: in-process on a free port (async context manager), in a background thread
(for the GUI demo), or in the foreground (`cascade-studio sandbox`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path

from cascade_studio.http_server import AppServer
from cascade_studio.sandbox.app import Sandbox, SandboxConfig
from cascade_studio.sandbox.faults import parse_faults

log = logging.getLogger(__name__)


class SandboxServer:
    """`async with SandboxServer() as sb: sb.base_url` — serves on 127.0.0.1 on a free port."""

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("Sandbox bound to %s: it is reachable from other machines", host)
        self.sandbox = Sandbox(config)
        self.host = host
        self._server = AppServer(self.sandbox.app, host, port, graceful_s=1.0, backlog=512)

    @property
    def config(self) -> SandboxConfig:
        return self.sandbox.config

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> str:
        await self._server.start()
        return self.base_url

    async def stop(self) -> None:
        await self._server.stop()

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SandboxThread:
    """The sandbox on its own event loop in a daemon thread (keeps the GUI loop free)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.server = SandboxServer(config or SandboxConfig())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> str:
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("The built-in sandbox did not start within 10 s")
        if self._error:
            raise RuntimeError(f"The built-in sandbox failed to start: {self._error}")
        return self.server.base_url

    def _run(self) -> None:
        # A plain selector loop: under qasync the default policy would make a Qt loop here.
        loop = asyncio.SelectorEventLoop()
        self._loop = loop
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve_forever(*, host: str, port: int, seed: int, latency_scale: float, faults: str, job_seconds: float,
                  data_dir: Path | None = None, judge_error_rate: float = 0.1) -> int:
    try:
        fault_spec = parse_faults(faults)
    except ValueError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return 2
    if latency_scale < 0 or job_seconds <= 0 or not 0 <= judge_error_rate <= 1:
        print("error: --latency-scale must be >= 0, --job-seconds > 0 and --judge-error-rate 0-1", file=sys.stderr)
        return 2
    config = SandboxConfig(seed=seed, latency_scale=latency_scale, job_seconds=job_seconds, faults=fault_spec,
                           data_dir=data_dir, judge_error_rate=judge_error_rate)

    async def main() -> None:
        server = SandboxServer(config, host=host, port=port)
        try:
            await server.start()
        except OSError as exc:
            raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}. Choose another --port.") from None
        print(f"Cascade Studio sandbox (simulated models) at {server.base_url}", flush=True)
        print("Any non-empty API key is accepted. Press Ctrl+C to stop.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()
        print("Sandbox stopped.", flush=True)

    try:
        import uvloop  # a faster event loop where available (not on Windows)

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return 0
