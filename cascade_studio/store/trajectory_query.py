"""Filtered, sorted views of the trajectories table for the inspector: the matching ids are
fetched once (a compact numpy array), rows are fetched by id a block at a time, so a million rows
stay cheap to scroll and any scrollbar jump costs one block read.

At a million rows the planner's own choices are the cost: a range filter (confidence, cost) or an
ORDER BY walked through a single-column index fetches every row at random (1.7-2.5 s). So range
terms are written `+column` (no index: the rows are read in order), the filter's columns are
covered by one index (`trajectories_inspect`, migration 19: scanning it reads ~140 bytes a row,
not the table's ~570), and sorts are SQLite's, handed over as one aggregate of ids (`group_concat`:
a C-level pass, no Python value per row; see matching_ids)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cascade_studio.core.confidence import CONF_COLUMNS, confidence_column  # noqa: F401 - CONF_COLUMNS re-exported
from cascade_studio.store.numbers import parse_numbers
from cascade_studio.store.workspace import Workspace

SORTABLE = {"id": "id", "task_id": "task_id", "category": "category", "tier": "tier", "model": "model",
            "status": "status", "tool_name": "tool_name", "confidence": None, "cost_micro": "cost_micro",
            "latency_ms": "latency_ms", "tokens": "(prompt_tokens + completion_tokens)", "curation": "curation",
            "tags": "tags", "steps": "steps", "end_reason": "end_reason"}
ROW_COLUMNS = ("id, task_id, category, tier, model, status, tool_name, conf_mean, conf_min, conf_tool, cost_micro, "
               "latency_ms, prompt_tokens + completion_tokens, curation, tags, steps, end_reason, unknown")


@dataclass
class TrajectoryFilter:
    category: str | None = None
    tier: int | None = None
    status: str | None = None
    tool: str | None = None
    curation: str | None = None  # accepted, rejected, none
    conf_min: float | None = None
    conf_max: float | None = None
    cost_min_micro: int | None = None
    cost_max_micro: int | None = None
    search: str = ""
    confidence: str = "mean_token_prob"
    sort: str = "id"
    descending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # tier -> its generation keys: only trajectories of each tier's current generation (None: all)
    generations: dict[int, tuple[str, ...]] | None = None
    # agent episodes: None (all rows), "single" (one request), "episodes" (any end), or an end reason
    episode: str | None = None
    min_steps: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        conf = confidence_column(self.confidence)
        # status as +status: (tier, status) would match trajectories_latest, whose rows come out of
        # rowid order (random reads); tier alone leads the covering index
        for column, value in (("category", self.category), ("tier", self.tier), ("+status", self.status),
                              ("tool_name", self.tool)):
            if value not in (None, ""):
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.curation == "none":
            clauses.append("curation IS NULL")
        elif self.curation:
            clauses.append("curation = ?")
            args.append(self.curation)
        if self.conf_min is not None:
            clauses.append(f"+{conf} >= ?")
            args.append(self.conf_min)
        if self.conf_max is not None:
            clauses.append(f"+{conf} <= ?")
            args.append(self.conf_max)
        if self.cost_min_micro is not None:
            clauses.append("+cost_micro >= ?")
            args.append(self.cost_min_micro)
        if self.cost_max_micro is not None:
            clauses.append("+cost_micro <= ?")
            args.append(self.cost_max_micro)
        if self.generations:  # rows of a tier that is no longer defined have no current generation: shown
            parts = []
            for tier, keys in sorted(self.generations.items()):
                parts.append(f"(tier = ? AND generation IN ({','.join('?' * len(keys))}))")
                args += [tier, *keys]
            parts.append(f"tier NOT IN ({','.join('?' * len(self.generations))})")
            args += sorted(self.generations)
            clauses.append("(" + " OR ".join(parts) + ")")
        if self.episode == "single":
            clauses.append("episode IS NULL")
        elif self.episode == "episodes":
            clauses.append("episode IS NOT NULL")
        elif self.episode:
            clauses.append("end_reason = ?")
            args.append(self.episode)
        if self.min_steps is not None:
            clauses.append("+steps >= ?")
            args.append(self.min_steps)
        if self.search:
            # an answer over 64 KB is stored compressed: searched inflated, and only those rows
            clauses.append("(task_id LIKE ? OR tool_name LIKE ? OR content LIKE ? OR tags LIKE ? OR "
                           "(typeof(content) = 'blob' AND packed_text_contains(content, ?)))")
            like = f"%{self.search}%"
            args += [like] * 4 + [self.search]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def sort_key(self) -> str | None:
        """The SQL expression the view is sorted by (None: by id)."""
        if self.sort == "confidence":
            return confidence_column(self.confidence)
        column = SORTABLE.get(self.sort) or "id"
        return None if column == "id" else column


# aggregates take ORDER BY (guaranteed order) from SQLite 3.44; before, an ordered subquery feeds them
AGGREGATE_ORDER_BY = sqlite3.sqlite_version_info >= (3, 44, 0)
_CHECKED = 256  # rows of a sorted result whose order is checked before it is used


def matching_ids(ws: Workspace, flt: TrajectoryFilter) -> np.ndarray:
    """The ids of the rows `flt` matches, in its order (ties by id; NULLs first ascending, as SQLite)."""
    where, args = flt.where()
    key = flt.sort_key()
    if key is None:
        row = ws.conn.execute(f"SELECT group_concat(id) FROM trajectories{where}", args).fetchone()
        ids = parse_numbers(row[0], np.int64)
        if ids is not None:
            ids.sort()
            return ids[::-1].copy() if flt.descending else ids
    else:
        ids = _sorted_by_sqlite(ws, where, args, key, flt.descending)
        if ids is not None:
            return ids
    return _sorted_rows(ws, where, args, key or "id", flt.descending)


def _sorted_by_sqlite(ws: Workspace, where: str, args: list[Any], key: str, descending: bool) -> np.ndarray | None:
    """SQLite sorts, and one aggregate hands the ids over as one string: no Python value per row and
    no number written as text (1M rows: 0.09-0.6 s by column, was 0.4-1.4 s). With a filter the key is
    written `+(key)`, so no single-column index is walked (each row fetched at random from a 10 GB
    table); unfiltered, a column's own index is walked, which covers the id. The order is checked on
    a sample; None (use _sorted_rows) where it does not hold."""
    sql = sorted_ids_sql(where, key, descending)
    ids = parse_numbers(ws.conn.execute(sql, args).fetchone()[0], np.int64)  # no rows: an empty array
    return ids if ids is not None and _in_order(ws, ids, key, descending) else None


def sorted_ids_sql(where: str, key: str, descending: bool, *, aggregate_order_by: bool | None = None) -> str:
    d = "DESC" if descending else "ASC"
    order = f"+({key})" if where else key
    if AGGREGATE_ORDER_BY if aggregate_order_by is None else aggregate_order_by:
        return f"SELECT group_concat(id, ',' ORDER BY {order} {d}, id {d}) FROM trajectories{where}"
    return f"SELECT group_concat(id) FROM (SELECT id FROM trajectories{where} ORDER BY {order} {d}, id {d})"


def _sqlite_order(value: Any) -> tuple[int, Any]:
    """A Python sort key equal to SQLite's order of values (NULL < numbers < text < blobs; text by
    code point, which is UTF-8's byte order, SQLite's BINARY collation)."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    return (2, value) if isinstance(value, str) else (3, bytes(value))


def _in_order(ws: Workspace, ids: np.ndarray, key: str, descending: bool) -> bool:
    """Whether evenly spaced rows of a sorted result are in the order asked for (a guard: on an
    SQLite that dropped the subquery's ORDER BY the result would be in another order)."""
    if len(ids) < 2:
        return True
    picks = np.unique(np.linspace(0, len(ids) - 1, min(_CHECKED, len(ids))).astype(np.int64))
    chosen = [int(i) for i in ids[picks]]
    marks = ",".join("?" * len(chosen))
    values = dict(ws.conn.execute(f"SELECT id, {key} FROM trajectories WHERE id IN ({marks})", chosen))
    keys = [(_sqlite_order(values.get(i)), i) for i in chosen]
    pairs = zip(keys, keys[1:], strict=False)
    return all(b <= a for a, b in pairs) if descending else all(a <= b for a, b in pairs)


def _sorted_rows(ws: Workspace, where: str, args: list[Any], key: str, descending: bool) -> np.ndarray:
    """The plain way (a row at a time): the fallback when the aggregate's order cannot be trusted."""
    direction = "DESC" if descending else "ASC"
    cursor = ws.conn.execute(f"SELECT id FROM trajectories{where} ORDER BY +({key}) {direction}, id {direction}", args)
    chunks = []
    while chunk := cursor.fetchmany(65536):
        chunks.append(np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk)))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def rows_by_id(ws: Workspace, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {r[0]: r for r in ws.conn.execute(f"SELECT {ROW_COLUMNS} FROM trajectories WHERE id IN ({marks})", ids)}


def distinct_values(ws: Workspace, column: str, limit: int = 2000) -> list[Any]:
    """Distinct values by skipping through the column's index (O(distinct x log n)), not a scan."""
    assert column in ("category", "tier", "status", "tool_name", "model")
    sql = (f"WITH RECURSIVE v(x, n) AS (SELECT min({column}), 1 FROM trajectories UNION ALL "
           f"SELECT (SELECT min({column}) FROM trajectories WHERE {column} > v.x), n + 1 FROM v "
           f"WHERE v.x IS NOT NULL AND n < ?) SELECT x FROM v WHERE x IS NOT NULL")
    return [r[0] for r in ws.conn.execute(sql, (limit,))]
