"""The agent loop of a collection run: call the tier -> run every tool call of its reply in the
task's environment (parallel calls concurrently) -> append the results as tool messages -> repeat,
until the model answers without a tool call, a hand-off tool is called, the step limit, the
deadline, or an error. A conversational task (task.user) has a user: after each of the agent's text
turns the user speaks (scripted, or a user simulator), and the conversation goes on until the user
stops (its stop marker, or no scripted turn left), a hand-off, or the step limit. A step stays one
agent turn: the user's turns are stored with the step they answer, inputs of the next.

Every step is committed as soon as the model has answered (so a kill never loses a paid call) and
again with its tool results. A run that finds stored steps of an unfinished episode goes on from
them: the paid model calls are not made again, the missing tool calls of the last step are run,
and, for environments whose state lives in the process it starts (stdio, python), the earlier tool
calls are replayed in the fresh session so that its state matches what the model saw. A user's
turn is stored as soon as it is said, so a resumed conversation never pays for a turn twice.

The loop talks to the run that hosts it through EpisodeHost (send, parse, persist, emit, progress):
services.collector imports this module, never the other way round.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from cascade_studio.core.episode import (
    ANSWERED,
    DEADLINE,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_STEPS,
    ERROR,
    HANDOFF,
    STEP_LIMIT,
    USER_STOP,
    Episode,
    Step,
    check_call,
    check_tool_names,
    check_verdict,
    conversation,
    is_handoff_tool,
)
from cascade_studio.core.tasks import Task
from cascade_studio.core.tiers import Tier, generation_id, generation_keys
from cascade_studio.core.trajectory import Trajectory, Usage
from cascade_studio.core.user_sim import is_stop
from cascade_studio.services.agent.environments import (
    EnvironmentError_,
    EnvironmentSpec,
    EnvironmentStopped,
    ToolSession,
    get_environment,
    open_session,
)
from cascade_studio.services.agent.user import ConversationUser, UserFailed
from cascade_studio.services.model_calls import Failed, Sent
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.trajectories import Run, now
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)


class EpisodeProgress(Protocol):
    in_flight: int
    tokens: int
    cost_micro: int
    done: int
    new_done: int
    failed: int
    message: str


class EpisodeHost(Protocol):
    """What the loop needs of the run that hosts it (services.collector.CollectionRun)."""
    ws: Workspace
    tier: Tier
    secrets: SecretStore
    run_record: Run
    progress: EpisodeProgress
    environments: dict[str, Any]
    on_trajectory: Callable[[Trajectory], None] | None

    async def send(self, task_id: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Sent | Failed:
        ...

    def parse(self, task_id: str, request: dict[str, Any], raw: bytes, t0: float, attempt: int, started_at: str,
              estimate: int) -> Trajectory | str:
        ...

    def persist(self, write: Callable[[], Any], *, paid: bool = True) -> bool:
        ...

    def emit(self, force: bool = False) -> None:
        ...


def episode_limits(task: Task, params: dict[str, Any]) -> tuple[int, float]:
    """(max steps, deadline in seconds) of a task's episode: the task's own limit, else the run's."""
    max_steps = task.max_steps or int(params.get("max_steps") or DEFAULT_MAX_STEPS)
    return max(1, max_steps), float(params.get("deadline_s") or DEFAULT_DEADLINE_S)


async def run_episode(run: EpisodeHost, task: Task, trial: int = 0) -> None:
    """Run (or go on with) the episode of one task (and trial); stores its steps and, at the end, its row."""
    repo = EpisodeRepository(run.ws)
    tier = run.tier
    generation = generation_id(tier)
    key = repo.unfinished(task.id, tier.tier, generation_keys(tier), trial)
    steps = repo.steps(key) if key else []
    episode = Episode(task.id, tier.tier, tier.model, generation, key or uuid.uuid4().hex, steps,
                      environment=task.environment, trial=trial, prompt=list(task.messages),
                      system_inserted=bool(tier.system_prompt) and not any(
                          m.get("role") in ("system", "developer") for m in task.messages))
    episode.wall_ms = sum(s.call.latency_ms + sum(r.duration_ms for r in s.results) for s in steps)
    _user_totals(episode)
    max_steps, deadline_s = episode_limits(task, run.run_record.params)
    user = ConversationUser(task.user, run.ws, tier, run.secrets) if task.user else None
    run.progress.in_flight += 1
    try:
        spec = _spec(run, task.environment)
        async with open_session(spec, run.secrets, hidden=check_tool_names(task.expected)) as session:
            if steps:
                await _replay(session, spec, episode)
            await _loop(run, task, session, episode, repo, max_steps, deadline_s, user)
            await run_check(session, task, episode)
    except EnvironmentError_ as exc:  # could not start, or stopped mid-episode: an error, in words
        episode.end_reason, episode.error = ERROR, str(exc)
    except UserFailed as exc:
        episode.end_reason, episode.error = ERROR, f"step {len(episode.steps)}: {exc}"
    finally:
        run.progress.in_flight -= 1
        if user is not None:
            await user.aclose()
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


def _user_totals(episode: Episode) -> None:
    """The simulated user's tokens and cost, from its stored turns (kept apart from the agent's)."""
    used = [t["_usage"] for s in episode.steps for t in s.user_turns if isinstance(t.get("_usage"), list)]
    if used:
        episode.user_usage = Usage(sum(u[0] for u in used), sum(u[1] for u in used))
        episode.user_cost_micro = sum(u[2] for u in used)


def _spec(run: EpisodeHost, name: str) -> EnvironmentSpec:
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


async def _loop(run: EpisodeHost, task: Task, session: ToolSession, episode: Episode, repo: EpisodeRepository,
                max_steps: int, deadline_s: float, user: ConversationUser | None = None) -> None:
    tools = _tools(session, task)
    started = time.perf_counter() - episode.wall_ms / 1000
    # the last stored step may lack its tool results (killed while they ran): run them first
    if episode.steps and len(episode.steps[-1].results) < len(episode.steps[-1].call.tool_calls):
        if not await _run_tools(run, session, episode, episode.steps[-1], repo):
            return
    while True:
        last = episode.steps[-1] if episode.steps else None
        if last is not None and any(is_handoff_tool(c.get("name")) for c in last.call.tool_calls):
            episode.end_reason = HANDOFF  # handed to a person: the agent's part is over
            break
        if last is not None and last.answered:
            if user is None or task.user is None:
                episode.end_reason = ANSWERED
                break
            if not last.user_turns:  # the user answers the agent's turn (stored at once: never paid twice)
                if len(episode.steps) >= max_steps:  # no agent step could follow: do not pay the user's turn
                    episode.end_reason = STEP_LIMIT
                    break
                turn = await user.reply(episode.messages_before(task.messages), episode.steps)
                if turn is None:  # a scripted user with nothing more to say
                    episode.end_reason = USER_STOP
                    break
                last.user_turns.append(turn)
                _user_totals(episode)
                if not run.persist(lambda s=last: repo.save_step(episode, s, run.run_record.id)):
                    return
            if is_stop(last.user_turns[-1], task.user):
                episode.end_reason = USER_STOP
                break
        if len(episode.steps) >= max_steps:
            episode.end_reason = STEP_LIMIT
            break
        if time.perf_counter() - started > deadline_s:
            episode.end_reason = DEADLINE
            break
        messages = conversation(episode.messages_before(task.messages), episode.steps)
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
        run.emit()
    episode.wall_ms = (time.perf_counter() - started) * 1000


def _tools(session: ToolSession, task: Task) -> list[dict[str, Any]]:
    """The environment's tools (check tools hidden) and the task's own, by name, the task's last."""
    names = {t["function"]["name"] for t in session.tools}
    return session.tools + [t for t in task.tools if t.get("function", {}).get("name") not in names]


async def _run_tools(run: EpisodeHost, session: ToolSession, episode: Episode, step: Step,
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


def _finish(run: EpisodeHost, task: Task, episode: Episode, repo: EpisodeRepository) -> None:
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
    run.emit()
