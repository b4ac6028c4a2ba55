"""Trajectory listings and exports (native JSONL, CSV summary), the same rows for GUI and CLI."""

from __future__ import annotations

import csv
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascade_studio.core.confidence import CONF_COLUMNS, by_method
from cascade_studio.core.errors import UserError
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tiers import Tier
from cascade_studio.core.trajectory import ResponseError, Trajectory, build_request, trajectory_from_response
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import RunRepository, TrajectoryRepository, now, restore_logprobs
from cascade_studio.store.workspace import Workspace


def list_rows(ws: Workspace, tier: int | None = None) -> list[dict[str, Any]]:
    """One object per trajectory: task_id, tier, model, status, tool, confidence (the tier's
    method), the three confidences, cost_usd, latency_ms, tokens, curation, tags."""
    methods = {t.tier: t.confidence_method.value for t in TierRepository(ws).list()}
    out = []
    for r in TrajectoryRepository(ws).summary_rows(tier):
        method = methods.get(r["tier"], "mean_token_prob")
        conf = by_method([r[column] for column in CONF_COLUMNS.values()])
        out.append({
            "id": r["id"], "run_id": r["run_id"], "task_id": r["task_id"], "tier": r["tier"], "model": r["model"],
            "status": r["status"], "category": r["category"], "tool": r["tool_name"],
            "confidence": conf[method], "confidence_method": method, **conf,
            "cost_usd": str(micro_to_usd(r["cost_micro"])), "latency_ms": round(r["latency_ms"], 1),
            "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
            "curation": r["curation"], "tags": [t for t in (r["tags"] or "").split(",") if t],
        })
    return out


def _atomic_write(target: Path, write) -> int:
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        count = write(fh)
    os.replace(tmp, target)
    return count


def export_native(ws: Workspace, target: Path, tier: int | None = None) -> int:
    """Native trajectory JSONL: task_id, tier, model, request, response (a chat.completion with
    usage), latency_ms, created_at, plus status, error, curation and tags."""
    rows = TrajectoryRepository(ws).export_rows(tier)

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


def export_csv(ws: Workspace, target: Path, tier: int | None = None) -> int:
    rows = list_rows(ws, tier)
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


def _import_run(ws: Workspace, tier: Tier, source: str) -> int:
    """One run per (tier, imported file): re-importing the same file updates instead of duplicating."""
    return RunRepository(ws).import_run(tier.tier, tier.model, source)


def _lines(path: Path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrajectoryImportError(f"{path}: the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrajectoryImportError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrajectoryImportError(f"{Path(path).name}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise TrajectoryImportError(f"{Path(path).name}:{number}: each line must be a JSON object")
        yield number, row


def _save_all(ws: Workspace, run_id: int, items: list[tuple[Trajectory, str]]) -> int:
    return TrajectoryRepository(ws).save_all(run_id, items)


def import_native(ws: Workspace, path: Path, tier: Tier) -> int:
    """Native trajectory JSONL (see README): task_id, model, response (a chat.completion with
    usage), latency_ms; optional request, tier, created_at. All lines or none."""
    tasks = TaskRepository(ws)
    items = []
    name = Path(path).name
    for number, row in _lines(path):
        for key in ("task_id", "model", "response", "latency_ms"):
            if key not in row:
                raise TrajectoryImportError(f"{name}:{number}: {key}: is missing (required: task_id, model, "
                                            "response, latency_ms)")
        response = row["response"]
        if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
            raise TrajectoryImportError(f"{name}:{number}: response: must be a chat.completion object with choices")
        if not isinstance(response.get("usage"), dict):
            raise TrajectoryImportError(f"{name}:{number}: response.usage: is missing; costs need token counts")
        try:
            latency = float(row["latency_ms"])
        except (TypeError, ValueError):
            raise TrajectoryImportError(f"{name}:{number}: latency_ms: must be a number") from None
        task = tasks.get(str(row["task_id"]))
        request = row.get("request") or (build_request(tier, task.messages, task.tools) if task else {})
        try:
            traj = trajectory_from_response(str(row["task_id"]), tier, request, response, latency,
                                            finished_at=str(row.get("created_at") or now()))
        except ResponseError as exc:
            raise TrajectoryImportError(f"{name}:{number}: response: {exc}") from None
        traj.model = str(row["model"])
        items.append((traj, task.category if task else ""))
    if not items:
        raise TrajectoryImportError(f"{name}: the file holds no trajectories")
    return _save_all(ws, _import_run(ws, tier, name), items)


def import_batch_output(ws: Workspace, path: Path, tier: Tier) -> int:
    """An OpenAI Batch API output (or error) file: custom_id is the task id; priced at the batch rate."""
    tasks = TaskRepository(ws)
    items = []
    name = Path(path).name
    for number, row in _lines(path):
        if "custom_id" not in row or "response" not in row:
            raise TrajectoryImportError(f"{name}:{number}: custom_id/response: missing; is this a Batch API output file?")
        task_id = str(row["custom_id"])
        task = tasks.get(task_id)
        if task is None:
            raise TrajectoryImportError(f"{name}:{number}: custom_id {task_id!r} matches no task in the workspace; "
                                        "import the task set first")
        request = build_request(tier, task.messages, task.tools)
        items.append((batch_line_to_trajectory(row, task_id, tier, request), task.category))
    if not items:
        raise TrajectoryImportError(f"{name}: the file holds no results")
    return _save_all(ws, _import_run(ws, tier, name), items)


def batch_line_to_trajectory(row: dict[str, Any], task_id: str, tier: Tier, request: dict[str, Any]) -> Trajectory:
    response = row.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    if isinstance(response, dict) and response.get("status_code") == 200 and isinstance(body, dict):
        try:
            return trajectory_from_response(task_id, tier, request, body, 0.0, finished_at=now(),
                                            batch_discount=BATCH_DISCOUNT)
        except ResponseError as exc:
            return Trajectory(task_id=task_id, tier=tier.tier, model=tier.model, status="error", request=request,
                              error=f"batch result unusable: {exc}", finished_at=now())
    error = row.get("error") or (body or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    status = response.get("status_code") if isinstance(response, dict) else None
    return Trajectory(task_id=task_id, tier=tier.tier, model=tier.model, status="error", request=request,
                      error=f"batch request failed ({status}): {message}", finished_at=now())


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
