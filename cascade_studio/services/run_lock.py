"""One collection run per tier and workspace at a time, across processes.

Two `collect` processes on the same tier would both send every request (twice the bill). A run
holds an OS lock on `WORKSPACE/locks/tier-N.lock` while it sends requests; a second run of the tier
is refused with the holder's process id and start time. The OS releases the lock when the holding
process dies (kill -9 included), so a dead run never blocks: no stale-lock guessing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import IO

from cascade_studio.core.errors import UserError


class RunBusy(UserError):
    """Another process (or run) is collecting this tier right now."""


class TierRunLock:
    def __init__(self, workspace_dir: Path, tier: int, run_id: int) -> None:
        self.path = Path(workspace_dir) / "locks" / f"tier-{tier}.lock"
        self.tier, self.run_id = tier, run_id
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fh = os.fdopen(fd, "r+", encoding="utf-8")
        if not _try_lock(fh):
            holder = _read(fh)
            fh.close()
            raise _busy(self.tier, holder)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "run_id": self.run_id,
                             "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds")}))
        fh.flush()
        self._fh = fh

    @classmethod
    def refuse_if_busy(cls, workspace_dir: Path, tier: int) -> None:
        """Raise RunBusy now when another process holds the tier, before anything is said or started
        (the run takes the lock for real when it begins)."""
        probe = cls(workspace_dir, tier, run_id=0)
        probe.path.parent.mkdir(mode=0o700, exist_ok=True)
        fh = os.fdopen(os.open(probe.path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8")
        try:
            if not _try_lock(fh):
                raise _busy(tier, _read(fh))
            _unlock(fh)
        finally:
            fh.close()

    def holder(self) -> dict | None:
        """Who collects the tier right now ({pid, run_id, started_at}; {} when unknown), or None when
        nobody does. Takes nothing: a probe, not an acquire."""
        if not self.path.exists():
            return None
        try:
            fh = open(self.path, "r+", encoding="utf-8")  # noqa: SIM115 - closed below, after the probe
        except OSError:
            return None
        try:
            if _try_lock(fh):
                _unlock(fh)
                return None
            return _read(fh)
        finally:
            fh.close()

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.seek(0)
                self._fh.truncate()
                _unlock(self._fh)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> TierRunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _busy(tier: int, holder: dict) -> RunBusy:
    who = (f"process {holder.get('pid')} (run {holder.get('run_id')}, started {holder.get('started_at')})"
           if holder else "another process")
    return RunBusy(f"Tier {tier} is being collected right now by {who}. Wait for it to finish, or stop it; two "
                   "runs of one tier would send (and bill) every request twice.", code=4)


def _read(fh: IO[str]) -> dict:
    try:
        fh.seek(0)
        return json.loads(fh.read() or "{}")
    except (OSError, ValueError):
        return {}


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fh: IO[str]) -> bool:
        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fh: IO[str]) -> bool:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
