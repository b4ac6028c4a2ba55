"""App settings that are not secrets and not per workspace (recent workspaces, window state)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cascade_studio.services.paths import config_dir

log = logging.getLogger(__name__)
MAX_RECENT = 8


class AppSettings:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "settings.json"
        self.data: dict[str, Any] = {}
        self.load()

    def load(self) -> None:
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.data, dict):
                raise ValueError("not an object")
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable settings file %s: %s", self.path, exc)
            self.data = {}

    def save(self) -> None:
        """Write atomically so a crash or full disk never leaves a half-written file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("Could not save settings to %s: %s", self.path, exc)

    @property
    def recent_workspaces(self) -> list[str]:
        items = self.data.get("recent_workspaces", [])
        return [str(x) for x in items if isinstance(x, str)]

    def add_recent(self, folder: Path | str) -> None:
        folder = str(Path(folder).resolve())
        items = [folder] + [x for x in self.recent_workspaces if x != folder]
        self.data["recent_workspaces"] = items[:MAX_RECENT]
        self.save()

    def remove_recent(self, folder: Path | str) -> None:
        folder = str(Path(folder).resolve())
        self.data["recent_workspaces"] = [x for x in self.recent_workspaces if x != folder]
        self.save()

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()
