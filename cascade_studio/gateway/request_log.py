"""Append-only JSONL request logs, rotated by size.

Each process writes files of its own (`requests-<UTC time>-<pid>.jsonl`), so several workers behind
one load balancer never interleave lines; a file is closed and a new one begun once it passes
`max_bytes`. Lines are written whole with one `write` on an O_APPEND descriptor: a crash can lose
the last line, never corrupt an earlier one. The files are private to their owner (0600).

A full disk (or any write error) never costs a client its answer: the record is dropped, counted
(`failures`, shown on /healthz) and said on stderr, and a line the disk took only part of is cut
back off, so every line is whole or absent (issue 33)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from cascade_studio.services.paths import owner_only_folder

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
PATTERN = "requests-*.jsonl"
REPORT_EVERY_S = 60.0  # stderr says so at the first failure, then at most once a minute

log = logging.getLogger(__name__)


class RequestLog:
    def __init__(self, folder: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner_only_folder(self.folder)  # the log holds prompts and answers: owner only, as its files
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()  # the event loop writes; a shutdown hook may too
        self.path: Path | None = None
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None
        self._reported_at: float | None = None
        self._failing = False

    def _open(self) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = self.folder / f"requests-{stamp}-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o600)
        self._size = 0

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record as one whole line; False (counted, reported) when it could not be."""
        line = orjson.dumps(record, default=str) + b"\n"
        with self._lock:
            try:
                if self._fd is None or self._size >= self.max_bytes:
                    self.close_file()
                    self._open()
                self._append(line)
            except OSError as exc:
                self._failed(exc)
                return False
            self._size += len(line)
            self.written += 1
            if self._failing:
                self._failing = False
                print(f"cascade-studio gateway: the request log is written again ({self.failures} record(s) lost "
                      "in all).", file=sys.stderr, flush=True)
            return True

    def _append(self, line: bytes) -> None:
        done = 0
        try:
            while done < len(line):
                n = os.write(self._fd, line[done:] if done else line)  # type: ignore[arg-type]
                if n <= 0:
                    raise OSError("the disk took no bytes")
                done += n
        except OSError:
            if done:
                self._cut_back()
            raise

    def _cut_back(self) -> None:
        """Remove a partly written line (the disk filled up mid-line): the next line must not be glued to it."""
        try:
            os.ftruncate(self._fd, self._size)  # type: ignore[arg-type]
        except OSError:
            self.close_file()  # cannot cut it: the torn line ends this file, the next record starts a new one

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self._failing = True
        self.last_error = f"{exc.strerror or exc}" + (f" ({self.path})" if self.path else "")
        now = time.monotonic()
        if self._reported_at is None or now - self._reported_at >= REPORT_EVERY_S:
            self._reported_at = now
            print(f"cascade-studio gateway: could not write the request log: {self.last_error}; "
                  f"{self.failures} record(s) lost so far. Clients still get their answers. Free disk space "
                  "for the log folder.", file=sys.stderr, flush=True)

    def status(self) -> dict[str, Any]:
        """For /healthz: how the log is doing."""
        return {"written": self.written, "failed": self.failures, "last_error": self.last_error}

    def close_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as exc:  # a deferred write error: the records were counted as written
                log.warning("Closing the request log %s: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            self.close_file()


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
