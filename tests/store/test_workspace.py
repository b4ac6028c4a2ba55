import sqlite3
from decimal import Decimal

import pytest

from cascade_studio.core.tiers import Tier
from cascade_studio.store import migrations
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace, WorkspaceError


def tier(n: int, model: str = "gpt-4o-mini") -> Tier:
    return Tier(tier=n, model=model, input_price=Decimal("0.15"), output_price=Decimal("0.6"))


def test_new_workspace_is_wal_with_foreign_keys_and_current_schema(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ws.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert ws.schema_version == migrations.SCHEMA_VERSION
        assert ws.get_meta("created_at")
    assert (tmp_path / "ws" / "workspace.sqlite").exists()


def test_tiers_survive_reopen(tmp_path):
    with Workspace.open(tmp_path) as ws:
        TierRepository(ws).replace_all([tier(1), tier(2, "gpt-4o")])
    with Workspace.open(tmp_path) as ws:
        tiers = TierRepository(ws).list()
    assert [t.model for t in tiers] == ["gpt-4o-mini", "gpt-4o"]
    assert tiers[0].output_price == Decimal("0.6")


def test_invalid_tier_set_is_not_saved(tmp_path):
    with Workspace.open(tmp_path) as ws:
        repo = TierRepository(ws)
        repo.replace_all([tier(1)])
        with pytest.raises(ValueError):
            repo.replace_all([tier(1), tier(3)])
        assert [t.tier for t in repo.list()] == [1]


def test_forward_migration_applies_and_keeps_a_backup(tmp_path, monkeypatch):
    with Workspace.open(tmp_path) as ws:
        TierRepository(ws).replace_all([tier(1)])
    step = "CREATE TABLE extra (id INTEGER PRIMARY KEY, note TEXT);"
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", len(migrations.MIGRATIONS))
    import cascade_studio.store.workspace as wsmod

    monkeypatch.setattr(wsmod, "SCHEMA_VERSION", migrations.SCHEMA_VERSION)
    with Workspace.open(tmp_path) as ws:
        assert ws.schema_version == migrations.SCHEMA_VERSION
        ws.conn.execute("INSERT INTO extra(note) VALUES ('ok')")
        assert TierRepository(ws).list()[0].model == "gpt-4o-mini"
    backups = list(tmp_path.glob("*.bak.sqlite"))
    assert len(backups) == 1


def test_an_index_only_upgrade_makes_no_backup(tmp_path, monkeypatch):
    """Upgrading through steps that only add an index (19: the inspector's covering index) copies
    nothing: on a 10 GB workspace the copy would cost minutes and 10 GB of disk."""
    import cascade_studio.store.workspace as wsmod

    Workspace.open(tmp_path).close()
    # the schema as it was when 19 was the last step (later steps may change data)
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:19])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 19)
    monkeypatch.setattr(wsmod, "SCHEMA_VERSION", 19)
    conn = sqlite3.connect(tmp_path / "workspace.sqlite", isolation_level=None)
    conn.execute("DROP INDEX trajectories_inspect")
    conn.execute("ALTER TABLE tiers DROP COLUMN key_origin_pending")  # a later step that copies nothing either
    conn.execute("PRAGMA user_version = 18")
    conn.close()
    assert not migrations.needs_backup(18) and migrations.needs_backup(17)
    with Workspace.open(tmp_path) as ws:
        assert ws.schema_version == migrations.SCHEMA_VERSION
        assert ws.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'trajectories_inspect'").fetchone()[0]
    assert not list(tmp_path.glob("*.bak.sqlite"))


def test_failed_migration_rolls_back(tmp_path, monkeypatch):
    Workspace.open(tmp_path).close()
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, "CREATE TABLE x (a); SELEC broken;"])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", len(migrations.MIGRATIONS))
    import cascade_studio.store.workspace as wsmod

    monkeypatch.setattr(wsmod, "SCHEMA_VERSION", migrations.SCHEMA_VERSION)
    with pytest.raises(WorkspaceError):
        Workspace.open(tmp_path)
    conn = sqlite3.connect(tmp_path / "workspace.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION - 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='x'").fetchone()[0] == 0


def test_not_a_database_gives_clear_message(tmp_path):
    (tmp_path / "workspace.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path)
    text = str(err.value)
    assert "damaged" in text and "New Workspace" in text
    assert (tmp_path / "workspace.sqlite").read_bytes().startswith(b"this is not sqlite")  # untouched


def test_corrupted_pages_are_detected(tmp_path):
    with Workspace.open(tmp_path) as ws:
        ws.conn.execute("CREATE TABLE filler (x TEXT)")
        ws.conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,) for _ in range(400)])
        ws.conn.execute("CREATE INDEX filler_x ON filler(x)")
        ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = tmp_path / "workspace.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    for offset in range(page * 3, min(len(data), page * 40), page):
        data[offset + 100: offset + 400] = b"\xff" * 300
    db.write_bytes(bytes(data))
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path)
    assert "damaged" in str(err.value)


def test_newer_schema_is_refused_without_changes(tmp_path):
    Workspace.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "workspace.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path)
    assert "newer Cascade Studio" in str(err.value)


def test_open_without_create(tmp_path):
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path / "nothing", create=False)
    assert "New Workspace" in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError):
        Workspace.open(tmp_path / "file")


def test_large_workspace_defers_full_check(tmp_path, monkeypatch):
    import cascade_studio.store.workspace as wsmod

    with Workspace.open(tmp_path) as ws:
        TierRepository(ws).replace_all([tier(1)])
    monkeypatch.setattr(wsmod, "FULL_CHECK_LIMIT", 1)  # pretend the file is big
    with Workspace.open(tmp_path, check="defer") as ws:
        assert not ws.deferred_check  # checked on creation: not due for a day
        ws.set_meta(wsmod.CHECKED_AT, "2000-01-01T00:00:00+00:00")
    with Workspace.open(tmp_path, check="defer") as ws:
        assert ws.deferred_check
    with Workspace.open(tmp_path, check="auto") as ws:
        assert not ws.deferred_check  # quick_check ran
    assert Workspace.check_integrity(tmp_path) is None
    (tmp_path / "workspace.sqlite").write_bytes(b"x" * 5000)
    assert "damaged" in Workspace.check_integrity(tmp_path)


def test_workspace_and_log_files_are_owner_only(tmp_path):
    import logging
    import stat

    from cascade_studio.services.logging_setup import setup_logging

    with Workspace.open(tmp_path / "ws") as ws:
        ws.conn.execute("CREATE TABLE IF NOT EXISTS t(x)")
    for path in (tmp_path / "ws").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE((tmp_path / "ws").stat().st_mode) & 0o077 == 0
    log = setup_logging()
    logging.getLogger("t").warning("hello")
    assert stat.S_IMODE(log.stat().st_mode) & 0o077 == 0
    # a workspace made by an older version is tightened when opened
    db = tmp_path / "ws" / "workspace.sqlite"
    db.chmod(0o644)
    Workspace.open(tmp_path / "ws").close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
