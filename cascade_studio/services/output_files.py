"""Writing files the user asked for (exports, policies): all or nothing, private, never through a
symlink. The text goes to a unique temporary file beside the target (O_EXCL, mode 0600), is fsynced,
then renamed over the target; on any failure the temporary file is removed and the target is as it
was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_text(target: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(target: Path, text: str) -> None:
    with atomic_text(target) as fh:
        fh.write(text)
