"""Import agent traces operators already have: OpenAI chat-completions transcripts, one
conversation a line, as many logging tools and agent benchmarks export them, become agent episodes
of a tier.

    {"task_id": "conv-1", "trial": 0, "category": "support", "model": "gpt-4o",
     "outcome": {"reward": 1.0}, "usage": {"prompt_tokens": 900, "completion_tokens": 60},
     "latency_ms": 5400, "cost_usd": 0.0031, "end_reason": "user_stop",
     "tools": [{"type": "function", "function": {...}}],
     "messages": [{"role": "system", ...}, {"role": "user", ...},
                  {"role": "assistant", "content": null, "tool_calls": [...]},
                  {"role": "tool", "tool_call_id": "c1", "content": "{...}"},
                  {"role": "assistant", "content": "Your order ships today. Anything else?"},
                  {"role": "user", "content": "No, thanks."}, ...]}

The messages before the first assistant turn are the prompt; every assistant turn is a step, the
tool messages after it its results, and user messages anywhere after it the user's turns (inputs:
they add no step). Optional per line: `task_id` (or `id`; a hash of the prompt when none), `trial`
(an integer: several episodes of one task), `outcome` ({"success": bool} and/or {"reward": number};
only a reward: success = reward >= 1, within 1e-6), `usage` (OpenAI's names, the whole episode's;
an assistant message may carry its own), `latency_ms`, `cost_usd`, `user_cost_usd`, `end_reason`
(free text mapped onto the app's reasons, core.episode.end_reason_from_text), `model`, `expected`,
`environment`. What a line does not give (usage, latency, cost) is unknown, never zero.

A task id already stored with another prompt or tools is never rewritten silently (`on_conflict`):
`keep` (default) keeps the stored task and the episode keeps its own prompt; `replace` stores the
line's; `new-id` stores the line's under `<id>~<hash>`. The whole file is checked before anything
is stored; every problem names its line and field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cascade_studio.core.episode import (
    ANSWERED,
    HANDOFF,
    STEP_LIMIT,
    USER_STOP,
    Episode,
    Step,
    ToolResult,
    end_reason_from_text,
    handed_off,
    tool_turn_problems,
)
from cascade_studio.core.jsonl import is_number
from cascade_studio.core.tasks import Task
from cascade_studio.core.tiers import Tier, generation_id
from cascade_studio.core.trajectory import Trajectory, Usage, cost_of, parse_tool_calls
from cascade_studio.services import events
from cascade_studio.services.token_estimate import calibrate
from cascade_studio.services.trajectory_io import TrajectoryImportError, _rows
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import RunRepository, now
from cascade_studio.store.workspace import Workspace

ON_CONFLICT = ("keep", "replace", "new-id")
SUCCESS_REWARD = 1.0 - 1e-6  # a reward counts as success from 1 (agent benchmarks' rule, float-safe)
_INPUT_ROLES = ("user", "system", "developer")  # after the first assistant turn: inputs, never steps


@dataclass
class TranscriptImportResult:
    file: str
    tier: int
    episodes: int
    steps: int
    tasks_added: int
    other_models: int  # episodes of a model other than the tier's: kept as history, not the current generation
    tasks_updated: int = 0  # stored tasks whose prompt or tools this file replaced (--on-conflict replace)
    tasks_different: int = 0  # tasks kept although a line's prompt differs (stored, or an earlier line's): the
    # episode keeps its own
    tasks_renamed: int = 0  # --on-conflict new-id: tasks stored under a new id
    user_turns: int = 0
    trials: int = 0  # distinct trial numbers
    outcomes: int = 0  # episodes with a recorded outcome
    unknown: dict[str, int] = field(default_factory=dict)  # episodes whose usage, latency or cost is unknown

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _fail(name: str, number: int, field_name: str, problem: str) -> TrajectoryImportError:
    return TrajectoryImportError(f"{name}:{number}: {field_name}: {problem}")


def outcome_of(value: Any, fail) -> dict[str, Any] | None:
    """{"success": bool, "reward": float | None} from a line's `outcome` (None: not recorded)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not ({"success", "reward"} & set(value)):
        raise fail("outcome", 'must be {"success": true|false} and/or {"reward": number}')
    reward = value.get("reward")
    if reward is not None and not is_number(reward):
        raise fail("outcome.reward", "must be a number")
    success = value.get("success")
    if success is not None and not isinstance(success, bool):
        raise fail("outcome.success", "must be true or false")
    if success is None:
        if reward is None:
            return None
        success = float(reward) >= SUCCESS_REWARD
    return {"success": success, "reward": None if reward is None else float(reward)}


def _usd_micro(value: Any, fail, field_name: str) -> int | None:
    if value is None:
        return None
    if not is_number(value) or value < 0:
        raise fail(field_name, "must be a number of US dollars (0 or more)")
    try:
        return int((Decimal(str(value)) * 1_000_000).to_integral_value())
    except InvalidOperation:
        raise fail(field_name, "must be a number of US dollars") from None


def _parse(name: str, number: int, row: dict[str, Any], tier: Tier, environment: str) -> tuple[Task, Episode]:
    def fail(field_name: str, problem: str) -> TrajectoryImportError:
        return _fail(name, number, field_name, problem)

    messages = row.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise fail("messages", "must be a list of chat messages (an OpenAI transcript)")
    first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), None)
    if first is None or first == 0:
        raise fail("messages", "needs the prompt and then at least one assistant message")
    problems = [f"{kind} ({detail})" for kind, detail in tool_turn_problems(messages)]
    if problems:
        raise fail("messages", "; ".join(problems[:3]))
    tools = row.get("tools") or []
    if not isinstance(tools, list):
        raise fail("tools", "must be a list of OpenAI tool definitions")
    prompt = messages[:first]
    task_id = row.get("task_id") if row.get("task_id") is not None else row.get("id")
    task_id = task_id if task_id is not None else "transcript-" + hashlib.sha1(
        json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:12]
    category = row.get("category") or "imported"
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or not str(task_id).strip() \
            or not isinstance(category, str):
        raise fail("task_id/category", "must be text")
    task_id = str(task_id)
    trial = row.get("trial", 0)
    if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
        raise fail("trial", "must be a whole number (0 or more)")
    outcome = outcome_of(row.get("outcome"), fail)
    latency = row.get("latency_ms")
    if latency is not None and (not is_number(latency) or latency < 0):
        raise fail("latency_ms", "must be a number of milliseconds (0 or more)")
    cost = _usd_micro(row.get("cost_usd"), fail, "cost_usd")
    user_cost = _usd_micro(row.get("user_cost_usd"), fail, "user_cost_usd")
    row_usage = row.get("usage")
    if row_usage is not None and not isinstance(row_usage, dict):
        raise fail("usage", "must be an object with OpenAI's names (prompt_tokens, completion_tokens)")
    end_text = row.get("end_reason")
    if end_text is not None and not isinstance(end_text, str):
        raise fail("end_reason", "must be text")
    model = row.get("model") if isinstance(row.get("model"), str) and row.get("model") else tier.model
    generation = generation_id(tier) if model == tier.model else f"import:{model}"
    key = hashlib.sha1((f"{tier.tier}|{task_id}|{name}" + (f"|{trial}" if trial else "")).encode()).hexdigest()[:32]
    env = row.get("environment")
    environment = environment or (env if isinstance(env, str) else "")
    episode = Episode(task_id, tier.tier, model, generation, key, environment=environment, trial=trial,
                      prompt=prompt, outcome=outcome)
    calls: dict[str, dict[str, Any]] = {}
    usage_known = True
    for i in range(first, len(messages)):
        m = messages[i]
        role = m.get("role")
        if role == "tool":
            call = calls.get(m.get("tool_call_id"), {})
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            episode.steps[-1].results.append(ToolResult(str(m.get("tool_call_id")), str(call.get("name") or ""),
                                                        call.get("arguments"), text))
            continue
        if role in _INPUT_ROLES:
            episode.steps[-1].user_turns.append({k: v for k, v in m.items() if k in ("role", "content", "name")})
            continue
        if role != "assistant":
            raise fail(f"messages[{i}].role", f"{str(role)[:20]!r} is not one of assistant, tool, user, system")
        usage_known = usage_known and isinstance(m.get("usage"), dict)
        usage = Usage.from_json(m.get("usage"))
        message = {k: v for k, v in m.items() if k in ("role", "content", "tool_calls")}
        parsed = parse_tool_calls(message)
        calls.update({c["id"]: c for c in parsed if c.get("id")})
        call = Trajectory(task_id=task_id, tier=tier.tier, model=model, status="ok",
                          request={"model": model, "messages": _inputs(messages[:i]),
                                   **({"tools": tools} if tools else {})},
                          response={"object": "chat.completion", "model": model,
                                    "choices": [{"index": 0, "message": message, "finish_reason":
                                                 "tool_calls" if parsed else "stop"}],
                                    "usage": {"prompt_tokens": usage.prompt_tokens,
                                              "completion_tokens": usage.completion_tokens}},
                          content=m.get("content") if isinstance(m.get("content"), str) else None,
                          tool_calls=parsed, final_answer=None if parsed else m.get("content"), usage=usage,
                          cost_micro=cost_of(usage, tier), finished_at=now(), generation=generation)
        episode.steps.append(Step(len(episode.steps), call))
    last = episode.steps[-1]
    if not usage_known and row_usage is not None:  # the line's usage is the episode's: on its last step
        for s in episode.steps:
            s.call.usage, s.call.cost_micro = Usage(), 0
        last.call.usage = Usage.from_json(row_usage)
        last.call.cost_micro = cost_of(last.call.usage, tier)
        usage_known = True
    if cost is not None:  # the recorded cost wins over the tier's prices
        for s in episode.steps:
            s.call.cost_micro = 0
        last.call.cost_micro = cost
    episode.unknown = tuple(w for w, known in (("usage", usage_known), ("cost", usage_known or cost is not None),
                                              ("latency", latency is not None)) if not known)
    episode.wall_ms = float(latency) if latency is not None else 0.0
    episode.user_cost_micro = user_cost
    episode.end_detail = end_text
    if handed_off(episode.steps):
        episode.end_reason = HANDOFF
    else:
        episode.end_reason = end_reason_from_text(end_text) or (
            USER_STOP if messages[-1].get("role") == "user" else ANSWERED if last.answered else STEP_LIMIT)
    task = Task(task_id, category, prompt, tools, row.get("expected"), source=name, environment=environment)
    return task, episode


def _inputs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages a step's model saw, as a chat request takes them (usage and extra fields dropped)."""
    keep = ("role", "content", "tool_calls", "tool_call_id", "name")
    return [{k: v for k, v in m.items() if k in keep} for m in messages]


def _same_prompt(a: Task, b: Task) -> bool:
    return json.dumps([a.messages, a.tools], sort_keys=True) == json.dumps([b.messages, b.tools], sort_keys=True)


def import_transcripts(ws: Workspace, path: Path, tier: Tier, *, environment: str = "",
                       on_conflict: str = "keep") -> TranscriptImportResult:
    """Check every line, then store the tasks and the episodes (a re-import updates, never duplicates)."""
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}")
    name = Path(path).name
    parsed = [_parse(name, number, row, tier, environment) for number, row in _rows(path)]
    if not parsed:
        raise TrajectoryImportError(f"{name}: the file holds no transcripts")
    tasks = TaskRepository(ws)
    stored = tasks.get_many(list({t.id for t, _ in parsed}))
    to_store: dict[str, Task] = {}
    added, updated, different, renamed = set(), set(), set(), set()
    for task, episode in parsed:
        reference = to_store.get(task.id) or stored.get(task.id)
        if reference is None:
            to_store[task.id] = task
            added.add(task.id)
        elif _same_prompt(reference, task):
            continue
        elif on_conflict == "replace":
            to_store[task.id] = task
            (updated if task.id in stored else added).add(task.id)
        elif on_conflict == "new-id":
            digest = hashlib.sha1(json.dumps([task.messages, task.tools], sort_keys=True).encode()).hexdigest()[:8]
            task.id = episode.task_id = f"{task.id}~{digest}"
            for s in episode.steps:
                s.call.task_id = task.id
            if task.id not in stored and task.id not in to_store:
                to_store[task.id] = task
                renamed.add(task.id)
        else:
            different.add(task.id)  # the stored task stays; the episode keeps its own prompt
    tasks.upsert(list(to_store.values()))
    calibrate(ws, list(to_store.values()))  # tokens per byte for run estimates (services.token_estimate)
    run_id = RunRepository(ws).import_run(tier.tier, tier.model, f"transcripts:{name}")
    repo = EpisodeRepository(ws)
    categories = {t.id: t.category for t, _ in parsed}
    for task, episode in parsed:
        for step in episode.steps:
            repo.save_step(episode, step, run_id)
        repo.finish(run_id, episode, categories[task.id], replace=True)
    events.publish(events.TASKS, ws)
    events.publish(events.TRAJECTORIES, ws)
    episodes = [e for _, e in parsed]
    unknown = {w: sum(w in e.unknown for e in episodes) for w in ("usage", "cost", "latency")}
    return TranscriptImportResult(
        name, tier.tier, len(parsed), sum(len(e.steps) for e in episodes), len(added),
        sum(e.generation != generation_id(tier) for e in episodes), tasks_updated=len(updated),
        tasks_different=len(different), tasks_renamed=len(renamed),
        user_turns=sum(len(s.user_turns) for e in episodes for s in e.steps),
        trials=len({e.trial for e in episodes}), outcomes=sum(e.outcome is not None for e in episodes),
        unknown={w: n for w, n in unknown.items() if n})
