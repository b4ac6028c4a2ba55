"""Environments (MCP servers and Python modules that give episodes their tools). Secret values
(headers, environment variables marked secret) are in the keyring, never here."""

from __future__ import annotations

from typing import Any

import orjson

from cascade_studio.store.trajectories import now
from cascade_studio.store.workspace import Workspace


class EnvironmentRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def put(self, name: str, kind: str, spec: dict[str, Any]) -> bool:
        """Add or replace; True when it replaced one."""
        existed = self.get(name) is not None
        stamp = now()
        self.ws.conn.execute(
            "INSERT INTO environments (name, kind, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec, updated_at = excluded.updated_at",
            (name, kind, orjson.dumps(spec).decode(), stamp, stamp))
        return existed

    def get(self, name: str) -> tuple[str, dict[str, Any]] | None:
        row = self.ws.conn.execute("SELECT kind, spec FROM environments WHERE name = ?", (name,)).fetchone()
        return None if row is None else (row[0], orjson.loads(row[1]))

    def list(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(r[0], r[1], orjson.loads(r[2]))
                for r in self.ws.conn.execute("SELECT name, kind, spec FROM environments ORDER BY name")]

    def remove(self, name: str) -> bool:
        return self.ws.conn.execute("DELETE FROM environments WHERE name = ?", (name,)).rowcount > 0
