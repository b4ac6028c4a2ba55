"""Fine-tuning datasets built from trajectories: where their files are and what went into them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascade_studio.store.workspace import Workspace

PENDING_KEY = "pending_dataset_files"  # meta: the renames of a build recorded but not yet all in place
_LIST_KEYS = ["id", "created_at", "path", "validation_path", "format", "filters", "examples", "validation_examples"]


class DatasetRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def add(self, path: Path, validation_path: Path | None, fmt: str, filters: dict[str, Any], examples: int,
            validation_examples: int, trajectory_ids: list[int], validation_task_ids: list[str],
            pending_files: dict[str, Any] | None = None) -> int:
        """Record a built dataset (paths stored resolved); returns its id. `pending_files` (the
        build's renames and removals) is recorded in the same transaction, so a build whose files
        were not all put in place is completed from it (`complete_pending`).
        An older pending build writing any of the same files (one killed while another ran) is
        superseded: its temporary files join this build's removals, so completing the two never
        puts the older build's files over this one's."""
        if pending_files is None:
            return self._insert(path, validation_path, fmt, filters, examples, validation_examples, trajectory_ids,
                                validation_task_ids)
        conn = self.ws.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            dataset_id = self._insert(path, validation_path, fmt, filters, examples, validation_examples,
                                      trajectory_ids, validation_task_ids)
            mine = {final for _, final in pending_files["renames"]} | set(pending_files["remove"])
            kept, remove = [], list(pending_files["remove"])
            for other in self.pending_files():
                if mine & ({final for _, final in other["renames"]} | set(other["remove"])):
                    remove += [tmp for tmp, _ in other["renames"]]
                else:
                    kept.append(other)
            self._set_pending(kept + [{**pending_files, "remove": remove, "dataset": dataset_id}])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return dataset_id

    def pending_files(self) -> list[dict[str, Any]]:
        """The recorded builds whose files may not all be in place yet, oldest first."""
        row = self.ws.conn.execute("SELECT value FROM meta WHERE key = ?", (PENDING_KEY,)).fetchone()
        if row is None:
            return []
        value = json.loads(row[0])
        return [value] if isinstance(value, dict) else value  # a dict: one build, as recorded before lists

    def complete_pending(self, put_in_place: Callable[[dict[str, Any]], None],
                         dataset_id: int | None = None) -> int | None:
        """Put in place the files of the pending builds (only dataset `dataset_id`'s, when given),
        oldest first, and forget them, holding the workspace's write lock throughout: no build
        records (and so supersedes one of these) while its files are being renamed, and a build
        superseded before this began is no longer listed, so its files never go over a newer
        build's. Returns the newest completed dataset id, None when there was none."""
        if not any(dataset_id in (None, p.get("dataset")) for p in self.pending_files()):
            return None  # the common case: a plain read, no write lock
        conn = self.ws.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            pending, done = self.pending_files(), None
            for p in pending:
                if dataset_id in (None, p.get("dataset")):
                    put_in_place(p)
                    done = p.get("dataset")
            self._set_pending([p for p in pending if dataset_id not in (None, p.get("dataset"))])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return done

    def _set_pending(self, pending: list[dict[str, Any]]) -> None:
        if not pending:
            self.ws.conn.execute("DELETE FROM meta WHERE key = ?", (PENDING_KEY,))
            return
        self.ws.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                             "value = excluded.value", (PENDING_KEY, json.dumps(pending)))

    def _insert(self, path: Path, validation_path: Path | None, fmt: str, filters: dict[str, Any], examples: int,
                validation_examples: int, trajectory_ids: list[int], validation_task_ids: list[str]) -> int:
        cur = self.ws.conn.execute(
            "INSERT INTO datasets (created_at, path, validation_path, format, filters, examples, validation_examples, "
            "trajectory_ids, validation_task_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), str(Path(path).resolve()),
             None if validation_path is None else str(Path(validation_path).resolve()), fmt, json.dumps(filters),
             examples, validation_examples, json.dumps(trajectory_ids), json.dumps(validation_task_ids)))
        return cur.lastrowid

    def validation_task_ids(self, dataset_id: int | None = None) -> tuple[int, list[str]] | None:
        """(dataset id, its validation split's task ids): the given dataset, else the newest with a split."""
        if dataset_id is not None:
            row = self.ws.conn.execute("SELECT id, validation_task_ids FROM datasets WHERE id = ?",
                                       (dataset_id,)).fetchone()
        else:
            row = self.ws.conn.execute("SELECT id, validation_task_ids FROM datasets WHERE validation_examples > 0 "
                                       "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        ids = json.loads(row[1])
        return (row[0], ids) if ids else None

    def list(self) -> list[dict[str, Any]]:
        rows = self.ws.conn.execute(f"SELECT {', '.join(_LIST_KEYS)} FROM datasets ORDER BY id DESC").fetchall()
        return [{**dict(zip(_LIST_KEYS, r, strict=True)), "filters": json.loads(r[5])} for r in rows]

    def find_by_path(self, path: Path) -> tuple[int, str | None] | None:
        """(id, validation path) of the dataset recorded for this training file, for a file the user
        chose rather than built in this session."""
        row = self.ws.conn.execute("SELECT id, validation_path FROM datasets WHERE path = ? ORDER BY id DESC LIMIT 1",
                                   (str(Path(path).resolve()),)).fetchone()
        return None if row is None else (row[0], row[1])
