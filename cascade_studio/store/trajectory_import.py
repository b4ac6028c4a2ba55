"""Trajectory files imported into a run, in one transaction."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from cascade_studio.core.trajectory import Trajectory
from cascade_studio.store.trajectories import ROW_COLUMNS, RunRepository, TrajectoryRepository, now, row_sql
from cascade_studio.store.transactions import write_transaction
from cascade_studio.store.workspace import Workspace


class TrajectoryImport:
    """One trajectory file imported into one run (per tier and file name), in one transaction: every
    line or none. `put` stores a trajectory, replacing the run's row for the same task in place (its
    id is kept); `counts` says, per task, whether it was added, updated or left unchanged compared
    with what was stored before the import, by comparing the stored rows themselves."""

    def __init__(self, ws: Workspace, tier: int, model: str, source: str) -> None:
        self.ws, self.tier, self.model, self.source = ws, tier, model, source
        self.repo = TrajectoryRepository(ws)
        self.run_id: int | None = None
        self._seen: dict[str, list[bytes | None]] = {}  # task id -> digests of [the row before, the row now]
        self._finished = ROW_COLUMNS.index("finished_at")
        self._sql = row_sql((*ROW_COLUMNS, "curation", "tags", "id"))

    def __enter__(self) -> TrajectoryImport:
        self._transaction = write_transaction(self.ws.conn)  # a savepoint inside a larger import's transaction
        self._transaction.__enter__()
        try:
            self.run_id = RunRepository(self.ws).import_run(self.tier, self.model, self.source)
        except BaseException as exc:
            self._transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._transaction.__exit__(exc_type, exc, tb)

    def _stored(self, task_id: str) -> tuple[Any, ...] | None:
        """The stored row (payloads inflated: what was imported, not how it is stored)."""
        sql, inflate = self._sql
        row = self.ws.conn.execute(f"{sql} WHERE t.run_id = ? AND t.task_id = ?", (self.run_id, task_id)).fetchone()
        return None if row is None else inflate(row)

    def put(self, t: Trajectory, category: str, *, curation: str | None = None, tags: str | None = None,
            correct: bool | None = None) -> None:
        """Store `t`; an empty `finished_at` keeps the stored time (now for a new row); curation and
        tags None keep what is stored."""
        before = self._stored(t.task_id)
        if before is not None:
            if not t.finished_at:
                t.finished_at = before[self._finished]
            # `save` replaces only a row that is not "ok": mark the old row so the same id is reused
            self.ws.conn.execute("UPDATE trajectories SET status = 'replacing' WHERE id = ?", (before[-1],))
        elif not t.finished_at:
            t.finished_at = now()
        self.repo.save(self.run_id, t, category, correct=correct)
        if curation is not None or tags is not None:
            self.ws.conn.execute(
                "UPDATE trajectories SET curation = coalesce(?, curation), tags = coalesce(?, tags) WHERE run_id = ? "
                "AND task_id = ?", (curation, tags, self.run_id, t.task_id))
        after = self._stored(t.task_id)
        seen = self._seen.setdefault(t.task_id, [None if before is None else _digest(before), None])
        seen[1] = _digest(after)

    def counts(self) -> tuple[int, int, int]:
        """(added, updated, unchanged) trajectories, one per task id of the file."""
        added = sum(1 for before, _ in self._seen.values() if before is None)
        unchanged = sum(1 for before, after in self._seen.values() if before is not None and before == after)
        return added, len(self._seen) - added - unchanged, unchanged


def _digest(row: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(orjson.dumps(list(row))).digest()
