"""A collection run on its own thread and event loop, so parsing, scoring and storing hundreds of
responses a second never stalls the GUI. Progress comes back as Qt signals (queued across threads);
pause, resume and cancel go in with loop.call_soon_threadsafe. The worker has its own SQLite
connection to the workspace (WAL lets the GUI read while it writes)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from cascade_studio.core.tiers import Tier
from cascade_studio.services.collector import CollectionRun, RunProgress
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.trajectories import Run
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)


class RunThread(QObject):
    progress = Signal(object)  # RunProgress (a copy)
    finished = Signal(object, object)  # RunProgress | None, error message | None

    def __init__(self, workspace_dir: Path, tier: Tier, secrets: SecretStore, run: Run, *,
                 concurrency: int | None = None, batch: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace_dir, self.tier, self.secrets, self.run = workspace_dir, tier, secrets, run
        self.concurrency = concurrency
        self.batch = batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: CollectionRun | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._main, name=f"run-{run.id}", daemon=True)
        self._paused = False
        self.last: RunProgress | None = None

    def start(self) -> None:
        import gc

        # Move everything alive now (the GUI, modules, caches) out of the collector's reach: a full
        # collection over it takes ~90 ms with the GIL held, a visible stall every second of a run.
        gc.freeze()
        self._thread.start()

    def _main(self) -> None:
        # A plain selector loop: under qasync the default policy would make a Qt loop here.
        loop = asyncio.SelectorEventLoop()
        self._loop = loop
        ws = None
        try:
            ws = Workspace.open(self.workspace_dir, create=False)
            if self.batch:
                from cascade_studio.services.batch_runner import BatchCollection

                self._runner = BatchCollection(ws, self.tier, self.secrets, self.run, on_progress=self._emit)
            else:
                self._runner = CollectionRun(ws, self.tier, self.secrets, self.run, concurrency=self.concurrency,
                                             on_progress=self._emit)
            self._task = loop.create_task(self._runner.run())
            result = loop.run_until_complete(self._task)
            self._done(result, None)
        except asyncio.CancelledError:
            self._done(self._runner.progress if self._runner else None, None)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI
            log.exception("Collection run %s failed", self.run.id)
            self._done(self._runner.progress if self._runner else None, str(exc))
        finally:
            if ws is not None:
                ws.close()
            loop.close()

    def _emit(self, p: RunProgress) -> None:
        self.last = RunProgress(**{k: getattr(p, k) for k in p.__dataclass_fields__})
        try:
            self.progress.emit(self.last)
        except RuntimeError:
            pass  # the page went away

    def _done(self, p: RunProgress | None, error: str | None) -> None:
        try:
            self.finished.emit(p, error)
        except RuntimeError:
            pass

    # -- control from the GUI thread ----------------------------------------------------------
    def _call(self, fn) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(fn)
            except RuntimeError:
                pass

    def pause(self) -> None:
        self._paused = True
        self._call(lambda: self._runner and self._runner.pause())

    def resume(self) -> None:
        self._paused = False
        self._call(lambda: self._runner and self._runner.resume())

    @property
    def paused(self) -> bool:
        return self._paused

    def cancel(self) -> None:
        self._call(lambda: self._runner and self._runner.cancel())

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
