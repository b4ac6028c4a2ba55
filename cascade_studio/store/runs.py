"""Runs: one collection of a tier over a list of tasks (its status, parameters and totals); the
trajectories each run stored live in store.trajectories."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cascade_studio.store.workspace import Workspace


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Run:
    id: int
    tier: int
    model: str
    status: str
    task_ids: list[str]
    params: dict[str, Any]
    created_at: str
    message: str = ""
    generation: str = ""


class RunRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def create(self, tier: int, model: str, task_ids: list[str], params: dict[str, Any], generation: str = "") -> Run:
        stamp = now()
        cur = self.ws.conn.execute(
            "INSERT INTO runs (tier, model, status, task_ids, params, created_at, updated_at, generation) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
            (tier, model, json.dumps(task_ids), json.dumps(params), stamp, stamp, generation))
        return Run(cur.lastrowid, tier, model, "running", task_ids, params, stamp, "", generation)

    def get(self, run_id: int) -> Run | None:
        row = self.ws.conn.execute("SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs "
                                   "WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def list(self) -> list[Run]:
        rows = self.ws.conn.execute("SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs "
                                    "ORDER BY id DESC").fetchall()
        return [_run(r) for r in rows]

    def find_unfinished(self, tier: int, task_ids: list[str], generation: str | None = None) -> Run | None:
        """The latest run of this tier (and generation) over exactly these tasks that did not finish."""
        wanted = json.dumps(task_ids)
        gen_clause, args = ("AND generation = ? ", [generation]) if generation is not None else ("", [])
        row = self.ws.conn.execute(
            "SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs WHERE tier = ? AND "
            f"task_ids = ? {gen_clause}AND status IN ('running', 'paused', 'cancelled', 'failed') ORDER BY id DESC LIMIT 1",
            (tier, wanted, *args)).fetchone()
        return _run(row) if row else None

    def latest_unfinished(self, tier: int, generation: str) -> Run | None:
        """The newest run of this tier's generation that did not finish (cancelled, failed, or killed
        while it ran), whatever its tasks."""
        row = self.ws.conn.execute(
            "SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs WHERE tier = ? "
            "AND generation = ? AND status IN ('running', 'paused', 'cancelled', 'failed') ORDER BY id DESC LIMIT 1",
            (tier, generation)).fetchone()
        return _run(row) if row else None

    def totals(self, run_id: int) -> tuple[int, int, int]:
        """(ok trajectories, tokens, cost in micro-USD) of everything the run stored: the whole run,
        across resumes. Agent episodes count what they paid even when they ended in an error, and the
        steps of episodes not finished yet (a cancelled or killed run) count too."""
        row = self.ws.conn.execute(
            "SELECT coalesce(sum(status = 'ok'), 0), coalesce(sum(prompt_tokens + completion_tokens), 0), "
            "coalesce(sum(cost_micro), 0) FROM trajectories WHERE run_id = ? AND (status = 'ok' OR episode IS NOT NULL)",
            (run_id,)).fetchone()
        open_steps = self.ws.conn.execute(
            "SELECT coalesce(sum(json_extract(call, '$.usage[0]') + json_extract(call, '$.usage[1]')), 0), "
            "coalesce(sum(json_extract(call, '$.cost_micro')), 0) FROM episode_steps s WHERE s.run_id = ? "
            "AND s.episode NOT LIKE 'forced:%' AND NOT EXISTS (SELECT 1 FROM trajectories t WHERE t.episode = s.episode)",
            (run_id,)).fetchone()
        return int(row[0]), int(row[1]) + int(open_steps[0]), int(row[2]) + int(open_steps[1])

    def set_status(self, run_id: int, status: str, message: str = "") -> None:
        self.ws.conn.execute("UPDATE runs SET status = ?, message = ?, updated_at = ? WHERE id = ?",
                             (status, message, now(), run_id))

    def finished_task_ids(self, run_id: int) -> set[str]:
        return {r[0] for r in self.ws.conn.execute(
            "SELECT task_id FROM trajectories WHERE run_id = ? AND status = 'ok'", (run_id,))}

    def finished_units(self, run_id: int) -> set[tuple[str, int]]:
        """(task id, trial) of the run's ok trajectories."""
        return {(r[0], r[1]) for r in self.ws.conn.execute(
            "SELECT task_id, trial FROM trajectories WHERE run_id = ? AND status = 'ok'", (run_id,))}

    def set_params(self, run_id: int, params: dict[str, Any]) -> None:
        self.ws.conn.execute("UPDATE runs SET params = ? WHERE id = ?", (json.dumps(params), run_id))

    def import_run(self, tier: int, model: str, source: str) -> int:
        """One run per (tier, imported file): re-importing the same file updates instead of duplicating."""
        params = json.dumps({"import": source})
        row = self.ws.conn.execute("SELECT id FROM runs WHERE tier = ? AND params = ?", (tier, params)).fetchone()
        if row:
            return row[0]
        stamp = now()
        return self.ws.conn.execute(
            "INSERT INTO runs (tier, model, status, task_ids, params, created_at, updated_at) "
            "VALUES (?, ?, 'imported', '[]', ?, ?, ?)", (tier, model, params, stamp, stamp)).lastrowid


def _run(row: tuple) -> Run:
    return Run(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6], row[7], row[8])
