"""Filtered, sorted views of the trajectories table for the inspector: the matching ids are
fetched once (a compact numpy array), rows are fetched by id a block at a time, so a million rows
stay cheap to scroll and any scrollbar jump costs one block read.

At a million rows the planner's own choices are the cost: a range filter (confidence, cost) or an
ORDER BY walked through a single-column index fetches every row at random (1.7-2.5 s). So range
terms are written `+column` (no index: the rows are read in order), the filter's columns are
covered by one index (`trajectories_inspect`, migration 19: scanning it reads ~140 bytes a row,
not the table's ~570), and numeric sorts are done in numpy on (id, key) pairs read in one
aggregate (`group_concat`: a C-level pass, no Python tuple per row)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cascade_studio.core.confidence import CONF_COLUMNS, confidence_column  # noqa: F401 - CONF_COLUMNS re-exported
from cascade_studio.store.numbers import number_text, parse_numbers
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


# sorted in numpy (their values read as numbers); the others (text) by SQLite
NUMERIC_SORTS = frozenset({"id", "tier", "cost_micro", "latency_ms", "tokens", "steps", "confidence"})


def matching_ids(ws: Workspace, flt: TrajectoryFilter) -> np.ndarray:
    """The ids of the rows `flt` matches, in its order (ties by id; NULLs first ascending, as SQLite)."""
    where, args = flt.where()
    key = flt.sort_key()
    if key is None or flt.sort in NUMERIC_SORTS:
        extra = "" if key is None else f", group_concat({number_text(key)})"
        row = ws.conn.execute(f"SELECT group_concat(id){extra} FROM trajectories{where}", args).fetchone()
        ids = parse_numbers(row[0], np.int64)
        values = None if key is None else parse_numbers(row[1], np.float64)
        if ids is not None and (key is None or (values is not None and len(values) == len(ids))):
            if values is None:
                ids.sort()
            else:
                values[np.isnan(values)] = -np.inf
                ids = ids[np.lexsort((ids, values))]
            return ids[::-1].copy() if flt.descending else ids
    direction = "DESC" if flt.descending else "ASC"
    cursor = ws.conn.execute(f"SELECT id FROM trajectories{where} ORDER BY +{key} {direction}, id {direction}", args)
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
