"""The agent loop of a collection run: call the tier -> run every tool call of its reply in the
task's environment (parallel calls concurrently) -> append the results as tool messages -> repeat,
until the model answers without a tool call, the step limit, the deadline, or an error.

Every step is committed as soon as the model has answered (so a kill never loses a paid call) and
again with its tool results. A run that finds stored steps of an unfinished episode goes on from
them: the paid model calls are not made again, the missing tool calls of the last step are run,
and, for environments whose state lives in the process it starts (stdio, python), the earlier tool
calls are replayed in the fresh session so that its state matches what the model saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from cascade_studio.core.episode import (
    ANSWERED,
    DEADLINE,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_STEPS,
    ERROR,
    STEP_LIMIT,
    Episode,
    Step,
    check_call,
    check_tool_names,
    check_verdict,
    conversation,
)
from cascade_studio.core.tasks import Task
from cascade_studio.core.tiers import generation_id, generation_keys
from cascade_studio.services.agent.environments import (
    EnvironmentError_,
    EnvironmentSpec,
    EnvironmentStopped,
    ToolSession,
    get_environment,
    open_session,
)
from cascade_studio.services.collector import Failed
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.trajectories import now

if TYPE_CHECKING:
    from cascade_studio.services.collector import CollectionRun

log = logging.getLogger(__name__)


def episode_limits(task: Task, params: dict[str, Any]) -> tuple[int, float]:
    """(max steps, deadline in seconds) of a task's episode: the task's own limit, else the run's."""
    max_steps = task.max_steps or int(params.get("max_steps") or DEFAULT_MAX_STEPS)
    return max(1, max_steps), float(params.get("deadline_s") or DEFAULT_DEADLINE_S)


async def run_episode(run: CollectionRun, task: Task) -> None:
    """Run (or go on with) the episode of one task; stores its steps and, at the end, its row."""
    repo = EpisodeRepository(run.ws)
    tier = run.tier
    generation = generation_id(tier)
    key = repo.unfinished(task.id, tier.tier, generation_keys(tier))
    steps = repo.steps(key) if key else []
    episode = Episode(task.id, tier.tier, tier.model, generation, key or uuid.uuid4().hex, steps,
                      environment=task.environment)
    episode.wall_ms = sum(s.call.latency_ms + sum(r.duration_ms for r in s.results) for s in steps)
    max_steps, deadline_s = episode_limits(task, run.run_record.params)
    run.progress.in_flight += 1
    try:
        spec = _spec(run, task.environment)
        async with open_session(spec, run.secrets, hidden=check_tool_names(task.expected)) as session:
            if steps:
                await _replay(session, spec, episode)
            await _loop(run, task, session, episode, repo, max_steps, deadline_s)
            await run_check(session, task, episode)
    except EnvironmentError_ as exc:  # could not start, or stopped mid-episode: an error, in words
        episode.end_reason, episode.error = ERROR, str(exc)
    finally:
        run.progress.in_flight -= 1
    if episode.end_reason is None:  # cancelled or stopped by the run: the steps stay for the next run
        return
    _finish(run, task, episode, repo)


async def run_check(session: ToolSession, task: Task, episode: Episode) -> None:
    """The task's state check (expected.check), in the episode's own session once it has ended."""
    check = check_call(task.expected)
    if check is None or episode.end_reason in (None, ERROR):
        return
    result = await session.call(check[0], check[1], call_id="check")
    episode.check_passed, episode.check_detail = check_verdict(result)


def _spec(run: CollectionRun, name: str) -> EnvironmentSpec:
    if name not in run.environments:  # read once per run
        run.environments[name] = get_environment(run.ws, name)
    return run.environments[name]


async def _replay(session: ToolSession, spec: EnvironmentSpec, episode: Episode) -> None:
    """Bring a fresh session to the state the stored steps left it in (their tool calls again, in
    order; the stored results stay what the model saw). Servers over http keep their own state."""
    if spec.kind == "http":
        return
    for step in episode.steps:
        for stored in step.results:
            again = await session.call(stored.name, stored.arguments, stored.call_id)
            if (again.content, again.is_error) != (stored.content, stored.is_error):
                log.info("Episode %s step %d: %s gave a different result on replay", episode.key, step.index,
                         stored.name)


async def _loop(run: CollectionRun, task: Task, session: ToolSession, episode: Episode, repo: EpisodeRepository,
                max_steps: int, deadline_s: float) -> None:
    tools = _tools(session, task)
    started = time.perf_counter() - episode.wall_ms / 1000
    # the last stored step may lack its tool results (killed while they ran): run them first
    if episode.steps and len(episode.steps[-1].results) < len(episode.steps[-1].call.tool_calls):
        if not await _run_tools(run, session, episode, episode.steps[-1], repo):
            return
    while True:
        if episode.steps and episode.steps[-1].answered:
            episode.end_reason = ANSWERED
            break
        if len(episode.steps) >= max_steps:
            episode.end_reason = STEP_LIMIT
            break
        if time.perf_counter() - started > deadline_s:
            episode.end_reason = DEADLINE
            break
        messages = conversation(task.messages, episode.steps)
        started_at = now()
        sent = await run.send(task.id, messages, tools)
        if isinstance(sent, Failed):
            if sent.message:  # a model call that failed after its retries ends the episode in words
                episode.end_reason = ERROR
                episode.error = f"step {len(episode.steps) + 1}: {sent.message}"
            break  # cancelled: no end; the stored steps stay
        call = run.parse(task.id, sent.request, sent.raw, sent.t0, sent.attempt, started_at, sent.estimate)
        if isinstance(call, str):
            episode.end_reason, episode.error = ERROR, f"step {len(episode.steps) + 1}: {call}"
            break
        step = Step(len(episode.steps), call)
        episode.steps.append(step)
        run.progress.tokens += call.usage.total
        run.progress.cost_micro += call.cost_micro
        if not run.persist(lambda s=step: repo.save_step(episode, s, run.run_record.id)):
            return
        if step.call.tool_calls and not await _run_tools(run, session, episode, step, repo):
            return
        run._emit()
    episode.wall_ms = (time.perf_counter() - started) * 1000


def _tools(session: ToolSession, task: Task) -> list[dict[str, Any]]:
    """The environment's tools (check tools hidden) and the task's own, by name, the task's last."""
    names = {t["function"]["name"] for t in session.tools}
    return session.tools + [t for t in task.tools if t.get("function", {}).get("name") not in names]


async def _run_tools(run: CollectionRun, session: ToolSession, episode: Episode, step: Step,
                     repo: EpisodeRepository) -> bool:
    """Run the step's tool calls not yet run (concurrently) and store the results. False when the run
    stopped (a full disk); EnvironmentStopped propagates."""
    ids = [str(c.get("id") or f"call-{i}") for i, c in enumerate(step.call.tool_calls)]
    have = {r.call_id: r for r in step.results}
    pending = [(i, c) for i, c in enumerate(step.call.tool_calls) if ids[i] not in have]
    results = await asyncio.gather(*(session.call(str(c.get("name")), c.get("arguments"), ids[i])
                                     for i, c in pending), return_exceptions=True)
    for r in results:
        if isinstance(r, EnvironmentStopped | asyncio.CancelledError):
            raise r
        if isinstance(r, BaseException):
            raise EnvironmentError_(f"a tool call failed inside the app: {type(r).__name__}: {r}") from r
        have[r.call_id] = r
    step.results = [have[i] for i in ids if i in have]
    return run.persist(lambda: repo.save_step(episode, step, run.run_record.id))


def _finish(run: CollectionRun, task: Task, episode: Episode, repo: EpisodeRepository) -> None:
    if not run.persist(lambda: repo.finish(run.run_record.id, episode, task.category),
                       paid=episode.end_reason != ERROR):
        return
    if episode.end_reason == ERROR:
        run.progress.failed += 1
        run.progress.message = f"Task {task.id}: {episode.error}"
    else:
        run.progress.done += 1
        run.progress.new_done += 1
    if run.on_trajectory:
        run.on_trajectory(episode.summary())
    run._emit()
