"""Open, create and check a workspace folder."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import sqlite3
import sys
from pathlib import Path

from cascade_studio.store.migrations import SCHEMA_VERSION, current_version, migrate

DB_NAME = "workspace.sqlite"
FULL_CHECK_LIMIT = 64 * 1024 * 1024  # bytes; a full integrity_check takes ~10 s per 250 MB
BUSY_TIMEOUT_S = 10.0  # how long to wait for another process's lock before saying who holds it
OWN_TABLES = {"meta", "tiers"}  # every Cascade Studio workspace has these from schema 1 on


class WorkspaceError(Exception):
    """A workspace cannot be opened. The message names the problem and the fix."""


class Workspace:
    """One workspace folder. Holds a single sqlite3 connection in autocommit mode."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    # -- lifecycle -----------------------------------------------------------------------
    deferred_check = False

    @classmethod
    def open(cls, folder: str | Path, *, create: bool = True, check: str = "auto") -> Workspace:
        """check: "full" (PRAGMA integrity_check), "quick" (quick_check), "auto" (full up to 64 MB,
        quick beyond), or "defer" (full up to 64 MB; beyond, only the schema is read now and the
        caller runs `check_integrity` in the background)."""
        folder = Path(folder).expanduser().resolve()
        db_file = folder / DB_NAME
        if folder.exists() and not folder.is_dir():
            raise WorkspaceError(f"{folder} is a file, not a folder. Choose a folder for the workspace.")
        if not db_file.exists():
            if not create:
                raise WorkspaceError(
                    f"No workspace in {folder} (no {DB_NAME}). Use File > New Workspace to create one."
                )
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Prompts and answers are private: the database is readable by its owner only
                # (SQLite gives its -wal and -shm files the same mode).
                os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise WorkspaceError(_cannot_create(folder, exc)) from exc
        try:
            conn = _connect(db_file)
        except sqlite3.Error as exc:
            raise WorkspaceError(storage_problem(exc, db_file)
                                 or f"Cannot open {db_file}: {exc}. Check the folder's permissions.") from exc
        try:
            size = db_file.stat().st_size if db_file.exists() else 0
            mode = check
            if check in ("auto", "defer"):
                mode = "full" if size <= FULL_CHECK_LIMIT else ("quick" if check == "auto" else "none")
            cls._check_and_configure(conn, db_file, mode)
            version = current_version(conn)
            if version > SCHEMA_VERSION:
                raise WorkspaceError(
                    f"{db_file} was written by a newer Cascade Studio (schema {version}, this version "
                    f"knows {SCHEMA_VERSION}). Update Cascade Studio to open it; nothing was changed."
                )
            if version < SCHEMA_VERSION and version > 0:
                cls._backup_before_migration(conn, db_file, version)
            migrate(conn)
            ws = cls(folder, conn)
            ws.deferred_check = mode == "none"
            ws._set_meta_default("created_at", _now())
            return ws
        except WorkspaceError:
            conn.close()
            raise
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # a damaged page can hold any bytes
            conn.close()
            raise WorkspaceError(storage_problem(exc, db_file) or _damaged(db_file, str(exc))) from exc

    @staticmethod
    def _check_and_configure(conn: sqlite3.Connection, db_file: Path, mode: str = "full") -> None:
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails fast on a non-database
            if mode != "none":
                pragma = "PRAGMA integrity_check" if mode == "full" else "PRAGMA quick_check"
                rows = conn.execute(pragma).fetchall()
            else:
                rows = [("ok",)]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # a damaged page can hold any bytes
            raise WorkspaceError(storage_problem(exc, db_file) or _damaged(db_file, str(exc))) from exc
        result = [r[0] for r in rows]
        if result != ["ok"]:
            raise WorkspaceError(_damaged(db_file, "; ".join(result[:3])))
        foreign = _foreign_tables(conn)
        if foreign:  # before anything is written: another application's file stays as it was
            raise WorkspaceError(_not_ours(db_file, foreign))
        _owner_only(db_file)  # before WAL: SQLite gives its -wal and -shm files the database's mode
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise WorkspaceError(f"{db_file}: cannot switch to WAL mode (got {mode}). Is the folder on a network share?")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")

    @staticmethod
    def _backup_before_migration(conn: sqlite3.Connection, db_file: Path, version: int) -> None:
        """Keep a copy of the workspace as it was before upgrading it (cheap insurance)."""
        backup_path = db_file.with_name(f"{db_file.stem}.v{version}.bak.sqlite")
        if backup_path.exists():
            return
        dest = sqlite3.connect(backup_path)
        try:
            conn.backup(dest)
        finally:
            dest.close()

    @staticmethod
    def check_integrity(folder: str | Path) -> str | None:
        """Full integrity check on a separate connection (safe to run in a worker thread).
        Returns None when the file is sound, else a message naming the problem and the fix."""
        db_file = Path(folder) / DB_NAME
        try:
            conn = sqlite3.connect(db_file, timeout=BUSY_TIMEOUT_S)
            try:
                rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            finally:
                conn.close()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # a damaged page can hold any bytes
            return storage_problem(exc, db_file) or _damaged(db_file, str(exc))
        return None if rows == ["ok"] else _damaged(db_file, "; ".join(rows[:3]))

    def close(self) -> None:
        try:
            self.conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        self.conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db_file(self) -> Path:
        return self.path / DB_NAME

    @property
    def schema_version(self) -> int:
        return current_version(self.conn)

    # -- metadata ------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _set_meta_default(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))


def _owner_only(path: Path) -> None:
    """Tighten a workspace made before files were created owner-only (best effort: some file
    systems have no modes)."""
    try:
        if path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _damaged(db_file: Path, detail: str) -> str:
    return (
        f"The workspace file {db_file} is damaged or is not a Cascade Studio workspace ({detail}). "
        f"Nothing was changed. Restore it from a backup (a *.bak.sqlite copy in the same folder, if any), "
        f"or create a new workspace with File > New Workspace."
    )


def _connect(db_file: Path) -> sqlite3.Connection:
    return sqlite3.connect(db_file, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)


def _foreign_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables of a database that is not a Cascade Studio workspace (empty for ours, or for a
    new empty file). Ours either has no tables yet (user_version 0) or has OWN_TABLES."""
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite%' ORDER BY name")]
    if not tables:
        return []
    if conn.execute("PRAGMA user_version").fetchone()[0] > 0 and OWN_TABLES <= set(tables):
        return []
    return tables


def _not_ours(db_file: Path, tables: list[str]) -> str:
    shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
    return (f"{db_file} is not a Cascade Studio workspace: it holds tables {shown} of another application. "
            "Nothing was changed. Choose another folder for the workspace, or move that file away if it is "
            "not needed there.")


# SQLite's primary result codes (the extended code's low byte).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 6, 8, 10, 13, 14
_SQLITE_PERM = 3


def storage_problem(exc: BaseException, db_file: Path) -> str | None:
    """A sentence for an SQLite error that says nothing about the workspace's contents (read-only,
    disk full, locked by another process, cannot open): what it is and what to do. None when the
    error is something else (a damaged file, a bug). Never tells the user to restore a backup."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    folder = db_file.parent
    if primary == _SQLITE_FULL or "disk is full" in text:
        return (f"The disk holding the workspace {folder} is full{_free_space(folder)}. The workspace is not damaged "
                "and nothing was lost; free some space on that disk, then open it again.")
    if primary in (_SQLITE_READONLY, _SQLITE_PERM) or "readonly database" in text or "read-only" in text:
        return _read_only(db_file)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text or "table is locked" in text:
        holders = _holders(db_file)
        who = f" ({', '.join(holders)})" if holders else ""
        return (f"The workspace {db_file} is locked by another process{who}: another Cascade Studio, or a tool such "
                f"as sqlite3, is writing to it. The workspace is not damaged; close it there (or wait for it to "
                "finish) and open it again.")
    if primary == _SQLITE_CANTOPEN or "unable to open database" in text:
        if not os.access(folder, os.W_OK) or _read_only_mount(folder):
            return _read_only(db_file)
        return (f"Cannot open the workspace file {db_file} ({exc}). Check that the folder exists and that you "
                "may read and write it; the workspace is not necessarily damaged.")
    if primary == _SQLITE_IOERR or "disk i/o error" in text:
        if _read_only_mount(folder):
            return _read_only(db_file)
        return (f"The disk holding {folder} reported an input/output error ({exc}). Check the disk (or the network "
                "share) and open the workspace again; do not replace the workspace before it has been checked.")
    return None


def _read_only(db_file: Path) -> str:
    folder = db_file.parent
    if _read_only_mount(folder):
        what = f"the file system holding {folder} is mounted read-only"
    elif not os.access(folder, os.W_OK):
        what = f"the folder {folder} is not writable by you"
    elif db_file.exists() and not os.access(db_file, os.W_OK):
        what = f"the file {db_file} is not writable by you"
    else:
        what = f"{db_file} cannot be written"
    return (f"The workspace is read-only: {what}. Cascade Studio needs to write to the workspace (also to open it). "
            f"It is not damaged; make the folder and the file writable (e.g. `chmod u+w {folder} {db_file}`), or copy "
            "the folder somewhere you can write to and open the copy.")


def _cannot_create(folder: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"Cannot create the workspace in {folder}: the disk is full{_free_space(folder)}. Free some space."
    if exc.errno == errno.EROFS:
        return f"Cannot create the workspace in {folder}: the file system is mounted read-only. Choose another folder."
    return f"Cannot create the workspace folder {folder}: {exc.strerror}. Choose a folder you can write to."


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" ({free / 1e6:.1f} MB free)" if free < 1e9 else f" ({free / 1e9:.1f} GB free)"


def _holders(db_file: Path, limit: int = 3) -> list[str]:
    """Other processes that have the workspace open ("process 123 (python3)"), where the system
    says (Linux /proc); best effort, empty elsewhere."""
    if not sys.platform.startswith("linux"):
        return []
    names = {str(db_file), f"{db_file}-wal", f"{db_file}-shm", f"{db_file}-journal"}
    found: list[str] = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in names for fd in fds):
                with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
                    found.append(f"process {pid} ({fh.read().strip()})")
        except OSError:
            continue
        if len(found) >= limit:
            break
    return found
