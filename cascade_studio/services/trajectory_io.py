"""Trajectory listings and exports (native JSONL, CSV summary), the same rows for GUI and CLI."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from cascade_studio.core.agreement import kept_verdict
from cascade_studio.core.confidence import CONF_COLUMNS, by_method
from cascade_studio.core.errors import UserError
from cascade_studio.core.jsonl import JsonProblem, is_number, iter_objects
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tiers import Tier, generation_id, generation_keys
from cascade_studio.core.trajectory import ResponseError, Trajectory, build_request, trajectory_from_response
from cascade_studio.services import events
from cascade_studio.services.bounded_http import stored_answer_problem
from cascade_studio.services.input_files import open_lines
from cascade_studio.services.output_files import atomic_text
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository, now, restore_logprobs
from cascade_studio.store.trajectory_import import TrajectoryImport
from cascade_studio.store.workspace import Workspace


def list_rows(ws: Workspace, tier: int | None = None, ids: list[int] | None = None) -> list[dict[str, Any]]:
    """One object per trajectory: task_id, tier, model, status, tool, confidence (the tier's
    method), the three confidences, cost_usd, latency_ms, tokens, curation, tags."""
    tiers = TierRepository(ws).list()
    methods = {t.tier: t.confidence_method.value for t in tiers}
    current = {t.tier: set(generation_keys(t)) for t in tiers}
    out = []
    for r in TrajectoryRepository(ws).summary_rows(tier, ids):
        method = methods.get(r["tier"], "mean_token_prob")
        conf = by_method([r[column] for column in CONF_COLUMNS.values()])
        info = orjson.loads(r["episode_info"]) if r["episode_info"] else {}
        unknown = set(info.get("unknown") or ())
        out.append({
            "id": r["id"], "run_id": r["run_id"], "task_id": r["task_id"], "tier": r["tier"], "model": r["model"],
            "status": r["status"], "category": r["category"], "tool": r["tool_name"],
            "confidence": conf[method], "confidence_method": method, **conf,
            "cost_usd": None if "cost" in unknown else str(micro_to_usd(r["cost_micro"])),
            "latency_ms": None if "latency" in unknown else round(r["latency_ms"], 1),
            "prompt_tokens": None if "usage" in unknown else r["prompt_tokens"],
            "completion_tokens": None if "usage" in unknown else r["completion_tokens"],
            "curation": r["curation"], "tags": [t for t in (r["tags"] or "").split(",") if t],
            "generation": r["generation"], "current_generation": r["generation"] in current.get(r["tier"], ()),
            "steps": r["steps"], "end_reason": r["end_reason"], "trial": r["trial"],
            "outcome": info.get("outcome"),
        })
    return out


def show(ws: Workspace, traj_id: int) -> dict[str, Any]:
    """One trajectory in full; an episode with every step (tool results included) and its conversation."""
    from cascade_studio.core.episode import episode_json
    from cascade_studio.store.episodes import EpisodeRepository
    from cascade_studio.store.tasks import TaskRepository

    found = TrajectoryRepository(ws).get(traj_id)
    if found is None:
        raise UserError(f"No trajectory {traj_id}; `cascade-studio trajectories list` shows their ids.")
    t, meta = found
    out: dict[str, Any] = {
        **meta, "task_id": t.task_id, "tier": t.tier, "model": t.model, "status": t.status, "error": t.error,
        "generation": t.generation, "content": t.content, "tool_calls": t.tool_calls, "final_answer": t.final_answer,
        "usage": {"prompt_tokens": t.usage.prompt_tokens, "completion_tokens": t.usage.completion_tokens,
                  "cached_tokens": t.usage.cached_tokens, "reasoning_tokens": t.usage.reasoning_tokens},
        "cost_usd": str(micro_to_usd(t.cost_micro)), "latency_ms": round(t.latency_ms, 1),
        "confidence": {"mean_token_prob": t.conf_mean, "min_token_prob": t.conf_min, "tool_name_prob": t.conf_tool},
        "request": t.request, "steps": 1, "end_reason": None,
    }
    episode = EpisodeRepository(ws).of_trajectory(traj_id)
    if episode is not None:
        task = TaskRepository(ws).get(t.task_id)
        out.update(episode_json(episode, task.messages if task else None))
        if not episode.known("usage"):
            out["usage"] = None
        if not episode.known("cost"):
            out["cost_usd"] = None
        if not episode.known("latency"):
            out["latency_ms"] = None
        out["steps_detail"] = out.pop("steps")
        out["steps"] = len(episode.steps)
    return out


def _atomic_write(target: Path, write) -> int:
    with atomic_text(target, newline="") as fh:
        return write(fh)


def export_native(ws: Workspace, target: Path, tier: int | None = None, ids: list[int] | None = None) -> int:
    """Native trajectory JSONL: task_id, tier, model, request, response (a chat.completion with
    usage), latency_ms, created_at, plus status, error, curation and tags. `ids`: only those (the
    trajectories a filtered view shows)."""
    rows = TrajectoryRepository(ws).export_rows(tier, ids)

    def write(fh) -> int:
        n = 0
        for r in rows:
            fh.write(json.dumps({
                "task_id": r[0], "tier": r[1], "model": r[2], "status": r[3], "request": json.loads(r[4]),
                "response": None if r[5] is None else restore_logprobs(json.loads(r[5]), r[12]),
                "latency_ms": r[6], "created_at": r[7],
                "error": r[8], "curation": r[9], "tags": [t for t in (r[10] or "").split(",") if t],
                "category": r[11],
            }) + "\n")
            n += 1
        return n

    return _atomic_write(Path(target), write)


def export_csv(ws: Workspace, target: Path, tier: int | None = None, ids: list[int] | None = None) -> int:
    rows = list_rows(ws, tier, ids)
    columns = ["task_id", "tier", "model", "status", "category", "tool", "confidence", "mean_token_prob",
               "min_token_prob", "tool_name_prob", "cost_usd", "latency_ms", "prompt_tokens", "completion_tokens",
               "curation"]

    def write(fh) -> int:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return len(rows)

    return _atomic_write(Path(target), write)


# -- imports -------------------------------------------------------------------------------------
class TrajectoryImportError(UserError, ValueError):
    pass


BATCH_DISCOUNT = Decimal("0.5")  # OpenAI's Batch API bills half the synchronous price
CURATIONS = ("accepted", "rejected")


@dataclass(frozen=True)
class TrajectoryImportResult:
    """What an import did, per trajectory (a task id of the file): counts that match the store."""

    file: str
    tier: int
    added: int
    updated: int
    unchanged: int
    lines: int  # the file's non-blank lines; several may cover one trajectory (the last one counts)

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "tier": self.tier, "added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "trajectories": self.total, "lines": self.lines}

    def __str__(self) -> str:
        return f"{self.total} ({self.added} added, {self.updated} updated, {self.unchanged} unchanged)"


def _rows(path: Path):
    """(line number, object) of a JSONL file, streamed: a regular file only, finite numbers, bounded nesting."""
    name = Path(path).name

    def error(problem: str, line: int | None) -> TrajectoryImportError:
        return TrajectoryImportError(f"{name}{f':{line}' if line else ''}: {problem}")

    with open_lines(Path(path), error) as lines:
        try:
            yield from iter_objects(lines)
        except JsonProblem as exc:
            raise error(exc.message, exc.line) from None


def _import(ws: Workspace, path: Path, tier: Tier, to_item) -> TrajectoryImportResult:
    """Stream the file into the store in one transaction (all lines or none); `to_item(number, row,
    tasks)` gives (trajectory, category, extras) or raises TrajectoryImportError."""
    tasks = TaskRepository(ws)
    name = Path(path).name
    lines = 0
    with TrajectoryImport(ws, tier.tier, tier.model, name) as store:
        for number, row in _rows(path):
            lines += 1
            traj, category, curation, tags = to_item(number, row, tasks, name)
            if problem := stored_answer_problem(traj.content):
                raise TrajectoryImportError(f"{name}:{number}: {problem}")
            task = tasks.get(traj.task_id) if traj.status == "ok" else None  # its verdict, kept with it
            store.put(traj, category, curation=curation, tags=tags,
                      correct=kept_verdict(traj.tool_calls, task.expected, task.tools) if task else None)
        if not lines:
            raise TrajectoryImportError(f"{name}: the file holds no trajectories")
        added, updated, unchanged = store.counts()
    events.publish(events.TRAJECTORIES, ws)
    return TrajectoryImportResult(name, tier.tier, added, updated, unchanged, lines)


def _fail(name: str, number: int, field_name: str, problem: str) -> TrajectoryImportError:
    return TrajectoryImportError(f"{name}:{number}: {field_name}: {problem}")


def _extras(row: dict[str, Any], name: str, number: int) -> tuple[str | None, str | None]:
    """The curation and tags an export wrote (None: the file says nothing, keep what is stored)."""
    curation = row.get("curation")
    if curation is not None and curation not in CURATIONS:
        raise _fail(name, number, "curation", f"{str(curation)[:40]!r} is not one of {', '.join(CURATIONS)} or null")
    tags = row.get("tags")
    if tags is None:
        return curation, None
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() and "," not in t for t in tags):
        raise _fail(name, number, "tags", "must be a list of tag names (text without commas)")
    return curation, ",".join(dict.fromkeys(t.strip() for t in tags))


def _native_item(number: int, row: dict[str, Any], tasks: TaskRepository, name: str, tier: Tier):
    for key in ("task_id", "model", "response", "latency_ms"):
        if key not in row:
            raise _fail(name, number, key, "is missing (required: task_id, model, response, latency_ms)")
    task_id = row["task_id"]
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or not str(task_id).strip():
        raise _fail(name, number, "task_id", "must be a non-empty string")
    task_id = str(task_id)
    if not isinstance(row["model"], str):
        raise _fail(name, number, "model", "must be a string")
    response = row["response"]
    if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
        raise _fail(name, number, "response", "must be a chat.completion object with choices")
    if not isinstance(response.get("usage"), dict):
        raise _fail(name, number, "response.usage", "is missing; costs need token counts")
    latency = row["latency_ms"]
    if not is_number(latency) or latency < 0:
        raise _fail(name, number, "latency_ms", "must be a number of milliseconds (0 or more)")
    created = row.get("created_at")
    if created is not None and not isinstance(created, str):
        raise _fail(name, number, "created_at", "must be a timestamp string")
    request = row.get("request")
    if request is not None and not isinstance(request, dict):
        raise _fail(name, number, "request", "must be a chat completion request object")
    category = row.get("category")
    if category is not None and not isinstance(category, str):
        raise _fail(name, number, "category", "must be a string")
    task = tasks.get(task_id)
    if not request:
        request = build_request(tier, task.messages, task.tools) if task else {}
    try:
        traj = trajectory_from_response(task_id, tier, request, response, float(latency), finished_at=created or "")
    except ResponseError as exc:
        raise _fail(name, number, "response", str(exc)) from None
    traj.model = row["model"]
    curation, tags = _extras(row, name, number)
    return traj, task.category if task else (category or ""), curation, tags


def import_native(ws: Workspace, path: Path, tier: Tier) -> TrajectoryImportResult:
    """Native trajectory JSONL (see README): task_id, model, response (a chat.completion with
    usage), latency_ms; optional request, tier, created_at, category (used when the task is not in
    the workspace), curation and tags. All lines or none; the file is streamed."""
    return _import(ws, path, tier, lambda number, row, tasks, name: _native_item(number, row, tasks, name, tier))


def _batch_item(number: int, row: dict[str, Any], tasks: TaskRepository, name: str, tier: Tier):
    if "custom_id" not in row or "response" not in row:
        raise TrajectoryImportError(f"{name}:{number}: custom_id/response: missing; is this a Batch API output file?")
    if not isinstance(row["custom_id"], str):
        raise _fail(name, number, "custom_id", "must be a string (the task id)")
    task_id = row["custom_id"]
    task = tasks.get(task_id)
    if task is None:
        raise TrajectoryImportError(f"{name}:{number}: custom_id {task_id[:80]!r} matches no task in the workspace; "
                                    "import the task set first")
    request = build_request(tier, task.messages, task.tools)
    traj = batch_line_to_trajectory(row, task_id, tier, request)
    traj.finished_at = ""  # a re-import keeps the first import's time
    return traj, task.category, None, None


def import_batch_output(ws: Workspace, path: Path, tier: Tier) -> TrajectoryImportResult:
    """An OpenAI Batch API output (or error) file: custom_id is the task id; priced at the batch rate."""
    return _import(ws, path, tier, lambda number, row, tasks, name: _batch_item(number, row, tasks, name, tier))


def import_any(ws: Workspace, path: Path, tier: Tier) -> tuple[TrajectoryImportResult, bool]:
    """Import native JSONL or a Batch API output file, told apart by the first line (`custom_id`);
    returns (result, whether it was batch output). The file is checked before it is read (a FIFO or
    a folder is refused, never waited on)."""
    name = Path(path).name
    with open_lines(Path(path), lambda problem, line: TrajectoryImportError(
            f"{name}:{line}: {problem}" if line else f"{name}: {problem}")) as lines:
        first = next((ln for ln in lines if ln.strip()), "")
    batch = '"custom_id"' in first
    return (import_batch_output if batch else import_native)(ws, path, tier), batch


def batch_line_to_trajectory(row: dict[str, Any], task_id: str, tier: Tier, request: dict[str, Any]) -> Trajectory:
    response = row.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    body = body if isinstance(body, dict) else None
    if isinstance(response, dict) and response.get("status_code") == 200 and isinstance(body, dict):
        try:
            return trajectory_from_response(task_id, tier, request, body, 0.0, finished_at=now(),
                                            batch_discount=BATCH_DISCOUNT)
        except ResponseError as exc:
            return Trajectory(task_id=task_id, tier=tier.tier, model=tier.model, status="error", request=request,
                              error=f"batch result unusable: {exc}", finished_at=now())
    error = row.get("error") or (body or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    message = str(message)[:500]
    status = response.get("status_code") if isinstance(response, dict) else None
    return Trajectory(task_id=task_id, tier=tier.tier, model=tier.model, status="error", request=request,
                      error=f"batch request failed ({status}): {message}", finished_at=now(),
                      generation=generation_id(tier))


def batch_input_lines(ws: Workspace, tier: Tier, task_ids: list[str]) -> list[str]:
    tasks = TaskRepository(ws)
    lines = []
    for task_id in task_ids:
        task = tasks.get(task_id)
        if task is None:
            continue
        lines.append(json.dumps({"custom_id": task_id, "method": "POST", "url": "/v1/chat/completions",
                                 "body": build_request(tier, task.messages, task.tools)}))
    return lines


def export_batch_input(ws: Workspace, target: Path, tier: Tier, task_ids: list[str]) -> int:
    lines = batch_input_lines(ws, tier, task_ids)

    def write(fh) -> int:
        fh.write("\n".join(lines) + ("\n" if lines else ""))
        return len(lines)

    return _atomic_write(Path(target), write)
