"""Evaluation history (aggregates) and the drift warning derived from it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cascade_studio.store.workspace import Workspace


def record(ws: Workspace, *, teacher_tier: int, teacher_model: str, student_tier: int, student_model: str,
           category: str | None, tasks: int, agreement: float | None, metrics: dict[str, Any]) -> int:
    """Keep an evaluation's aggregates; returns its id."""
    return ws.conn.execute(
        "INSERT INTO evaluations (created_at, teacher_tier, teacher_model, student_tier, student_model, category, "
        "tasks, agreement, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), teacher_tier, teacher_model, student_tier,
         student_model, category, tasks, agreement, json.dumps(metrics))).lastrowid


def history(ws: Workspace, student_tier: int | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE student_tier = ?", [student_tier]) if student_tier is not None else ("", [])
    rows = ws.conn.execute(f"SELECT id, created_at, teacher_tier, teacher_model, student_tier, student_model, category, "
                           f"tasks, agreement FROM evaluations {where} ORDER BY created_at, id", args).fetchall()
    keys = ["id", "created_at", "teacher_tier", "teacher_model", "student_tier", "student_model", "category", "tasks",
            "agreement"]
    return [dict(zip(keys, r, strict=True)) for r in rows]


def drift_warning(ws: Workspace, student_tier: int, level: float) -> str | None:
    """A sentence when the latest evaluation of this student is below `level` (or fell since the last one)."""
    rows = history(ws, student_tier)
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
