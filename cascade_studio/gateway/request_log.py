"""Append-only JSONL request logs, rotated by size.

Each process writes files of its own (`requests-<UTC time>-<pid>.jsonl`), so several workers behind
one load balancer never interleave lines; a file is closed and a new one begun once it passes
`max_bytes`. Lines are written whole with one `write` on an O_APPEND descriptor: a crash can lose
the last line, never corrupt an earlier one. The files are private to their owner (0600)."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any

import orjson

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
PATTERN = "requests-*.jsonl"


class RequestLog:
    def __init__(self, folder: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()  # the event loop writes; a shutdown hook may too
        self.path: Path | None = None

    def _open(self) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = self.folder / f"requests-{stamp}-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o600)
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, default=str) + b"\n"
        with self._lock:
            if self._fd is None or self._size >= self.max_bytes:
                self.close_file()
                self._open()
            os.write(self._fd, line)  # type: ignore[arg-type]
            self._size += len(line)

    def close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self.close_file()


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
