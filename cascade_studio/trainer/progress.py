"""The progress file: one JSON object per line, appended and flushed as it happens."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class Progress:
    def __init__(self, path: Path) -> None:
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        self.fh.write(json.dumps({"t": round(time.time(), 3), "type": kind, **fields}, ensure_ascii=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def state(self, status: str, **fields: Any) -> None:
        self.write("state", status=status, **fields)

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        self.write("event", level=level, message=message, **({"data": data} if data else {}))

    def close(self) -> None:
        self.fh.close()
