"""A healthy workspace that cannot be opened right now (read-only, disk full, locked) is never called
damaged, and another application's `workspace.sqlite` is refused untouched (issue 14)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import cascade_studio.store.workspace as wsmod
from cascade_studio.store.workspace import Workspace, WorkspaceError, storage_problem


def never_damaged(text: str) -> None:
    assert "damaged" not in text.replace("not damaged", "") and "backup" not in text, text


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.iterdir())}


def test_another_applications_database_is_refused_untouched(tmp_path):
    db = tmp_path / "workspace.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE a (x); CREATE TABLE b (y); CREATE TABLE c (z); INSERT INTO a VALUES (1);")
    conn.close()
    db.chmod(0o644)
    before = snapshot(tmp_path)
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path)
    text = str(err.value)
    assert "not a Cascade Studio workspace" in text and "holds tables a, b, c of another application" in text
    assert "Nothing was changed" in text
    assert snapshot(tmp_path) == before  # same bytes (still a rollback journal), same mode, no -wal/-shm
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_another_applications_versioned_database_is_refused(tmp_path):
    db = tmp_path / "workspace.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE meta (k, v); CREATE TABLE notes (n); PRAGMA user_version = 3;")
    conn.close()
    before = snapshot(tmp_path)
    with pytest.raises(WorkspaceError, match="holds tables meta, notes of another application"):
        Workspace.open(tmp_path)
    assert snapshot(tmp_path) == before


def test_own_workspace_and_empty_file_still_open(tmp_path):
    Workspace.open(tmp_path / "ws").close()
    Workspace.open(tmp_path / "ws").close()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "workspace.sqlite").write_bytes(b"")
    with Workspace.open(tmp_path / "empty") as ws:
        assert ws.get_meta("created_at")


def test_read_only_workspace_is_called_read_only_not_damaged(tmp_path, monkeypatch):
    Workspace.open(tmp_path).close()
    for extra in tmp_path.glob("workspace.sqlite-*"):
        extra.unlink()
    conn = sqlite3.connect(tmp_path / "workspace.sqlite")
    conn.execute("PRAGMA journal_mode=DELETE")  # as a workspace copied off a read-only medium would be
    conn.close()

    def read_only(db_file: Path) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)

    monkeypatch.setattr(wsmod, "_connect", read_only)
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path)
    text = str(err.value)
    assert "read-only" in text and "writable" in text
    never_damaged(text)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="chmod does not stop root")
def test_read_only_folder_for_real(tmp_path):
    folder = tmp_path / "ws"
    Workspace.open(folder).close()
    for extra in folder.glob("workspace.sqlite-*"):
        extra.unlink()
    (folder / "workspace.sqlite").chmod(0o400)
    folder.chmod(0o500)
    try:
        with pytest.raises(WorkspaceError) as err:
            Workspace.open(folder)
    finally:
        folder.chmod(0o700)
    assert "read-only" in str(err.value)
    never_damaged(str(err.value))


def test_full_disk_is_called_full_not_damaged(tmp_path, monkeypatch):
    Workspace.open(tmp_path).close()

    def full(conn):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(wsmod, "migrate", full)
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path)
    text = str(err.value)
    assert f"The disk holding the workspace {tmp_path.resolve()} is full" in text and "free some space" in text
    never_damaged(text)


def test_storage_problem_by_sqlite_error_code(tmp_path):
    db = tmp_path / "workspace.sqlite"
    full = sqlite3.OperationalError("something")
    full.sqlite_errorcode = 13  # SQLITE_FULL
    assert "is full" in storage_problem(full, db)
    busy = sqlite3.OperationalError("x")
    busy.sqlite_errorcode = 5 | (1 << 8)  # SQLITE_BUSY_RECOVERY: the primary code decides
    assert "locked by another process" in storage_problem(busy, db)
    assert storage_problem(sqlite3.DatabaseError("file is not a database"), db) is None
    assert storage_problem(ValueError("x"), db) is None


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO meta(key, value) VALUES ('locker', 'x')")
print("locked", flush=True)
sys.stdin.read()
"""


def test_workspace_locked_by_another_process_names_it(tmp_path, monkeypatch):
    Workspace.open(tmp_path).close()
    monkeypatch.setattr(wsmod, "BUSY_TIMEOUT_S", 0.2)
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(tmp_path / "workspace.sqlite")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceError) as err:
            Workspace.open(tmp_path)
        integrity = Workspace.check_integrity(tmp_path)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    text = str(err.value)
    assert "locked by another process" in text and "close it there" in text
    never_damaged(text)
    if sys.platform.startswith("linux"):
        assert f"process {proc.pid} (python" in text
    assert integrity is not None and "locked by another process" in integrity
    with Workspace.open(tmp_path) as ws:  # once the other process lets go, it opens
        assert ws.get_meta("locker") is None
