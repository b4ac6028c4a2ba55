"""Integrity checks that scale: a big workspace is checked once a day and after an unclean
shutdown, not on every open; `workspace check` checks on demand and says what it found."""

import datetime as dt
import sqlite3
import subprocess
import sys

import pytest

import cascade_studio.store.workspace as wsmod
from cascade_studio.store.workspace import Workspace, WorkspaceError


@pytest.fixture
def checks(monkeypatch):
    """The integrity check modes each open runs ("none": the schema only)."""
    seen: list[str] = []
    real = Workspace._check_and_configure

    def spy(conn, db_file, mode="full"):
        seen.append(mode)
        return real(conn, db_file, mode)

    monkeypatch.setattr(Workspace, "_check_and_configure", staticmethod(spy))
    return seen


def big(monkeypatch):
    monkeypatch.setattr(wsmod, "FULL_CHECK_LIMIT", 1)  # every file is "big"


def test_small_workspace_is_checked_fully_on_every_open(tmp_path, checks):
    for _ in range(2):
        with Workspace.open(tmp_path):
            pass
    assert checks == ["full", "full"]
    assert Workspace.last_check(tmp_path)[1] == "ok"


def test_big_workspace_opens_without_a_check_until_one_is_due(tmp_path, monkeypatch, checks):
    from cascade_studio.cli import main

    with Workspace.open(tmp_path):
        pass  # created small: fully checked and remembered
    big(monkeypatch)
    with Workspace.open(tmp_path) as ws:
        assert not ws.deferred_check
    with Workspace.open(tmp_path, check="defer") as ws:
        assert not ws.deferred_check
    assert main(["-w", str(tmp_path), "tiers", "list"]) == 0
    assert checks == ["full", "none", "none", "none"]
    # a day later: the next CLI command runs one quick check, then none again
    with Workspace.open(tmp_path) as ws:
        ws.set_meta(wsmod.CHECKED_AT, (dt.datetime.now(dt.UTC) - dt.timedelta(days=1, minutes=1)).isoformat())
    checks.clear()
    assert main(["-w", str(tmp_path), "tiers", "list"]) == 0
    assert main(["-w", str(tmp_path), "tiers", "list"]) == 0
    assert checks == ["quick", "none"]


def _open_and_die(folder):
    """Another process opens the workspace and ends without closing it (a crash, a kill)."""
    code = ("import os, sys; from cascade_studio.store.workspace import Workspace; "
            "Workspace.open(sys.argv[1], check='none'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True)


def test_unclean_shutdown_triggers_the_check(tmp_path, monkeypatch, checks):
    with Workspace.open(tmp_path):
        pass
    big(monkeypatch)
    _open_and_die(tmp_path)
    checks.clear()
    with Workspace.open(tmp_path, check="defer") as ws:  # the GUI: checked in the background
        assert ws.deferred_check
    with Workspace.open(tmp_path) as ws:  # still due: the background check did not run
        assert ws.get_meta(wsmod.CHECK_DUE) is None  # the quick check ran and cleared it
    with Workspace.open(tmp_path):
        pass
    assert checks == ["none", "quick", "none"]
    # a clean close leaves no mark; a crash in the GUI's background check path is caught the same way
    _open_and_die(tmp_path)
    checks.clear()
    with Workspace.open(tmp_path, check="defer") as ws:
        assert ws.deferred_check
        assert Workspace.check_integrity(tmp_path) is None  # what the GUI runs on a thread
    with Workspace.open(tmp_path, check="defer") as ws:
        assert not ws.deferred_check
    with sqlite3.connect(tmp_path / wsmod.DB_NAME) as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'open.%'").fetchone()[0] == 0


def test_a_live_session_is_not_an_unclean_shutdown(tmp_path, monkeypatch, checks):
    with Workspace.open(tmp_path):
        pass
    big(monkeypatch)
    held = Workspace.open(tmp_path)  # this process keeps it open (the GUI while a worker opens it)
    with Workspace.open(tmp_path):
        pass
    held.close()
    assert checks[-2:] == ["none", "none"]


def _damage(folder):
    """Point an index's definition at another column: its entries no longer match the rows."""
    conn = sqlite3.connect(folder / wsmod.DB_NAME)
    conn.execute("CREATE TABLE scratch (a, b)")
    conn.execute("CREATE INDEX scratch_a ON scratch(a)")
    conn.executemany("INSERT INTO scratch VALUES (?, ?)", [(i, -i) for i in range(50)])
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX scratch_a ON scratch(b)' WHERE name = 'scratch_a'")
    conn.commit()
    conn.close()


def test_workspace_check_command(tmp_path, capsys, monkeypatch):
    from cascade_studio.cli import main

    with Workspace.open(tmp_path / "ws"):
        pass
    capsys.readouterr()
    assert main(["-w", str(tmp_path / "ws"), "workspace", "check"]) == 0
    assert "no damage found (full integrity check" in capsys.readouterr().out
    assert main(["-w", str(tmp_path / "ws"), "workspace", "check", "--quick", "--json"]) == 0
    assert '"ok": true' in capsys.readouterr().out
    assert main(["-w", str(tmp_path / "nothing"), "workspace", "check"]) == 1
    assert "No workspace in" in capsys.readouterr().err

    _damage(tmp_path / "ws")
    capsys.readouterr()
    assert main(["-w", str(tmp_path / "ws"), "workspace", "check"]) == 1
    err = capsys.readouterr().err
    assert "the full integrity check found a problem" in err
    assert "is damaged" in err and "scratch_a" in err and "Restore it from a backup" in err
    assert Workspace.last_check(tmp_path / "ws")[1].startswith("The workspace file")
    # the failed check is remembered: even a big workspace is checked again on the next open
    big(monkeypatch)
    with pytest.raises(WorkspaceError, match="damaged"):
        Workspace.open(tmp_path / "ws")
