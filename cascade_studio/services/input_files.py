"""Open files the user gives an importer: regular files only, checked before anything is read.

A directory, a FIFO or a device is refused up front (a FIFO would block the reader forever), and
the file is opened with O_NONBLOCK and checked again, so one swapped in after the check is refused
too. Errors are the caller's own UserError class, made by `error(problem, line)`, with the file named.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from cascade_studio.core.errors import UserError


class InputFileError(UserError, ValueError):
    """A file that cannot be read as an importer's input (missing, a folder, a FIFO, not UTF-8)."""


ErrorFactory = Callable[[str, int | None], Exception]  # (problem, line or None) -> the error to raise


def _default_error(path: Path) -> ErrorFactory:
    return lambda problem, line=None: InputFileError(f"{path}{f':{line}' if line else ''}: {problem}")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_regular(path: Path, error: ErrorFactory | None = None) -> os.stat_result:
    """os.stat the path (following links) and refuse anything but a regular file."""
    error = error or _default_error(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error("the file does not exist", None) from None
    except OSError as exc:
        raise error(f"cannot read it: {exc.strerror}", None) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"is {_kind(st.st_mode)}, not a file; choose a file", None)
    return st


def _open_fd(path: Path, error: ErrorFactory) -> int:
    check_regular(path, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"cannot read it: {exc.strerror}", None) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the check and the open
        os.close(fd)
        raise error("is not a regular file; choose a file", None)
    return fd


def read_bytes(path: Path, error: ErrorFactory | None = None) -> bytes:
    error = error or _default_error(path)
    fd = _open_fd(Path(path), error)
    try:
        with os.fdopen(fd, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise error(f"cannot read it: {exc.strerror}", None) from None


def read_text(path: Path, error: ErrorFactory | None = None) -> str:
    """The whole file as UTF-8 text (a leading BOM dropped)."""
    error = error or _default_error(path)
    data = read_bytes(path, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"not UTF-8 text (byte {exc.start} of the file); save it as UTF-8", line) from None


@contextmanager
def open_lines(path: Path, error: ErrorFactory | None = None) -> Iterator[Iterator[str]]:
    """The file's lines, streamed (for files too large to hold); a byte that is not UTF-8 raises
    `error` naming its line when the reader gets there."""
    error = error or _default_error(path)
    fd = _open_fd(Path(path), error)
    raw = os.fdopen(fd, "rb")
    try:
        yield _decoded_lines(raw, error)
    finally:
        raw.close()


def _decoded_lines(raw: IO[bytes], error: ErrorFactory) -> Iterator[str]:
    number = 0
    try:
        for number, line in enumerate(raw, start=1):
            try:
                yield line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise error(f"not UTF-8 text (byte {exc.start} of the line); save it as UTF-8", number) from None
    except OSError as exc:
        raise error(f"cannot read it after line {number}: {exc.strerror}", None) from None
