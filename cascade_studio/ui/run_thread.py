"""Long work started from the GUI, in one way: a `Worker` on its own thread and event loop, so
parsing, scoring and storing hundreds of responses a second never stalls the GUI. The worker opens
its own SQLite connection to the workspace (WAL lets the GUI read while it writes); the GUI's
connection never leaves the GUI thread. Progress and the result come back as Qt signals (queued
across threads); cancel (and pause/resume for a collection run) go in with
loop.call_soon_threadsafe. Short calls (a connection test, a job poll) use ui/background.py."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from cascade_studio.core.tiers import Tier
from cascade_studio.services.collector import CollectionRun, RunProgress
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.trajectories import Run
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)


class Worker(QObject):
    """Runs `await self.work(ws)` on a thread of its own; `finished(result, error message)` once."""

    progress = Signal(object)
    finished = Signal(object, object)  # the result (or what was done before a cancel/failure), error | None

    def __init__(self, workspace_dir: Path, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    async def work(self, ws: Workspace) -> Any:
        raise NotImplementedError

    def partial(self) -> Any:
        """What to report when the work was cancelled or failed part way."""
        return None

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
            self._task = loop.create_task(self.work(ws))
            self._done(loop.run_until_complete(self._task), None)
        except asyncio.CancelledError:
            self._done(self.partial(), None)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI
            log.exception("%s failed", self._thread.name)
            self._done(self.partial(), str(exc))
        finally:
            if ws is not None:
                ws.close()
            loop.close()

    def emit_progress(self, value: Any) -> None:
        try:
            self.progress.emit(value)
        except RuntimeError:
            pass  # the page went away

    def _done(self, result: Any, error: str | None) -> None:
        try:
            self.finished.emit(result, error)
        except RuntimeError:
            pass

    # -- control from the GUI thread ----------------------------------------------------------
    def call_soon(self, fn: Callable[[], Any]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(fn)
            except RuntimeError:
                pass

    def cancel(self) -> None:
        self.call_soon(lambda: self._task and self._task.cancel())

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


class RunThread(Worker):
    """A collection run (or a Batch API run); `progress` carries copies of its RunProgress."""

    def __init__(self, workspace_dir: Path, tier: Tier, secrets: SecretStore, run: Run, *,
                 concurrency: int | None = None, batch: bool = False, parent: QObject | None = None) -> None:
        super().__init__(workspace_dir, f"run-{run.id}", parent)
        self.tier, self.secrets, self.run = tier, secrets, run
        self.concurrency = concurrency
        self.batch = batch
        self._runner: CollectionRun | None = None
        self._paused = False
        self.last: RunProgress | None = None

    async def work(self, ws: Workspace) -> RunProgress:
        if self.batch:
            from cascade_studio.services.batch_runner import BatchCollection

            self._runner = BatchCollection(ws, self.tier, self.secrets, self.run, on_progress=self._emit)
        else:
            self._runner = CollectionRun(ws, self.tier, self.secrets, self.run, concurrency=self.concurrency,
                                         on_progress=self._emit)
        return await self._runner.run()

    def partial(self) -> RunProgress | None:
        return self._runner.progress if self._runner else None

    def _emit(self, p: RunProgress) -> None:
        self.last = RunProgress(**{k: getattr(p, k) for k in p.__dataclass_fields__})
        self.emit_progress(self.last)

    def pause(self) -> None:
        self._paused = True
        self.call_soon(lambda: self._runner and self._runner.pause())

    def resume(self) -> None:
        self._paused = False
        self.call_soon(lambda: self._runner and self._runner.resume())

    @property
    def paused(self) -> bool:
        return self._paused

    def cancel(self) -> None:
        """Stop starting requests and let the run record itself as cancelled (Start resumes it)."""
        self.call_soon(lambda: self._runner and self._runner.cancel())


class EvaluationThread(Worker):
    """Evaluate each student against the teacher (collecting missing trajectories first, when asked);
    the result is the list of reports, `progress` says which student is under way."""

    def __init__(self, workspace_dir: Path, teacher: Tier, students: list[Tier], task_ids: list[str],
                 secrets: SecretStore, *, collect: bool, category: str | None, judge: Any = None,
                 dry_run: bool = False, parent: QObject | None = None) -> None:
        super().__init__(workspace_dir, "evaluation", parent)
        self.teacher, self.students, self.task_ids, self.secrets = teacher, students, task_ids, secrets
        self.collect, self.category = collect, category
        # issue 30: a judge as `evaluate --judge NAME` uses it; dry_run is `--dry-run` (an estimate of the
        # judge's cost from the answers recorded: nothing collected, sent, embedded or recorded)
        self.judge, self.dry_run = judge, dry_run

    async def work(self, ws: Workspace) -> list[Any]:
        from cascade_studio.services.evaluation import evaluate

        reports = []
        for i, student in enumerate(self.students):  # one evaluation per student tier, each recorded in the history
            self.emit_progress((i, len(self.students), student))
            collect = self.collect and not self.dry_run
            report = await evaluate(ws, self.teacher, student, self.task_ids, self.secrets, collect=collect,
                                    category=self.category, use_embeddings=not self.dry_run, record=not self.dry_run)
            from cascade_studio.services.agent.evaluation import evaluate_agents

            if self.judge is not None and report.results:  # the CLI's call (cli/evaluate.py)
                from cascade_studio.services.judged_evaluation import judged_answer_agreement

                report.judged = await judged_answer_agreement(ws, self.judge, self.teacher, student, report.results,
                                                              self.secrets, dry_run=self.dry_run)
            # agent tasks: every step teacher-forced, and the free-running episodes side by side
            report.agents = await evaluate_agents(ws, self.teacher, student, self.task_ids, self.secrets,
                                                  collect=collect, judge=self.judge, dry_run=self.dry_run)
            reports.append(report)
        return reports


class ServiceThread(Worker):
    """One service call that may take long (`await work(ws)` with the thread's own connection):
    the fine-tuned model's evaluation before it takes a tier, the comparison of two generations."""

    def __init__(self, workspace_dir: Path, name: str, work: Callable[[Workspace], Any],
                 parent: QObject | None = None) -> None:
        super().__init__(workspace_dir, name, parent)
        self._work = work

    async def work(self, ws: Workspace) -> Any:
        return await self._work(ws)
