"""Collection runs: a tier answers a set of tasks, concurrently, within its rate limits, with
retries; each finished trajectory is committed at once, so a crash or kill loses nothing done and
the next start resumes where the run stopped.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import openai
import orjson

from cascade_studio.core.agreement import kept_verdict
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tasks import Task
from cascade_studio.core.tiers import LogprobsMode, Tier, generation_id, generation_keys, generation_params
from cascade_studio.core.trajectory import ResponseError, Trajectory, build_request, trajectory_from_response
from cascade_studio.services import events
from cascade_studio.services.agent.episodes import run_episode
from cascade_studio.services.bounded_http import needs_loopback
from cascade_studio.services.clients import describe_error, failure_summary, make_async_client
from cascade_studio.services.model_calls import Failed, Sent
from cascade_studio.services.rate_limits import (  # noqa: F401 - RETRYABLE_STATUS, RateLimiter: part of this API
    RETRYABLE_STATUS,
    RateLimiter,
    backoff_delay,
    is_fatal,
    is_retryable,
    retry_after_seconds,
)
from cascade_studio.services.run_lock import TierRunLock
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.upstream import AnswerTooLarge, Upstream, fast_client, refusal_error
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import Run, RunRepository, TrajectoryRepository, now
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class RunProgress:
    run_id: int
    total: int
    done: int = 0  # finished ok (this session and earlier ones)
    failed: int = 0  # gave up after retries (error records, retryable later)
    skipped: int = 0  # already done before this session
    in_flight: int = 0
    retries: int = 0
    tokens: int = 0
    cost_micro: int = 0
    elapsed_s: float = 0.0
    status: str = "running"
    message: str = ""
    new_done: int = 0  # finished in this session (for the rate)
    run_tokens: int = 0  # the whole run, across resumes (what is stored; set when it ends)
    run_cost_micro: int = 0
    earlier_tokens: int = 0  # what the run's earlier parts (before a cancel, a crash) stored
    earlier_cost_micro: int = 0

    @classmethod
    def of(cls, runs: RunRepository, run: Run) -> RunProgress:
        """A part of `run` about to start: it knows what the earlier parts paid."""
        _, tokens, cost = runs.totals(run.id)
        return cls(run.id, len(run.task_ids), earlier_tokens=tokens, earlier_cost_micro=cost)

    @property
    def is_part(self) -> bool:
        """This part follows earlier ones that paid something (a resumed run)."""
        return self.earlier_cost_micro > 0 or self.earlier_tokens > 0

    @property
    def whole_cost_micro(self) -> int:
        """The whole run's cost so far: its earlier parts and this one (the stored total once it ended)."""
        return self.run_cost_micro if self.status not in ("running", "paused") and self.run_cost_micro \
            else self.earlier_cost_micro + self.cost_micro

    @property
    def rate(self) -> float:
        return self.new_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.failed)

    @property
    def eta_s(self) -> float | None:
        return self.remaining / self.rate if self.rate > 0 else None

    @property
    def cost_usd(self) -> float:
        return float(micro_to_usd(self.cost_micro))

    def cost_words(self) -> str:
        """'$0.5020', or for a resumed run '$0.5020 in all, $0.1411 this part' (the GUI's run line and
        the CLI's progress say the same)."""
        whole = f"${micro_to_usd(self.whole_cost_micro):.4f}"
        return f"{whole} in all, ${micro_to_usd(self.cost_micro):.4f} this part" if self.is_part else whole

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(rate=round(self.rate, 2), eta_s=None if self.eta_s is None else round(self.eta_s, 1),
                   cost_usd=str(micro_to_usd(self.cost_micro)), run_cost_usd=str(micro_to_usd(self.whole_cost_micro)))
        return out


class CollectionRun:
    def __init__(self, ws: Workspace, tier: Tier, secrets: SecretStore, run: Run, *,
                 concurrency: int | None = None, top_logprobs: int | None = None, max_attempts: int = 6,
                 on_progress: Callable[[RunProgress], None] | None = None,
                 on_trajectory: Callable[[Trajectory], None] | None = None,
                 progress_interval: float = 0.1, backoff_base: float = 0.5, fast: bool = True) -> None:
        self.ws, self.tier, self.secrets, self.run_record = ws, tier, secrets, run
        self.concurrency = max(1, concurrency or tier.max_concurrency)
        self.top_logprobs = top_logprobs
        self.max_attempts = max_attempts
        self.on_progress, self.on_trajectory = on_progress, on_trajectory
        self.progress_interval = progress_interval
        self.backoff_base = backoff_base
        self.fast = fast  # send through services.upstream (False: the SDK's post; the same answers, slower)
        self._fast: Upstream | None = None
        self.ramp_s = 0.004
        self.trials = max(1, int(run.params.get("trials") or 1))  # episodes per task (trial 0, 1, ...)
        self._runs = RunRepository(ws)
        self.progress = RunProgress.of(self._runs, run)
        self._trajs = TrajectoryRepository(ws)
        self._tasks = TaskRepository(ws)
        self._gate = asyncio.Event()
        self._gate.set()
        self._cancelled = False
        self._fatal: str | None = None
        self._last_emit = 0.0
        self._limiter = RateLimiter(tier.rpm_limit, tier.tpm_limit)
        self._rng = random.Random()
        self._connection_failures = 0  # consecutive; any success resets it
        self._note = ""  # something the user should know about a run that succeeded
        self._unsaved = 0  # answers received (and paid for) that a full disk kept from being saved
        self.environments: dict[str, Any] = {}  # agent episodes: the environments' specs, read once per run
        # "auto" logprobs: None until a request that asked for them fails in a way that could be
        # about them; then one probe without them decides (True: the server cannot give them).
        self._logprobs_verdict: bool | None = None if tier.logprobs == LogprobsMode.AUTO and tier.wants_logprobs \
            else False

    # -- control ---------------------------------------------------------------------------
    def pause(self) -> None:
        self._gate.clear()
        self.progress.status = "paused"
        self._runs.set_status(self.run_record.id, "paused")
        self._emit(force=True)

    def resume(self) -> None:
        self.progress.status = "running"
        self._runs.set_status(self.run_record.id, "running")
        self._gate.set()
        self._emit(force=True)

    def cancel(self) -> None:
        self._cancelled = True
        self._gate.set()
        for w in getattr(self, "_workers", []):
            w.cancel()

    @property
    def paused(self) -> bool:
        return not self._gate.is_set()

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> RunProgress:
        """Collect the run's pending tasks. Raises RunBusy (nothing touched) when another process is
        collecting this tier of the workspace."""
        lock = TierRunLock(self.ws.path, self.tier.tier, self.run_record.id)
        lock.acquire()
        try:
            return await self._run()
        finally:
            lock.release()

    async def _run(self) -> RunProgress:
        started = time.perf_counter()
        self._started = started
        finished = self._runs.finished_units(self.run_record.id)
        if not self.run_record.params.get("again"):
            # never pay twice: a task's trial with an ok answer of this generation (any run) is not sent again
            finished |= self._trajs.ok_units(self.tier.tier, generation_keys(self.tier), self.run_record.task_ids)
        units = [(t, k) for t in self.run_record.task_ids for k in range(self.trials)]
        pending = [u for u in units if u not in finished]
        self.progress.total = len(units)  # tasks x trials: a run with trials counts each episode
        self.progress.skipped = self.progress.done = len(units) - len(pending)
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for unit in pending:
            queue.put_nowait(unit)
        self._runs.set_status(self.run_record.id, "running")
        self._emit(force=True)
        try:
            client = make_async_client(self.tier, self.secrets, max_retries=0)
        except Exception as exc:
            _, message = describe_error(exc, self.tier)
            return self._finish("failed", message)
        async with client:
            self._client = client
            if self.fast:
                self._fast = fast_client(client, self.tier.timeout_s, user_agent="cascade-studio",
                                         loopback_only=needs_loopback(self.tier.base_url, self.tier.allow_insecure))
            count = min(self.concurrency, max(1, len(pending)))
            self._workers = [asyncio.ensure_future(self._worker(queue, i * self.ramp_s)) for i in range(count)]
            try:
                results = await asyncio.gather(*self._workers, return_exceptions=True)
                crashed = [r for r in results if isinstance(r, Exception)]
                if crashed:  # a bug or a failing disk: never a silent "done"
                    log.error("Collection worker failed", exc_info=crashed[0])
                    self._fatal = self._fatal or f"The run stopped: {type(crashed[0]).__name__}: {crashed[0]}"
            except asyncio.CancelledError:
                self._cancelled = True
                for w in self._workers:
                    w.cancel()
                await asyncio.gather(*self._workers, return_exceptions=True)
                self._finish("cancelled", "Cancelled; start the run again to resume.")
                raise
            finally:
                if self._fast is not None:
                    await self._fast.close()
        if self._fatal:
            lost = (f" {self._unsaved} answer(s) received could not be saved and will be requested again."
                    if self._unsaved else "")
            return self._finish("failed", self._fatal + lost)
        if self._cancelled:
            return self._finish("cancelled", "Cancelled; start the run again to resume.")
        if self.progress.failed:
            last_error = self.progress.message if self.progress.message != self._note else ""
            return self._finish("failed", failure_summary(self.progress.failed, self.progress.new_done, last_error))
        return self._finish("done", self._note)

    def _finish(self, status: str, message: str) -> RunProgress:
        events.publish(events.TRAJECTORIES, self.ws)
        _, self.progress.run_tokens, self.progress.run_cost_micro = self._runs.totals(self.run_record.id)
        self.progress.status = status
        self.progress.message = message
        self.progress.in_flight = 0
        try:
            self._runs.set_status(self.run_record.id, status, message)
        except (sqlite3.OperationalError, OSError) as exc:
            if not _disk_full(exc):
                raise  # on a full disk the run's record keeps its last status; the message says why
        self._emit(force=True)
        return self.progress

    async def _worker(self, queue: asyncio.Queue[tuple[str, int]], delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)  # ramp up: opening 64 connections at once is a burst nobody needs
        while not self._cancelled and not self._fatal:
            try:
                task_id, trial = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._gate.wait()
            if self._cancelled or self._fatal:
                return
            await self._one(task_id, trial)

    async def _one(self, task_id: str, trial: int = 0) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            self._record_error(task_id, "", {}, f"task {task_id} is no longer in the workspace", 0, "", trial)
            return
        if task.environment:
            await run_episode(self, task, trial)
            return
        started_at = now()
        self.progress.in_flight += 1
        try:
            sent = await self.send(task.id, task.messages, task.tools)
        finally:
            self.progress.in_flight -= 1
        if isinstance(sent, Failed):
            if sent.message:
                self._record_error(task_id, task.category, sent.request, sent.message, sent.attempt, started_at,
                                   trial)
            return
        await self._store(task, sent.request, sent.raw, sent.t0, sent.attempt, started_at, sent.estimate, trial)

    async def send(self, task_id: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Sent | Failed:
        """One chat completion with the run's rate limits, retries, pause gate and logprobs probe.
        A fatal error (bad key, unknown model) also stops the run (`_fatal`). Failed.message is empty
        when the run was cancelled."""
        request = build_request(self.tier, messages, tools, top_logprobs=self.top_logprobs)
        estimate = len(json.dumps(request)) // 4 + 256
        probed = False
        attempt = 0
        while True:
            attempt += 1
            if self._logprobs_verdict is True and request.get("logprobs"):
                request = build_request(self.tier, messages, tools, logprobs=False)
            await self._gate.wait()
            if self._cancelled:
                return Failed(request, "", attempt)
            await self._limiter.acquire(estimate)
            t0 = time.perf_counter()
            try:
                # The SDK's low-level post: same transport, auth and error mapping as
                # chat.completions.create, without re-validating the request and building
                # pydantic models of the response (4 ms a call): we store plain JSON anyway.
                raw = await self._post(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                if not probed and self._may_be_logprobs(exc, request):
                    probed = True
                    plain = build_request(self.tier, messages, tools, logprobs=False)
                    try:
                        raw = await self._post(plain)
                    except asyncio.CancelledError:
                        raise
                    except Exception as probe_exc:  # noqa: BLE001 - not about logprobs after all
                        if self._logprobs_verdict is None:
                            self._logprobs_verdict = False
                        exc = probe_exc
                    else:
                        self._learn_no_logprobs(exc)
                        return Sent(plain, raw, t0, attempt, estimate)
                if is_fatal(exc):
                    _, message = describe_error(exc, self.tier)
                    self._fatal = message
                    return Failed(request, message, attempt)
                if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
                    self._connection_failures += 1
                    if self._connection_failures >= max(12, 2 * self.concurrency):
                        _, message = describe_error(exc, self.tier)
                        self._fatal = f"The server stopped answering: {message}"
                        return Failed(request, message, attempt)
                if is_retryable(exc) and attempt < self.max_attempts and not self._cancelled:
                    self.progress.retries += 1
                    delay = backoff_delay(attempt - 1, retry_after_seconds(exc), base=self.backoff_base, rng=self._rng)
                    log.info("Task %s: %s; retry %d in %.2fs", task_id, type(exc).__name__, attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                _, message = describe_error(exc, self.tier)
                return Failed(request, message, attempt)
            return Sent(request, raw, t0, attempt, estimate)

    async def _post(self, request: dict[str, Any]) -> bytes:
        """One chat completion's answer (2xx), else the openai SDK's exception for it: through the fast
        client (services.upstream: the body serialised once, a keep-alive pool, the same whole-request
        timeout and answer cap), or the SDK's post where there is none."""
        if self._fast is None:
            return await self._client.post("/chat/completions", body=request, cast_to=bytes)
        try:
            return await self._fast.post(orjson.dumps(request))
        except AnswerTooLarge as exc:
            raise refusal_error(self._client, self._fast.url, exc) from None

    async def _store(self, task: Task, request: dict[str, Any], raw: bytes, t0: float, attempt: int,
                     started_at: str, estimate: int, trial: int = 0) -> bool:
        """Parse and save one answer; an answer that is not a chat completion is a recorded failure,
        never an "ok" trajectory nor a dropped exception. True when stored as ok."""
        traj = self.parse(task.id, request, raw, t0, attempt, started_at, estimate)
        if isinstance(traj, str):
            self._record_error(task.id, task.category, request, traj, attempt, started_at, trial)
            return False
        if not self._save(traj, task.category, trial, kept_verdict(traj.tool_calls, task.expected, task.tools)):
            return False
        self.progress.done += 1
        self.progress.new_done += 1
        self.progress.tokens += traj.usage.total
        self.progress.cost_micro += traj.cost_micro
        if self.on_trajectory:
            self.on_trajectory(traj)
        self._emit()
        return True

    def parse(self, task_id: str, request: dict[str, Any], raw: bytes, t0: float, attempt: int, started_at: str,
              estimate: int) -> Trajectory | str:
        """The answer as a trajectory, or why it is not a usable chat completion (in words)."""
        latency = (time.perf_counter() - t0) * 1000
        self._connection_failures = 0
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = raw[:60].decode("utf-8", "replace")
            return f"the server's answer is not a chat completion: not JSON (it begins {text!r})"
        try:
            traj = trajectory_from_response(task_id, self.tier, request, data, latency, started_at=started_at,
                                            finished_at=now(), attempts=attempt)
        except ResponseError as exc:
            return str(exc)
        self._limiter.settle(estimate, traj.usage.total)
        return traj

    def _save(self, traj: Trajectory, category: str, trial: int = 0, correct: bool | None = None) -> bool:
        """Store one finished task (with its verdict, so no first Trade-offs load computes it). A full
        disk stops the run at once, in words (the answers already saved stay; the next run resumes after them)."""
        return self.persist(lambda: self._trajs.save(self.run_record.id, traj, category, trial, correct),
                            paid=traj.status == "ok")

    def persist(self, write: Callable[[], Any], *, paid: bool = True) -> bool:
        """Run one write to the workspace; False (and the run stopped, in words) when the disk is full."""
        try:
            write()
            return True
        except (sqlite3.OperationalError, OSError) as exc:
            if not _disk_full(exc):
                raise
            if paid:
                self._unsaved += 1
            if not self._fatal:
                self._fatal = (f"The disk holding {self.ws.path} is full ({exc}). The run stopped; what was saved "
                               "is kept. Free some space and run again: it resumes after the saved answers.")
                self._cancelled = True
                self._gate.set()
            return False

    def _may_be_logprobs(self, exc: BaseException, request: dict[str, Any]) -> bool:
        """A failure that asking for logprobs may have caused: worth one probe without them."""
        if not request.get("logprobs") or self._logprobs_verdict is False:
            return False
        if not isinstance(exc, openai.APIStatusError):
            return False
        if self._logprobs_verdict is True:
            return True  # sent before the verdict: send it again without
        if "logprob" in str(exc).lower():
            return True
        return self._logprobs_verdict is None and exc.status_code in (400, 422, 500, 501)

    def _learn_no_logprobs(self, exc: BaseException) -> None:
        """The same request without logprobs worked: stop asking for them, for this run and the tier."""
        if self._logprobs_verdict is True:
            return
        self._logprobs_verdict = True
        self.tier = self.tier.replace(logprobs_unsupported=True)
        TierRepository(self.ws).mark_logprobs_unsupported(self.tier.tier)
        events.publish(events.TIERS, self.ws)
        _, why = describe_error(exc, self.tier)
        self._note = self.progress.message = (f"{self.tier.base_url} fails when asked for logprobs ({why}); tier {self.tier.tier} "
                                 "now collects without them, so it has no confidence and "
                                 f"{'always escalates' if self.tier.without_logprobs == 'escalate' else 'never escalates'}.")
        log.warning("Tier %s: %s", self.tier.tier, self.progress.message)

    def _record_error(self, task_id: str, category: str, request: dict[str, Any], message: str, attempts: int,
                      started_at: str, trial: int = 0) -> None:
        traj = Trajectory(task_id=task_id, tier=self.tier.tier, model=self.tier.model, status="error", request=request,
                          error=message, attempts=attempts, started_at=started_at, finished_at=now(),
                          generation=generation_id(self.tier))
        self._save(traj, category, trial)
        self.progress.failed += 1
        self.progress.message = message
        self._emit()

    def emit(self, force: bool = False) -> None:
        """Report progress (at most every `progress_interval`, unless forced)."""
        self._emit(force)

    def _emit(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        t = time.perf_counter()
        self.progress.elapsed_s = t - getattr(self, "_started", t)
        if force or t - self._last_emit >= self.progress_interval:
            self._last_emit = t
            self.on_progress(self.progress)


def select_task_ids(ws: Workspace, category: str | None = None, limit: int | None = None) -> list[str]:
    return TaskRepository(ws).ids(category, limit)


def _disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in text or "database or disk is full" in text
            or "no space left" in text)


def start_or_resume(ws: Workspace, tier: Tier, task_ids: list[str], params: dict[str, Any], *,
                    batch: bool = False, again: bool = False, trials: int = 1) -> tuple[Run, bool]:
    """Resume the unfinished run of this tier's current generation over the same tasks (and mode),
    or create a new one. A run skips tasks that already have an ok answer of the generation unless
    `again` (collecting again on purpose)."""
    runs = RunRepository(ws)
    generation = generation_id(tier)
    TrajectoryRepository(ws).record_generation(tier.tier, generation, generation_params(tier))
    existing = runs.find_unfinished(tier.tier, task_ids, generation)
    if existing is not None and bool(existing.params.get("batch")) == batch and bool(existing.params.get("again")) == again \
            and int(existing.params.get("trials") or 1) == trials:
        return existing, True
    extra = {"trials": trials} if trials > 1 else {}
    return runs.create(tier.tier, tier.model, task_ids, {**params, "again": again, **extra}, generation), False

