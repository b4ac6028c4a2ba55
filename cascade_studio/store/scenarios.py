"""What-if scenarios saved by name: their parameters and the figures at save time."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cascade_studio.store.workspace import Workspace


class ScenarioRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def save(self, name: str, params: dict[str, Any], results: dict[str, Any], quality_basis: str | None = None) -> int:
        """Add, or replace the scenario of the same name. `quality_basis` (accuracy or agreement) is kept
        with the figures: a quality saved on one basis must not be read as the other."""
        if quality_basis is not None:
            results = {**results, "quality_basis": quality_basis}
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        cur = self.ws.conn.execute(
            "INSERT INTO scenarios (name, created_at, params, results) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO "
            "UPDATE SET created_at = excluded.created_at, params = excluded.params, results = excluded.results",
            (name, stamp, json.dumps(params), json.dumps(results, default=float)))
        return cur.lastrowid

    def list(self) -> list[dict[str, Any]]:
        rows = self.ws.conn.execute("SELECT id, name, created_at, params, results FROM scenarios "
                                    "ORDER BY created_at, id")
        out = []
        for r in rows:
            results = json.loads(r[4])
            out.append({"id": r[0], "name": r[1], "created_at": r[2], "params": json.loads(r[3]), "results": results,
                        "quality_basis": results.get("quality_basis")})  # None: saved before the basis was kept
        return out

    def delete(self, name: str) -> None:
        self.ws.conn.execute("DELETE FROM scenarios WHERE name = ?", (name,))
