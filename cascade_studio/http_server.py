"""One home for running the app's ASGI servers (the sandbox, the gateway) with uvicorn on a socket
bound here: in-process on a free port (tests, benches, the GUI's sandbox thread), and as N
pre-forked worker processes that share one listening socket (`serve --workers N`).

Pre-forking after the imports lets the workers share the parent's loaded code copy-on-write
(gc.freeze keeps the collector from touching, and so copying, those pages): N workers cost far
less than N times one, where uvicorn's own `workers=` starts each by importing everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import uvicorn

log = logging.getLogger(__name__)
CRASH_LOOP_S = 2.0  # a worker that dies sooner than this after its start is not restarted


def bind(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening socket (port 0: any free port). Raises OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _config(app: Any, *, lifespan: str, graceful_s: float) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan,
                          timeout_graceful_shutdown=graceful_s)


class AppServer:
    """An ASGI app served on the running event loop: `await start()` returns the bound port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, graceful_s: float = 2.0,
                 backlog: int = 1024) -> None:
        self.app, self.host, self.port = app, host, port
        self.graceful_s, self.backlog = graceful_s, backlog
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self._sock: socket.socket | None = None

    async def start(self) -> int:
        self._sock = bind(self.host, self.port, self.backlog)
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(self.app, lifespan="off", graceful_s=self.graceful_s))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()


def serve_workers(make_app: Callable[[], Any], sock: socket.socket, workers: int) -> int:
    """Serve `make_app()` from `workers` forked processes accepting on `sock` until SIGINT/SIGTERM;
    a worker that dies is restarted (unless it died at once, which stops the rest: returns 1). POSIX only."""
    gc.collect()
    gc.freeze()  # the parent's objects stay in pages the workers share
    children: dict[int, float] = {}
    stopping = False
    failed = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                uvicorn.Server(_config(make_app(), lifespan="on", graceful_s=5.0)).run(sockets=[sock])
            except BaseException:  # noqa: BLE001 - reported, then the worker ends
                log.exception("Gateway worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(workers):
            spawn()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None or stopping:
                continue
            if time.monotonic() - started < CRASH_LOOP_S:
                log.error("Gateway worker %d exited at once (status %d): stopping", pid, status)
                failed = 1
                stop(signal.SIGTERM, None)
                continue
            log.warning("Gateway worker %d exited (status %d): starting another", pid, status)
            spawn()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        gc.unfreeze()
    return failed
