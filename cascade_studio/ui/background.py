"""Run blocking calls (keyring over D-Bus, file scans) off the GUI thread; deliver results on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)
_alive: set[_Job] = set()


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


def run_in_thread(fn: Callable[[], Any], on_done: Callable[[Any, BaseException | None], None],
                  owner: QObject | None = None) -> None:
    """Call `fn()` in the thread pool, then `on_done(result, error)` in the GUI thread, unless
    `owner` (the widget the result is for) has been destroyed meanwhile."""
    job = _Job(fn)
    _alive.add(job)

    def finish(result: Any, error: BaseException | None) -> None:
        _alive.discard(job)
        if error is not None:
            log.warning("Background call failed: %s", error)
        if owner is not None and not shiboken6.isValid(owner):
            return
        on_done(result, error)

    job.relay.finished.connect(finish)
    QThreadPool.globalInstance().start(job)
