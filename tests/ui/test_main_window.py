import datetime as dt

from PySide6.QtWidgets import QMessageBox

from cascade_studio.services.paths import log_file
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.about import AboutDialog, about_html
from cascade_studio.ui.app import create_main_window
from cascade_studio.ui.main_window import MainWindow


def test_status_bar_title_and_recent(qtbot, tmp_path):
    settings = AppSettings()
    window = MainWindow(SecretStore(), settings, today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    assert window.open_workspace(tmp_path / "one")
    assert window.open_workspace(tmp_path / "two")
    assert str(tmp_path / "two") in window.workspace_label.text()
    assert window.windowTitle().startswith("two")
    assert settings.recent_workspaces[:2] == [str(tmp_path / "two"), str(tmp_path / "one")]
    assert AppSettings().recent_workspaces[0] == str(tmp_path / "two")  # persisted
    window._fill_recent_menu()
    assert [a.text() for a in window.recent_menu.actions()][:2] == [str(tmp_path / "two"), str(tmp_path / "one")]
    assert [window.nav.item(i).text() for i in range(window.nav.count())] == ["Tiers", "Tasks", "Trajectories", "Fine-tuning", "Evaluation", "Trade-offs",
                                                                       "Production"]


def test_damaged_workspace_shows_message_and_keeps_current(qtbot, tmp_path):
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    assert window.open_workspace(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "workspace.sqlite").write_bytes(b"garbage" * 1000)
    assert not window.open_workspace(bad)
    box = window.findChild(QMessageBox, "errorDialog")
    assert box is not None and "damaged" in box.text() and "New Workspace" in box.text()
    assert window.ws is not None and window.ws.path.name == "good"


def test_about_shows_version_log_and_attributions(qtbot):
    html = about_html("Keys are stored in the OS keyring.")
    assert str(log_file()).replace("&", "&amp;") in html
    for needle in ("LGPL", "LiteLLM", "Berkeley Function Calling Leaderboard", "Apache", "0.1.0"):
        assert needle in html
    dialog = AboutDialog("msg")
    qtbot.addWidget(dialog)
    assert "Cascade Studio" in dialog.browser.toPlainText()


def test_startup_opens_most_recent_or_default(qtbot, tmp_path):
    settings = AppSettings()
    settings.add_recent(tmp_path / "w")
    (tmp_path / "w").mkdir()
    from cascade_studio.store.workspace import Workspace

    Workspace.open(tmp_path / "w").close()
    window = create_main_window(None, SecretStore(), settings)
    qtbot.addWidget(window)
    assert window.ws.path == (tmp_path / "w").resolve()


def test_uncaught_exception_goes_to_dialog_and_log(qtbot):
    import sys

    from PySide6.QtWidgets import QApplication

    from cascade_studio.services.logging_setup import setup_logging
    from cascade_studio.ui.errors import install_exception_hooks, report_exception

    path = setup_logging()
    install_exception_hooks()
    assert sys.excepthook is report_exception
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError:
        report_exception(*sys.exc_info())
    boxes = [w for w in QApplication.topLevelWidgets() if w.objectName() == "crashDialog"]
    assert boxes and "boom in a slot" in boxes[-1].text() and str(path) in boxes[-1].text()
    for handler in __import__("logging").getLogger().handlers:
        handler.flush()
    text = path.read_text()
    assert "Traceback" in text and "boom in a slot" in text
    for b in boxes:
        b.close()
    sys.excepthook = sys.__excepthook__
