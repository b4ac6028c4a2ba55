"""Short work started from the GUI, in one way: `Calls`, a page's named calls.

A call is a coroutine (network I/O on the GUI's qasync loop) or a blocking function (keyring over
D-Bus, a file scan: run in the thread pool). Either way the call keeps a strong reference until it
ends, a new call under the same name cancels (or, for a thread, supersedes) the previous one, its
result comes back on the GUI thread, and an exception is logged and handed to `on_error` (or to the
loop's exception handler: the crash dialog) — never dropped. Long work (a collection run, an
evaluation that collects) runs on a `Worker` thread instead (ui/run_thread.py).

asyncio is imported on first use, not when the first page is built (startup time)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)
_alive: set[_Job] = set()

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]


class _Relay(QObject):
    finished = Signal(object, object)  # result, exception


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.relay = _Relay()

    def run(self) -> None:
        try:
            result, error = self.fn(), None
        except Exception as exc:  # noqa: BLE001 - handed to the callback
            result, error = None, exc
        try:
            self.relay.finished.emit(result, error)
        except RuntimeError:  # the app quit while this ran: nobody is waiting for the answer
            pass


def run_coroutine_here(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` to its end on a new plain asyncio loop in this thread (a pool thread: an MCP
    server's session, which starts a subprocess). Not `asyncio.run()`: while the GUI runs, qasync's
    event loop policy is the global one (Python 3.11), so asyncio.run() here would make a Qt event
    loop outside the GUI thread, which stops at once ("Event loop stopped before Future completed";
    "QApplication::exec: Must be called from the main thread" on stderr)."""
    import asyncio

    with asyncio.Runner(loop_factory=asyncio.DefaultEventLoopPolicy().new_event_loop) as runner:
        return runner.run(coro)


def run_in_thread(fn: Callable[[], Any], on_done: Callable[[Any, BaseException | None], None],
                  owner: QObject | None = None) -> None:
    """Call `fn()` in the thread pool, then `on_done(result, error)` in the GUI thread, unless
    `owner` (the widget the result is for) has been destroyed meanwhile."""
    job = _Job(fn)
    _alive.add(job)

    def finish(result: Any, error: BaseException | None) -> None:
        _alive.discard(job)
        job.relay.deleteLater()  # on the GUI thread, where it lives (else one QObject leaks per call)
        if error is not None:
            log.warning("Background call failed: %s", error)
        if owner is not None and not shiboken6.isValid(owner):
            return
        on_done(result, error)

    job.relay.finished.connect(finish)
    QThreadPool.globalInstance().start(job)


class Calls:
    """The named short calls of one widget (a page); see the module's docstring."""

    def __init__(self, owner: QObject) -> None:
        self.owner = owner
        self._tasks: dict[str, Any] = {}  # name -> asyncio.Task (or a serial number for a thread call)
        self._serial = 0

    def start(self, name: str, coro: Coroutine[Any, Any, Any], on_done: Done | None = None,
              on_error: Failed | None = None) -> bool:
        """Run `coro` on the GUI's (qasync) loop. False, and the coroutine closed, when there is
        no loop (a test without qasync): nothing ran."""
        import asyncio

        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            coro.close()
            return False
        self.cancel(name)
        task = loop.create_task(coro, name=f"{type(self.owner).__name__}.{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._finished(name, t, on_done, on_error))
        return True

    def start_in_thread(self, name: str, fn: Callable[[], Any], on_done: Done | None = None,
                        on_error: Failed | None = None) -> None:
        """Run the blocking `fn()` in the thread pool; only the newest call of a name answers."""
        self._serial += 1
        serial = self._tasks[name] = self._serial

        def finish(result: Any, error: BaseException | None) -> None:
            if self._tasks.get(name) != serial:
                return  # superseded by a newer call of the same name
            del self._tasks[name]
            self._deliver(name, result, error, on_done, on_error)

        run_in_thread(fn, finish, owner=self.owner)

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and (isinstance(task, int) or not task.done())

    def cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None and not isinstance(task, int) and not task.done():
            task.cancel()

    def cancel_all(self) -> None:
        for name in list(self._tasks):
            self.cancel(name)

    def _finished(self, name: str, task: Any, on_done: Done | None, on_error: Failed | None) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if task.cancelled():
            return
        self._deliver(name, None if task.exception() else task.result(), task.exception(), on_done, on_error)

    def _deliver(self, name: str, result: Any, error: BaseException | None, on_done: Done | None,
                 on_error: Failed | None) -> None:
        if not shiboken6.isValid(self.owner):
            return  # the page went away while the call ran
        if error is None:
            if on_done is not None:
                on_done(result)
            return
        log.warning("%s: %s failed", type(self.owner).__name__, name, exc_info=error)
        if on_error is not None:
            on_error(error)
        else:  # nobody expects this one to fail: the crash dialog says so
            from cascade_studio.ui.errors import report_exception

            report_exception(type(error), error, error.__traceback__)

