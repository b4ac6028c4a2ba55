"""Open, create and check a workspace folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import socket
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from cascade_studio.store.migrations import (
    SCHEMA_VERSION,
    compact_after,
    current_version,
    migrate,
    needs_backup,
)

DB_NAME = "workspace.sqlite"
BULK_CACHE_KIB = 256 * 1024  # the page cache `page_cache` gives a bulk read or update
FULL_CHECK_LIMIT = 64 * 1024 * 1024  # bytes; a full integrity_check takes ~10 s per 250 MB
CHECK_INTERVAL = dt.timedelta(days=1)  # a bigger workspace is checked at most this often (and after a crash)
CHECKED_AT, CHECK_RESULT, CHECK_DUE = "integrity_checked_at", "integrity_result", "integrity_due"
SESSION_PREFIX = "open."  # meta keys "open.PID.TOKEN": a connection that has not closed yet
FOUND_DAMAGE = "the last check found damage"
UNCLEAN = "a process that had it open ended without closing it"
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
    is_reader = False  # a second connection (`reader`): closing it writes nothing

    @classmethod
    def open(cls, folder: str | Path, *, create: bool = True, check: str = "auto",
             announce: Callable[[str], None] | None = None) -> Workspace:
        """check: "full" (PRAGMA integrity_check), "quick" (quick_check), "auto" (full up to 64 MB;
        beyond, a quick_check only when one is due: see `check_due`), "defer" (full up to 64 MB;
        beyond, only the schema is read now and, when a check is due, `deferred_check` asks the
        caller to run `check_integrity` in the background) or "none" (the schema only).
        `announce` hears a sentence before a check of a big workspace starts (it takes seconds)."""
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
        owner_only_folder(folder)  # made earlier, or by hand, with wider permissions (0755, 0777)
        try:
            conn = _connect(db_file)
        except sqlite3.Error as exc:
            raise WorkspaceError(storage_problem(exc, db_file)
                                 or f"Cannot open {db_file}: {exc}. Check the folder's permissions.") from exc
        try:
            size = db_file.stat().st_size if db_file.exists() else 0
            due, gone = _check_due(conn)
            mode = check
            if check in ("auto", "defer"):
                if size <= FULL_CHECK_LIMIT:
                    mode = "full"
                else:
                    mode = "quick" if check == "auto" and due else "none"
                    if mode == "quick" and due == FOUND_DAMAGE:
                        mode = "full"  # what a full check found, a quick one may not see
                    if mode == "quick" and announce is not None:
                        announce(f"Checking the workspace {db_file} ({size / 1e9:.1f} GB): {due}…")
            cls._check_and_configure(conn, db_file, mode)
            version = current_version(conn)
            if version > SCHEMA_VERSION:
                raise WorkspaceError(
                    f"{db_file} was written by a newer Cascade Studio (schema {version}, this version "
                    f"knows {SCHEMA_VERSION}). Update Cascade Studio to open it; nothing was changed."
                )
            if version < SCHEMA_VERSION and version > 0:
                if needs_backup(version):
                    cls._backup_before_migration(conn, db_file, version)
                if announce is not None and size > FULL_CHECK_LIMIT:
                    announce(f"Upgrading the workspace {db_file} ({size / 1e9:.1f} GB) to schema {SCHEMA_VERSION}…")
            compact_after(conn, migrate(conn))
            ws = cls(folder, conn)
            ws.deferred_check = check == "defer" and mode == "none" and bool(due)
            ws._set_meta_default("created_at", _now())
            ws._begin_session(gone)
            if mode in ("full", "quick"):
                _record_check(conn, None)
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
            problem = _damaged(db_file, "; ".join(result[:3]))
            _record_check(conn, problem)
            raise WorkspaceError(problem)
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
        os.close(os.open(backup_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private, as the workspace
        dest = sqlite3.connect(backup_path)
        try:
            conn.backup(dest)
        finally:
            dest.close()

    @staticmethod
    def pending_upgrade(folder: str | Path) -> tuple[int, int] | None:
        """(its schema version, its size in bytes) when the workspace in `folder` needs an upgrade;
        None when it is current, new or unreadable (`open` then says what is wrong). Read-only."""
        db_file = Path(folder).expanduser() / DB_NAME
        if not db_file.is_file():
            return None
        try:
            conn = sqlite3.connect(f"{db_file.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                version = current_version(conn)
            finally:
                conn.close()
        except (sqlite3.Error, ValueError):
            return None
        return (version, db_file.stat().st_size) if 0 < version < SCHEMA_VERSION else None

    @staticmethod
    def check_integrity(folder: str | Path, *, quick: bool = False) -> str | None:
        """Full (or quick) integrity check on a separate connection (safe to run in a worker
        thread), remembered in `meta` as the last check. Returns None when the file is sound, else a
        message naming the problem and the fix."""
        db_file = Path(folder) / DB_NAME
        if not db_file.is_file():
            return f"No workspace in {Path(folder)} (no {DB_NAME}): nothing to check."
        try:
            conn = sqlite3.connect(db_file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                pragma = "PRAGMA quick_check" if quick else "PRAGMA integrity_check"
                rows = [r[0] for r in conn.execute(pragma).fetchall()]
                problem = None if rows == ["ok"] else _damaged(db_file, "; ".join(rows[:3]))
                _record_check(conn, problem)
            finally:
                conn.close()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # a damaged page can hold any bytes
            return storage_problem(exc, db_file) or _damaged(db_file, str(exc))
        return problem

    @staticmethod
    def last_check(folder: str | Path) -> tuple[str | None, str | None]:
        """(when the last integrity check ran, its result: "ok" or the problem), from `meta`."""
        conn = sqlite3.connect(Path(folder) / DB_NAME, timeout=BUSY_TIMEOUT_S)
        try:
            return _meta(conn, CHECKED_AT), _meta(conn, CHECK_RESULT)
        except sqlite3.Error:
            return None, None
        finally:
            conn.close()

    def _begin_session(self, gone: list[str]) -> None:
        """Mark this connection open in `meta` (cleared by `close`): a mark left by a process that
        is gone means an unclean shutdown, and the file is checked (whatever its size) before the
        "check due" mark that replaces the dead marks is cleared."""
        self._session: str | None = f"{SESSION_PREFIX}{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            if gone:
                self.conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in gone])
                self.set_meta(CHECK_DUE, UNCLEAN)
            self.set_meta(self._session, f"{socket.gethostname()} {_now()}")
        except sqlite3.Error:
            self._session = None

    def close(self) -> None:
        if self.is_reader:
            self.conn.close()
            return
        try:
            if getattr(self, "_session", None):
                self.conn.execute("DELETE FROM meta WHERE key = ?", (self._session,))
                self._session = None
            self.conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        self.conn.close()

    @contextlib.contextmanager
    def page_cache(self, kib: int = BULK_CACHE_KIB) -> Iterator[None]:
        """A larger SQLite page cache for a bulk read or update of a big workspace (freed after):
        with the 2 MB default, reading 300k rows by id costs as much system time in re-read pages
        as the work itself."""
        previous = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size={-int(kib)}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size={int(previous)}")

    def reader(self) -> Workspace:
        """A second connection to this workspace, for reading on another thread while this one
        writes (WAL: the reader neither waits for writes nor blocks them). The schema is already
        checked and migrated: no check, migration or session of its own. Close it when done."""
        reader = Workspace(self.path, _connect(self.db_file))
        reader.is_reader = True
        return reader

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


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _check_due(conn: sqlite3.Connection, now: dt.datetime | None = None) -> tuple[str, list[str]]:
    """(why an integrity check is due now, "" when it is not; the open-marks of processes that
    are gone). Due: never checked, the last check is over a day old or found damage, or a process
    that had the workspace open ended without closing it (an unclean shutdown). Reads only."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            return "never checked", []
        host = socket.gethostname()
        gone = []
        for key, value in conn.execute("SELECT key, value FROM meta WHERE key LIKE ?", (SESSION_PREFIX + "%",)):
            pid = key[len(SESSION_PREFIX):].split(".")[0]
            if str(value).split(" ")[0] == host and pid.isdigit() and not process_alive(int(pid)):
                gone.append(key)
        if gone:
            return UNCLEAN, gone
        reason = _meta(conn, CHECK_DUE)
        if reason:
            return reason, []
        result, checked = _meta(conn, CHECK_RESULT), _meta(conn, CHECKED_AT)
        if not checked:
            return "never checked", []
        if result != "ok":
            return FOUND_DAMAGE, []
        if now - dt.datetime.fromisoformat(checked) >= CHECK_INTERVAL:
            return "the daily check", []
        return "", []
    except (sqlite3.Error, ValueError, UnicodeDecodeError) as exc:  # unreadable: check it
        return f"its bookkeeping is unreadable ({exc})", []


def _record_check(conn: sqlite3.Connection, problem: str | None) -> None:
    """Remember a check's time and result in a workspace (best effort: a damaged or read-only file
    may refuse; another application's file is left as it was)."""
    try:
        if _foreign_tables(conn) or not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            return
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                         "excluded.value", [(CHECKED_AT, _now()), (CHECK_RESULT, problem or "ok")])
        if problem is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (CHECK_DUE,))
    except (sqlite3.Error, UnicodeDecodeError):
        pass


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours counts; unknown is alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or no way to tell: assume it is alive
    return True


def _owner_only(path: Path) -> None:
    """Tighten a workspace made before files were created owner-only (best effort: some file
    systems have no modes)."""
    try:
        if path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


def owner_only_folder(path: Path) -> None:
    """Tighten a folder that holds prompts and answers to its owner (0700), as its files are (best
    effort: a folder of another user's, or on a file system without modes, stays as it is)."""
    try:
        if path.is_dir() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
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
    from cascade_studio.store.payloads import packed_text_contains

    conn = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    # the inspector's text search reads large answers too (stored compressed: LIKE cannot see into them)
    conn.create_function("packed_text_contains", 2, packed_text_contains, deterministic=True)
    return conn


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
