"""Production requests brought home from the gateway's logs (`traffic import`), one row per request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from cascade_studio.store.transactions import write_transaction
from cascade_studio.store.workspace import Workspace

_COLUMNS = ("id", "time", "category", "task_id", "answered_by", "escalated", "tiers_tried", "latency_ms",
            "cost_micro", "teacher_only_micro", "attempts", "shadow_agree", "source")
SUMMARY_COLUMNS = ("time", "category", "answered_by", "escalated", "latency_ms", "cost_micro",
                   "teacher_only_micro", "shadow_agree")


class ProductionRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update(r[0] for r in self.ws.conn.execute(
                f"SELECT id FROM production_requests WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return out

    def put_all(self, rows: list[dict[str, Any]], shadows: dict[str, bool | None]) -> None:
        """Store requests (a re-import replaces the same ids) and shadow verdicts, in one transaction;
        a verdict whose request is in another file is set on the stored row."""
        conn = self.ws.conn
        with write_transaction(conn):
            conn.executemany(
                f"INSERT OR REPLACE INTO production_requests ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                [tuple(orjson.dumps(r[c]).decode() if c == "attempts" else r[c] for c in _COLUMNS) for r in rows])
            conn.executemany("UPDATE production_requests SET shadow_agree = ? WHERE id = ?",
                             [(None if agree is None else int(agree), rid) for rid, agree in shadows.items()])

    def count(self) -> int:
        return self.ws.conn.execute("SELECT count(*) FROM production_requests").fetchone()[0]

    def summary_rows(self) -> list[tuple[Any, ...]]:
        """SUMMARY_COLUMNS of every request, oldest first (what the Production page's figures read)."""
        return self.ws.conn.execute(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM production_requests ORDER BY time, id").fetchall()

    def hard_cases(self, limit: int = 10_000) -> list[dict[str, Any]]:
        """Tasks of escalated requests, the most recent first: task id, category, requests, last time,
        the tiers that answered."""
        rows = self.ws.conn.execute(
            "SELECT task_id, category, count(*), max(time), group_concat(DISTINCT answered_by) "
            "FROM production_requests WHERE escalated = 1 AND task_id IS NOT NULL "
            "GROUP BY task_id ORDER BY max(time) DESC LIMIT ?", (limit,)).fetchall()
        return [{"task_id": r[0], "category": r[1], "requests": r[2], "last_seen": r[3],
                 "answered_by": sorted(int(x) for x in (r[4] or "").split(",") if x)} for r in rows]

    def escalated_without_content(self) -> int:
        return self.ws.conn.execute("SELECT count(*) FROM production_requests WHERE escalated = 1 AND task_id "
                                    "IS NULL").fetchone()[0]
