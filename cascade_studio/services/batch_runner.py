"""Collection through the OpenAI Batch API: upload the requests, create a batch, poll it, download
and import the results at the batch price. The batch id is kept in the run's record, so a restart
goes back to polling the same batch instead of paying twice."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Callable

from cascade_studio.core.agreement import kept_verdict
from cascade_studio.core.tiers import Tier, generation_keys
from cascade_studio.services import events
from cascade_studio.services.bounded_http import answers_up_to
from cascade_studio.services.clients import describe_error, make_async_client
from cascade_studio.services.collector import RunProgress
from cascade_studio.services.run_lock import TierRunLock
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.trajectory_io import batch_input_lines, batch_line_to_trajectory
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import Run, RunRepository, TrajectoryRepository
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)
TERMINAL = {"completed", "failed", "expired", "cancelled"}
BATCH_FILE_CAP = 2 * 1024**3  # a batch result file holds the whole run (~37 KB a task with logprobs)
BATCH_FILE_TIMEOUT_S = 900.0


class BatchCollection:
    def __init__(self, ws: Workspace, tier: Tier, secrets: SecretStore, run: Run, *,
                 on_progress: Callable[[RunProgress], None] | None = None, poll_s: float = 5.0,
                 max_poll_s: float = 60.0) -> None:
        self.ws, self.tier, self.secrets, self.run_record = ws, tier, secrets, run
        self.on_progress = on_progress
        self.poll_s, self.max_poll_s = poll_s, max_poll_s
        self._runs = RunRepository(ws)
        self.progress = RunProgress.of(self._runs, run)
        self._trajs = TrajectoryRepository(ws)
        self._cancelled = False
        self._started = time.perf_counter()

    @property
    def paused(self) -> bool:
        return False

    def pause(self) -> None:  # a batch runs on the provider's side; nothing to pause here
        pass

    def resume(self) -> None:
        pass

    def cancel(self) -> None:
        self._cancelled = True

    def _emit(self) -> None:
        self.progress.elapsed_s = time.perf_counter() - self._started
        if self.on_progress:
            self.on_progress(self.progress)

    def _save_params(self, **changes: object) -> None:
        self.run_record.params.update(changes)
        self._runs.set_params(self.run_record.id, self.run_record.params)

    async def run(self) -> RunProgress:
        """Raises RunBusy (nothing touched) when another process is collecting this tier."""
        lock = TierRunLock(self.ws.path, self.tier.tier, self.run_record.id)
        lock.acquire()
        try:
            return await self._collect()
        finally:
            lock.release()

    async def _collect(self) -> RunProgress:
        from cascade_studio.services.run_plan import batch_problem

        problem = batch_problem(self.ws, self.run_record.task_ids)
        if problem:
            self.progress.status, self.progress.message = "failed", problem
            self._runs.set_status(self.run_record.id, "failed", problem)
            return self.progress
        finished = self._runs.finished_task_ids(self.run_record.id)
        if not self.run_record.params.get("again") and not self.run_record.params.get("batch_id"):
            finished |= self._trajs.ok_task_ids(self.tier.tier, generation_keys(self.tier), self.run_record.task_ids)
        self.progress.done = self.progress.skipped = len(finished & set(self.run_record.task_ids))
        pending = [t for t in self.run_record.task_ids if t not in finished]
        self._runs.set_status(self.run_record.id, "running")
        try:
            client = make_async_client(self.tier, self.secrets, max_retries=3)
        except Exception as exc:
            return self._finish("failed", describe_error(exc, self.tier)[1])
        try:
            async with client:
                return await self._run(client, pending)
        except asyncio.CancelledError:
            self._finish("cancelled", "Cancelled; start again to go back to the same batch.")
            raise
        except Exception as exc:  # noqa: BLE001 - API errors become the run's message
            return self._finish("failed", describe_error(exc, self.tier)[1])

    async def _run(self, client, pending: list[str]) -> RunProgress:
        batch_id = self.run_record.params.get("batch_id")
        if batch_id is None:
            if not pending:
                return self._finish("done", "")
            lines = batch_input_lines(self.ws, self.tier, pending)
            upload = await client.files.create(file=(f"cascade-run-{self.run_record.id}.jsonl",
                                                     io.BytesIO(("\n".join(lines) + "\n").encode())), purpose="batch")
            batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                completion_window="24h",
                                                metadata={"cascade_studio_run": str(self.run_record.id)})
            batch_id = batch.id
            self._save_params(batch_id=batch_id, batch_file=upload.id)
            self.progress.message = f"Batch {batch_id} created with {len(lines)} requests"
            self._emit()
        delay = self.poll_s
        while True:
            batch = await client.batches.retrieve(batch_id)
            counts = batch.request_counts
            if counts is not None:
                self.progress.in_flight = max(0, counts.total - counts.completed - counts.failed)
            self.progress.message = f"Batch {batch_id}: {batch.status}"
            self._emit()
            if batch.status in TERMINAL:
                break
            if self._cancelled:
                await client.batches.cancel(batch_id)
                self._cancelled = False  # wait for the provider to confirm, then import what finished
            await asyncio.sleep(delay)
            delay = min(self.max_poll_s, delay * 1.5)
        imported = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                # A result file the size of the run (up to BATCH_FILE_CAP) is expected: give it time and room.
                with answers_up_to(BATCH_FILE_CAP):
                    content = await client.files.content(file_id, timeout=max(self.tier.timeout_s, BATCH_FILE_TIMEOUT_S))
                imported += self._import(content.text)
        self._save_params(batch_id=None, last_batch_id=batch_id)
        if batch.status == "completed" and not self.progress.failed:
            return self._finish("done", f"Batch {batch_id} completed: {imported} results imported at the batch price")
        if batch.status == "cancelled":
            return self._finish("cancelled", f"Batch {batch_id} was cancelled; {imported} finished results imported")
        errors = getattr(batch, "errors", None)
        detail = ""
        if errors is not None and getattr(errors, "data", None):
            detail = "; ".join(str(e.message) for e in errors.data[:3])
        return self._finish("failed", f"Batch {batch_id} ended {batch.status}. {detail}".strip())

    def _import(self, text: str) -> int:
        tasks = TaskRepository(self.ws)
        trajs = TrajectoryRepository(self.ws)
        count = 0
        for line in text.split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            task = tasks.get(str(row.get("custom_id")))
            if task is None:
                continue
            from cascade_studio.core.trajectory import build_request

            traj = batch_line_to_trajectory(row, task.id, self.tier, build_request(self.tier, task.messages, task.tools))
            trajs.save(self.run_record.id, traj, task.category,
                       correct=kept_verdict(traj.tool_calls, task.expected, task.tools))
            count += 1
            if traj.status == "ok":
                self.progress.done += 1
                self.progress.new_done += 1
                self.progress.tokens += traj.usage.total
                self.progress.cost_micro += traj.cost_micro
            else:
                self.progress.failed += 1
        return count

    def _finish(self, status: str, message: str) -> RunProgress:
        _, self.progress.run_tokens, self.progress.run_cost_micro = self._runs.totals(self.run_record.id)
        self.progress.status, self.progress.message, self.progress.in_flight = status, message, 0
        self._runs.set_status(self.run_record.id, status, message)
        events.publish(events.TRAJECTORIES, self.ws)
        self._emit()
        return self.progress
