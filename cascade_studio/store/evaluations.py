"""Evaluation history (aggregates) and the drift warning derived from it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from cascade_studio.store.workspace import Workspace

_KEYS = ["id", "created_at", "teacher_tier", "teacher_model", "teacher_generation", "student_tier", "student_model",
         "student_generation", "category", "tasks", "agreement"]


def record(ws: Workspace, *, teacher_tier: int, teacher_model: str, student_tier: int, student_model: str,
           category: str | None, tasks: int, agreement: float | None, metrics: dict[str, Any],
           teacher_generation: str | None = None, student_generation: str | None = None) -> int:
    """Keep an evaluation's aggregates and the generations it measured (core.tiers.generation_id;
    None: unknown); returns its id."""
    return ws.conn.execute(
        "INSERT INTO evaluations (created_at, teacher_tier, teacher_model, teacher_generation, student_tier, "
        "student_model, student_generation, category, tasks, agreement, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), teacher_tier, teacher_model, teacher_generation,
         student_tier, student_model, student_generation, category, tasks, agreement, json.dumps(metrics))).lastrowid


def history(ws: Workspace, student_tier: int | None = None, *,
            student_generations: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Evaluations, oldest first: all, one student tier's, or (also) those of some student generations."""
    clauses, args = [], []
    if student_tier is not None:
        clauses.append("student_tier = ?")
        args.append(student_tier)
    if student_generations:
        clauses.append(f"student_generation IN ({','.join('?' * len(student_generations))})")
        args += list(student_generations)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = ws.conn.execute(f"SELECT {', '.join(_KEYS)} FROM evaluations {where} ORDER BY created_at, id",
                           args).fetchall()
    return [dict(zip(_KEYS, r, strict=True)) for r in rows]


def latest_of_model(ws: Workspace, student_model: str) -> dict[str, Any] | None:
    """The newest evaluation of `student_model` as a student (any tier), or None."""
    row = ws.conn.execute(f"SELECT {', '.join(_KEYS)} FROM evaluations WHERE student_model = ? "
                          "ORDER BY created_at DESC, id DESC LIMIT 1", (student_model,)).fetchone()
    return None if row is None else dict(zip(_KEYS, row, strict=True))


def metrics_of(ws: Workspace, evaluation_id: int) -> dict[str, Any] | None:
    """An evaluation's stored figures (overall and per category)."""
    row = ws.conn.execute("SELECT metrics FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
    return None if row is None else json.loads(row[0])


def drift_warning(ws: Workspace, student_tier: int, level: float,
                  student_generations: Sequence[str] | None = None) -> str | None:
    """A sentence when the latest evaluation of this student (of its current generation, when
    `student_generations` names it) is below `level`."""
    rows = history(ws, student_tier, student_generations=student_generations)
    if not rows or rows[-1]["agreement"] is None:
        return None
    last = rows[-1]
    if last["agreement"] < level:
        changed = ""
        if len(rows) > 1 and rows[-2]["teacher_model"] != last["teacher_model"]:
            changed = f" The teacher changed from {rows[-2]['teacher_model']} to {last['teacher_model']}."
        return (f"Tier {student_tier} ({last['student_model']}) agrees with its teacher on {last['agreement']:.0%} "
                f"of tasks, below your alert level of {level:.0%}.{changed} Re-distil the student (build a new "
                "dataset from fresh teacher trajectories and fine-tune again).")
    return None
