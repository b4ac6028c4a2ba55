"""A big workspace behind this version's schema upgrades on a thread while a dialog shows it (the
window keeps painting); a failed upgrade is named and nothing is opened or lost."""

import sqlite3
import threading

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store import migrations
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui import workspace_upgrade
from cascade_studio.ui.main_window import MainWindow


def at_schema_18(folder):
    """A workspace as schema 18 left it (every later step still to run: they add indexes, columns with
    constant defaults and new tables, none of which copies a row)."""
    Workspace.open(folder).close()
    (folder / "workspace.sqlite").unlink()
    conn = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    migrations.migrate(conn, target=18)
    conn.close()


def test_a_big_workspace_upgrades_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    at_schema_18(tmp_path)
    assert Workspace.pending_upgrade(tmp_path)[0] == 18
    monkeypatch.setattr(workspace_upgrade, "IN_BACKGROUND_BYTES", 0)  # every workspace counts as big
    threads, real = [], migrations.migrate

    def spy(conn, target=None):
        threads.append(threading.current_thread())
        return real(conn, target)

    monkeypatch.setattr("cascade_studio.store.workspace.migrate", spy)
    window = MainWindow(SecretStore(), AppSettings(tmp_path / "settings.json"))
    qtbot.addWidget(window)
    assert window.open_workspace(tmp_path)
    assert threads[0] is not threading.main_thread() and threads[0].name == "workspace-upgrade"
    assert window.ws.schema_version == migrations.SCHEMA_VERSION and Workspace.pending_upgrade(tmp_path) is None
    assert not list(tmp_path.glob("*.bak.sqlite"))  # step 19 only adds indexes


def test_a_failed_upgrade_is_named_and_opens_nothing(qtbot, tmp_path, monkeypatch):
    at_schema_18(tmp_path)
    monkeypatch.setattr(workspace_upgrade, "IN_BACKGROUND_BYTES", 0)

    def broken(conn, target=None):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("cascade_studio.store.workspace.migrate", broken)
    errors = []
    monkeypatch.setattr("cascade_studio.ui.main_window.show_error", lambda title, text, parent=None: errors.append(text))
    window = MainWindow(SecretStore(), AppSettings(tmp_path / "settings.json"))
    qtbot.addWidget(window)
    assert not window.open_workspace(tmp_path)
    assert window.ws is None and errors and "full" in errors[0]
    assert Workspace.pending_upgrade(tmp_path)[0] == 18  # left as it was: it upgrades next time
