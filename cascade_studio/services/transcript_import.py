"""Import agent traces operators already have: OpenAI chat-completions transcripts, one
conversation a line, as many logging tools export them, become agent episodes of a tier.

    {"id": "conv-1", "category": "support", "model": "gpt-4o",
     "tools": [{"type": "function", "function": {...}}],
     "messages": [{"role": "system", ...}, {"role": "user", ...},
                  {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                   "function": {"name": "get_order", "arguments": "{\"id\": 7}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "{...}"},
                  {"role": "assistant", "content": "Your order ships today."}]}

The messages before the first assistant turn are the task (created, or updated, under `id`; a
hash of them when there is none); every assistant turn is a step and the tool messages after it its
results. An assistant message may carry `usage` ({prompt_tokens, completion_tokens}) to price it.
The whole file is checked before anything is stored; every problem names its line and field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.episode import ANSWERED, STEP_LIMIT, Episode, Step, ToolResult, tool_turn_problems
from cascade_studio.core.tasks import Task
from cascade_studio.core.tiers import Tier, generation_id
from cascade_studio.core.trajectory import Trajectory, Usage, cost_of, parse_tool_calls
from cascade_studio.services import events
from cascade_studio.services.trajectory_io import TrajectoryImportError, _rows
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import RunRepository, now
from cascade_studio.store.workspace import Workspace


@dataclass(frozen=True)
class TranscriptImportResult:
    file: str
    tier: int
    episodes: int
    steps: int
    tasks_added: int
    other_models: int  # episodes of a model other than the tier's: kept as history, not the current generation

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _fail(name: str, number: int, field: str, problem: str) -> TrajectoryImportError:
    return TrajectoryImportError(f"{name}:{number}: {field}: {problem}")


def _parse(name: str, number: int, row: dict[str, Any], tier: Tier, environment: str) -> tuple[Task, Episode]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _fail(name, number, "messages", "must be a list of chat messages (an OpenAI transcript)")
    first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), None)
    if first is None or first == 0:
        raise _fail(name, number, "messages", "needs the prompt and then at least one assistant message")
    problems = [f"{kind} ({detail})" for kind, detail in tool_turn_problems(messages)]
    if problems:
        raise _fail(name, number, "messages", "; ".join(problems[:3]))
    tools = row.get("tools") or []
    if not isinstance(tools, list):
        raise _fail(name, number, "tools", "must be a list of OpenAI tool definitions")
    prompt = messages[:first]
    task_id = row.get("id") or row.get("task_id") or "transcript-" + hashlib.sha1(
        json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:12]
    category = row.get("category") or "imported"
    if not isinstance(task_id, str | int) or not isinstance(category, str):
        raise _fail(name, number, "id/category", "must be text")
    task_id = str(task_id)
    model = row.get("model") if isinstance(row.get("model"), str) and row.get("model") else tier.model
    generation = generation_id(tier) if model == tier.model else f"import:{model}"
    key = hashlib.sha1(f"{tier.tier}|{task_id}|{name}".encode()).hexdigest()[:32]
    env = row.get("environment")
    environment = environment or (env if isinstance(env, str) else "")
    episode = Episode(task_id, tier.tier, model, generation, key, environment=environment)
    calls: dict[str, dict[str, Any]] = {}
    for i in range(first, len(messages)):
        m = messages[i]
        if m.get("role") == "tool":
            call = calls.get(m.get("tool_call_id"), {})
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            episode.steps[-1].results.append(ToolResult(str(m.get("tool_call_id")), str(call.get("name") or ""),
                                                        call.get("arguments"), text))
            continue
        if m.get("role") != "assistant":
            raise _fail(name, number, f"messages[{i}]", "after the first assistant turn only assistant and tool "
                                                          "messages can follow (one episode a line)")
        usage = Usage.from_json(m.get("usage"))
        message = {k: v for k, v in m.items() if k in ("role", "content", "tool_calls")}
        parsed = parse_tool_calls(message)
        calls.update({c["id"]: c for c in parsed if c.get("id")})
        call = Trajectory(task_id=task_id, tier=tier.tier, model=model, status="ok",
                          request={"model": model, "messages": messages[:i], **({"tools": tools} if tools else {})},
                          response={"object": "chat.completion", "model": model,
                                    "choices": [{"index": 0, "message": message, "finish_reason":
                                                 "tool_calls" if parsed else "stop"}],
                                    "usage": {"prompt_tokens": usage.prompt_tokens,
                                              "completion_tokens": usage.completion_tokens}},
                          content=m.get("content") if isinstance(m.get("content"), str) else None,
                          tool_calls=parsed, final_answer=None if parsed else m.get("content"), usage=usage,
                          cost_micro=cost_of(usage, tier), finished_at=now(), generation=generation)
        episode.steps.append(Step(len(episode.steps), call))
    episode.end_reason = ANSWERED if episode.steps[-1].answered else STEP_LIMIT
    task = Task(task_id, category, prompt, tools, row.get("expected"), source=name, environment=environment)
    return task, episode


def import_transcripts(ws: Workspace, path: Path, tier: Tier, *, environment: str = "") -> TranscriptImportResult:
    """Check every line, then store the tasks and the episodes (a re-import updates, never duplicates)."""
    name = Path(path).name
    parsed = [_parse(name, number, row, tier, environment) for number, row in _rows(path)]
    if not parsed:
        raise TrajectoryImportError(f"{name}: the file holds no transcripts")
    tasks = TaskRepository(ws)
    before = tasks.count()
    tasks.upsert(list({t.id: t for t, _ in parsed}.values()))
    run_id = RunRepository(ws).import_run(tier.tier, tier.model, f"transcripts:{name}")
    repo = EpisodeRepository(ws)
    for task, episode in parsed:
        for step in episode.steps:
            repo.save_step(episode, step, run_id)
        repo.finish(run_id, episode, task.category)
    events.publish(events.TASKS, ws)
    events.publish(events.TRAJECTORIES, ws)
    return TranscriptImportResult(name, tier.tier, len(parsed), sum(len(e.steps) for _, e in parsed),
                                  tasks.count() - before, sum(e.generation != generation_id(tier) for _, e in parsed))
