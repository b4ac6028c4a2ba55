"""Open, create and check a workspace folder."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from cascade_studio.store.migrations import SCHEMA_VERSION, current_version, migrate

DB_NAME = "workspace.sqlite"
FULL_CHECK_LIMIT = 64 * 1024 * 1024  # bytes; a full integrity_check takes ~10 s per 250 MB


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
                raise WorkspaceError(f"Cannot create the workspace folder {folder}: {exc.strerror}. "
                                     "Choose a folder you can write to.") from exc
        _owner_only(db_file)
        try:
            conn = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False, timeout=10)
        except sqlite3.Error as exc:
            raise WorkspaceError(f"Cannot open {db_file}: {exc}. Check the folder's permissions.") from exc
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
            raise WorkspaceError(_damaged(db_file, str(exc))) from exc

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
            raise WorkspaceError(_damaged(db_file, str(exc))) from exc
        result = [r[0] for r in rows]
        if result != ["ok"]:
            raise WorkspaceError(_damaged(db_file, "; ".join(result[:3])))
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise WorkspaceError(f"{db_file}: cannot switch to WAL mode (got {mode}). Is the folder on a network share?")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")

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
            conn = sqlite3.connect(db_file, timeout=10)
            try:
                rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            finally:
                conn.close()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # a damaged page can hold any bytes
            return _damaged(db_file, str(exc))
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
