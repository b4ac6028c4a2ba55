"""Filtered, sorted views of the trajectories table for the inspector: the matching ids are
fetched once (a compact array), rows are fetched by id a block at a time, so a million rows stay
cheap to scroll."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from cascade_studio.core.confidence import CONF_COLUMNS, confidence_column  # noqa: F401 - CONF_COLUMNS re-exported
from cascade_studio.store.workspace import Workspace

SORTABLE = {"id": "id", "task_id": "task_id", "category": "category", "tier": "tier", "model": "model",
            "status": "status", "tool_name": "tool_name", "confidence": None, "cost_micro": "cost_micro",
            "latency_ms": "latency_ms", "tokens": "(prompt_tokens + completion_tokens)", "curation": "curation",
            "tags": "tags", "steps": "steps", "end_reason": "end_reason"}
ROW_COLUMNS = ("id, task_id, category, tier, model, status, tool_name, conf_mean, conf_min, conf_tool, cost_micro, "
               "latency_ms, prompt_tokens + completion_tokens, curation, tags, steps, end_reason")


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
        for column, value in (("category", self.category), ("tier", self.tier), ("status", self.status),
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
            clauses.append(f"{conf} >= ?")
            args.append(self.conf_min)
        if self.conf_max is not None:
            clauses.append(f"{conf} <= ?")
            args.append(self.conf_max)
        if self.cost_min_micro is not None:
            clauses.append("cost_micro >= ?")
            args.append(self.cost_min_micro)
        if self.cost_max_micro is not None:
            clauses.append("cost_micro <= ?")
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
            clauses.append("steps >= ?")
            args.append(self.min_steps)
        if self.search:
            clauses.append("(task_id LIKE ? OR tool_name LIKE ? OR content LIKE ? OR tags LIKE ?)")
            like = f"%{self.search}%"
            args += [like] * 4
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def order(self) -> str:
        column = SORTABLE.get(self.sort) or "id"
        if self.sort == "confidence":
            column = confidence_column(self.confidence)
        direction = "DESC" if self.descending else "ASC"
        return f" ORDER BY {column} {direction}, id {direction}" if column != "id" else f" ORDER BY id {direction}"


def matching_ids(ws: Workspace, flt: TrajectoryFilter) -> array:
    where, args = flt.where()
    ids = array("q")
    cursor = ws.conn.execute(f"SELECT id FROM trajectories{where}{flt.order()}", args)
    while True:
        chunk = cursor.fetchmany(65536)
        if not chunk:
            break
        ids.extend(r[0] for r in chunk)
    return ids


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


def count_matching(ws: Workspace, flt: TrajectoryFilter) -> int:
    where, args = flt.where()
    return ws.conn.execute(f"SELECT count(*) FROM trajectories{where}", args).fetchone()[0]


def page_rows(ws: Workspace, flt: TrajectoryFilter, offset: int, limit: int) -> list[tuple[Any, ...]]:
    where, args = flt.where()
    return ws.conn.execute(f"SELECT {ROW_COLUMNS} FROM trajectories{where}{flt.order()} LIMIT ? OFFSET ?",
                           [*args, limit, offset]).fetchall()
