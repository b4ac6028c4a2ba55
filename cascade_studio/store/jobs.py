"""Fine-tune jobs and their events, kept in the workspace so tracking survives a restart."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cascade_studio.core.finetune import FINISHED_JOB_STATUSES, JobEvent, JobState, is_finished, shown_status
from cascade_studio.store.workspace import Workspace

_JOB_KEYS = ["id", "backend", "base_url", "tier_endpoint", "base_model", "dataset_id", "training_file", "status",
             "fine_tuned_model", "trained_tokens", "error", "hyperparameters", "estimated_finish", "created_at",
             "updated_at", "finished_at"]
_FINISHED = sorted(FINISHED_JOB_STATUSES)
_UNFINISHED_WHERE = f"WHERE status NOT IN ({', '.join('?' * len(_FINISHED))})"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class JobStore:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def save(self, state: JobState, *, backend: str = "", base_url: str = "", tier: int | None = None,
             dataset_id: int | None = None) -> None:
        exists = self.ws.conn.execute("SELECT 1 FROM finetune_jobs WHERE id = ?", (state.id,)).fetchone()
        finished = _now() if state.done else None
        if exists:
            self.ws.conn.execute(
                "UPDATE finetune_jobs SET status = ?, fine_tuned_model = ?, trained_tokens = ?, error = ?, "
                "hyperparameters = ?, estimated_finish = ?, updated_at = ?, finished_at = coalesce(finished_at, ?) "
                "WHERE id = ?",
                (state.status, state.fine_tuned_model, state.trained_tokens,
                 None if state.error is None else json.dumps(state.error), json.dumps(state.hyperparameters),
                 state.estimated_finish, _now(), finished, state.id))
        else:
            self.ws.conn.execute(
                "INSERT INTO finetune_jobs (id, backend, base_url, tier_endpoint, base_model, dataset_id, "
                "training_file, status, fine_tuned_model, trained_tokens, error, hyperparameters, estimated_finish, "
                "created_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (state.id, backend, base_url, tier, state.base_model, dataset_id, state.training_file, state.status,
                 state.fine_tuned_model, state.trained_tokens, None if state.error is None else json.dumps(state.error),
                 json.dumps(state.hyperparameters), state.estimated_finish, _now(), _now(), finished))

    def add_events(self, job_id: str, events: list[JobEvent]) -> int:
        rows = [(job_id, e.id, e.created_at, e.level, e.type, e.message, None if e.data is None else json.dumps(e.data))
                for e in events]
        self.ws.conn.executemany("INSERT OR IGNORE INTO finetune_events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def event_ids(self, job_id: str) -> set[str]:
        return {r[0] for r in self.ws.conn.execute("SELECT event_id FROM finetune_events WHERE job_id = ?", (job_id,))}

    def events(self, job_id: str) -> list[dict[str, Any]]:
        rows = self.ws.conn.execute("SELECT event_id, created_at, level, type, message, data FROM finetune_events "
                                    "WHERE job_id = ? ORDER BY created_at, event_id", (job_id,)).fetchall()
        return [{"id": r[0], "created_at": r[1], "level": r[2], "type": r[3], "message": r[4],
                 "data": None if r[5] is None else json.loads(r[5])} for r in rows]

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return sorted((e["data"] for e in self.events(job_id) if e["type"] == "metrics" and e["data"]),
                      key=lambda d: d.get("step", 0))

    def get(self, job_id: str) -> dict[str, Any] | None:
        rows = self.list(where="WHERE id = ?", args=[job_id])
        return rows[0] if rows else None

    def list(self, where: str = "", args: list[Any] | None = None) -> list[dict[str, Any]]:
        rows = self.ws.conn.execute(
            f"SELECT {', '.join(_JOB_KEYS)} FROM finetune_jobs {where} ORDER BY created_at DESC, id",
            args or []).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_JOB_KEYS, r, strict=True))
            d["error"] = None if d["error"] is None else json.loads(d["error"])
            d["hyperparameters"] = json.loads(d["hyperparameters"])
            d["shown_status"], d["paused_at"] = d["status"], None
            if not is_finished(d["status"]):
                marks = self.ws.conn.execute(
                    "SELECT message, created_at FROM finetune_events WHERE job_id = ? AND (lower(message) LIKE "
                    "'%paused%' OR lower(message) LIKE '%resumed%') ORDER BY created_at, event_id", (d["id"],)).fetchall()
                d["shown_status"] = shown_status(d["status"], [m for m, _ in marks])
                if d["shown_status"] == "paused":
                    d["paused_at"] = marks[-1][1]  # unix seconds of the pause: elapsed time stops there
            out.append(d)
        return out

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs not in a finished status (core.finetune.FINISHED_JOB_STATUSES): the ones to keep polling."""
        return self.list(where=_UNFINISHED_WHERE, args=list(_FINISHED))

    def count_unfinished(self) -> int:
        return self.ws.conn.execute(f"SELECT count(*) FROM finetune_jobs {_UNFINISHED_WHERE}", _FINISHED).fetchone()[0]
