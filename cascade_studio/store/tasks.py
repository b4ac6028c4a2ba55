"""Task rows. Imports are all-or-nothing; re-importing the same ids is idempotent."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from cascade_studio.core.tasks import Task
from cascade_studio.store.numbers import parse_numbers
from cascade_studio.store.transactions import write_transaction
from cascade_studio.store.workspace import Workspace


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged

    def to_json(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "total": self.total}


class TaskRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def upsert(self, tasks: list[Task]) -> ImportResult:
        """One transaction: either every task is stored or none is."""
        result = ImportResult()
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        conn = self.ws.conn
        with write_transaction(conn):
            existing = dict(conn.execute("SELECT id, content_hash FROM tasks").fetchall()) if tasks else {}
            rows = []
            for t in tasks:
                h = t.content_hash()
                old = existing.get(t.id)
                if old == h:
                    result.unchanged += 1
                    continue
                if old is None:
                    result.added += 1
                else:
                    result.updated += 1
                rows.append((t.id, t.category, json.dumps(t.messages), json.dumps(t.tools),
                             None if t.expected is None else json.dumps(t.expected), t.prompt[:2000],
                             ",".join(t.tool_names), t.source, h, now, t.environment, t.max_steps,
                             None if t.user is None else json.dumps(t.user)))
            changed = [r[0] for r in rows if r[0] in existing]
            for start in range(0, len(changed), 500):  # their trajectories' verdicts no longer hold
                chunk = changed[start:start + 500]
                conn.execute(f"UPDATE trajectories SET correct = NULL WHERE task_id IN ({','.join('?' * len(chunk))})",
                             chunk)
            conn.executemany(
                "INSERT INTO tasks (id, category, messages, tools, expected, prompt, tool_names, source, content_hash, "
                "imported_at, environment, max_steps, user_spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET "
                "category=excluded.category, messages=excluded.messages, tools=excluded.tools, "
                "expected=excluded.expected, prompt=excluded.prompt, tool_names=excluded.tool_names, "
                "source=excluded.source, content_hash=excluded.content_hash, imported_at=excluded.imported_at, "
                "environment=excluded.environment, max_steps=excluded.max_steps, user_spec=excluded.user_spec",
                rows,
            )
        return result

    def count(self, category: str | None = None, search: str = "") -> int:
        where, args = _where(category, search)
        return self.ws.conn.execute(f"SELECT count(*) FROM tasks{where}", args).fetchone()[0]

    def categories(self) -> list[tuple[str, int]]:
        return self.ws.conn.execute("SELECT category, count(*) FROM tasks GROUP BY category ORDER BY category").fetchall()

    def page(self, offset: int, limit: int, category: str | None = None, search: str = "") -> list[tuple[Any, ...]]:
        """Rows for the table view: id, category, tool_names ("@ENV" for an agent task with only its
        environment's tools), prompt, expected ('', 'yes' or 'no call')."""
        where, args = _where(category, search)
        return self.ws.conn.execute(
            f"SELECT id, category, CASE WHEN environment != '' AND tool_names = '' THEN '@' || environment "
            "ELSE tool_names END, prompt, "
            "CASE WHEN expected IS NULL THEN '' WHEN expected = '[]' THEN 'no call' ELSE 'yes' END "
            f"FROM tasks{where} "
            "ORDER BY category, rowid LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()

    def get(self, task_id: str) -> Task | None:
        row = self.ws.conn.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    def get_many(self, ids: list[str]) -> dict[str, Task]:
        """{task id: Task} for those of `ids` that exist, read in bounded chunks (one query per 500
        ids rather than one per task)."""
        out: dict[str, Task] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.ws.conn.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id IN ({marks})", chunk):
                out[row[0]] = _task(row)
        return out

    def list(self, category: str | None = None, limit: int | None = None) -> list[Task]:
        where, args = _where(category, "")
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks{where} ORDER BY category, rowid"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_task(r) for r in self.ws.conn.execute(sql, args)]

    def episode_ids(self, ids: list[str]) -> set[str]:
        """Of these task ids, those that run as agent episodes (they name an environment) or have
        recorded episodes (imported transcripts)."""
        out: set[str] = set()
        recorded = {r[0] for r in self.ws.conn.execute(
            "SELECT DISTINCT task_id FROM trajectories WHERE episode IS NOT NULL AND episode NOT LIKE 'forced:%'")}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self.ws.conn.execute(
                f"SELECT id FROM tasks WHERE environment != '' AND id IN ({marks})", chunk))
        return out | (recorded & set(ids))

    def environments(self) -> dict[str, int]:
        """Environment name -> how many tasks name it."""
        return dict(self.ws.conn.execute(
            "SELECT environment, count(*) FROM tasks WHERE environment != '' GROUP BY environment").fetchall())


    def ids(self, category: str | None = None, limit: int | None = None) -> list[str]:
        """Task ids in the order of the task table view (category, then import order)."""
        sql = "SELECT id FROM tasks" + (" WHERE category = ?" if category else "") + " ORDER BY category, rowid"
        args: list[Any] = [category] if category else []
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [r[0] for r in self.ws.conn.execute(sql, args)]

    def categories_and_expected(self) -> dict[str, tuple[str, Any]]:
        """{task id: (category, expected answer or None)} for every task."""
        return {r[0]: (r[1], None if r[2] is None else orjson.loads(r[2]))
                for r in self.ws.conn.execute("SELECT id, category, expected FROM tasks")}

    def categories_and_expected_lists(self) -> dict[str, tuple[str, bool]]:
        """{task id: (category, whether its expected answer is a list of calls)}, without parsing them."""
        return {r[0]: (r[1], bool(r[2])) for r in self.ws.conn.execute(
            "SELECT id, category, expected IS NOT NULL AND json_valid(expected) AND json_type(expected) = 'array' "
            "FROM tasks")}

    def categories_and_expected_arrays(self) -> tuple[list[str], list[str], np.ndarray] | None:
        """categories_and_expected_lists as (task ids, categories, whether each expected answer is a
        list of calls), read in one aggregate pass. None when an id or category holds the separator."""
        n, ids, cats, listed = self.ws.conn.execute(
            "SELECT count(*), group_concat(id, char(31)), group_concat(category, char(31)), group_concat("
            "expected IS NOT NULL AND json_valid(expected) AND json_type(expected) = 'array') FROM tasks").fetchone()
        if not n:
            return [], [], np.zeros(0, dtype=bool)
        ids, cats, flags = ids.split("\x1f"), (cats or "").split("\x1f"), parse_numbers(listed, np.int64)
        if len(ids) != n or len(cats) != n or flags is None or len(flags) != n:
            return None
        return ids, cats, flags.astype(bool)

    def expected_of(self, ids: list[str]) -> dict[str, Any]:
        """{task id: its expected answer} for `ids`, read in bounded chunks."""
        out: dict[str, Any] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for task_id, expected in self.ws.conn.execute(
                    f"SELECT id, expected FROM tasks WHERE id IN ({marks})", chunk):
                out[task_id] = None if expected is None else orjson.loads(expected)
        return out

    def categories_of(self, ids: list[str]) -> dict[str, tuple[str, bool]]:
        """{task id: (category, whether its expected answer is a list of calls)} for `ids`, without
        parsing the answers."""
        out: dict[str, tuple[str, bool]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update((r[0], (r[1], bool(r[2]))) for r in self.ws.conn.execute(
                "SELECT id, category, expected IS NOT NULL AND json_valid(expected) AND json_type(expected) = 'array' "
                f"FROM tasks WHERE id IN ({marks})", chunk))
        return out

    def tools_of(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """{task id: its tool definitions}, read in bounded chunks (the accuracy check's type rules)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for task_id, tools in self.ws.conn.execute(f"SELECT id, tools FROM tasks WHERE id IN ({marks})", chunk):
                out[task_id] = orjson.loads(tools)
        return out


_TASK_COLUMNS = "id, category, messages, tools, expected, source, environment, max_steps, user_spec"


def _task(row: tuple[Any, ...]) -> Task:
    return Task(row[0], row[1], orjson.loads(row[2]), orjson.loads(row[3]),
                None if row[4] is None else orjson.loads(row[4]), row[5], row[6] or "", row[7],
                None if row[8] is None else orjson.loads(row[8]))


def _where(category: str | None, search: str) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if category:
        clauses.append("category = ?")
        args.append(category)
    if search:
        clauses.append("(prompt LIKE ? OR id LIKE ? OR tool_names LIKE ?)")
        like = f"%{search}%"
        args += [like, like, like]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args
