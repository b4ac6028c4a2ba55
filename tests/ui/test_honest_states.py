"""Issue 19, honest states: failures show in the progress bar and line, a paused run has no ETA,
and no button passes clicked(bool)'s False as an optional argument."""

import ast
import datetime as dt
from pathlib import Path

from cascade_studio.services.collector import RunProgress
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from tests.ui.test_tradeoffs_page import collected

UI = Path(__file__).resolve().parents[2] / "cascade_studio" / "ui"


def _window(qtbot, path=None):
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    if path is not None:
        window.open_workspace(path)
    window.show()
    return window


def test_a_run_where_every_task_failed_is_not_a_full_healthy_bar(qtbot, tmp_path):
    page = _window(qtbot, tmp_path).trajectories_page
    page._progress(RunProgress(run_id=1, total=3, failed=3, status="failed", message="3 tasks failed"))
    bar = page.progress_bar
    assert bar.text() == "0 ok, 3 failed / 3"
    assert "#d13438" in bar.styleSheet()  # red, not the healthy blue
    assert "3 failed" in page.run_status.text()
    page._progress(RunProgress(run_id=1, total=3, done=2, failed=1, status="failed"))
    assert bar.text() == "2 ok, 1 failed / 3" and "#e8a33d" in bar.styleSheet()
    page._progress(RunProgress(run_id=1, total=3, done=3, status="done"))
    assert bar.text() == "3 / 3" and bar.styleSheet() == ""


def test_a_paused_run_shows_no_eta(qtbot, tmp_path):
    page = _window(qtbot, tmp_path).trajectories_page
    running = RunProgress(run_id=1, total=10, done=5, new_done=5, elapsed_s=5.0, status="running")
    page._progress(running)
    assert "ETA" in page.run_status.text()
    page._progress(RunProgress(run_id=1, total=10, done=5, new_done=5, elapsed_s=50.0, status="paused"))
    assert "ETA" not in page.run_status.text() and "paused" in page.run_status.text()


def test_export_data_as_csv_button_writes_the_file(qtbot, tmp_path, sandbox_thread, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QPushButton

    collected(tmp_path / "ws", sandbox_thread.base_url, limit=10)
    window = _window(qtbot, tmp_path / "ws")
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    assert page.wait_loaded()  # outcomes load on a worker thread
    target = tmp_path / "sweep.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV (*.csv)"))
    button = page.findChild(QPushButton, "exportCsv")
    button.click()
    assert target.read_text().startswith("threshold_1,")


def _methods_with_optional_args() -> dict[str, set[str]]:
    """Per module: methods whose parameters after self have defaults (clicked(bool) would fill them)."""
    out: dict[str, set[str]] = {}
    for path in UI.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.args.args[:1] and node.args.args[0].arg == "self":
                if len(node.args.args) > 1 and node.args.defaults:
                    names.add(node.name)
        out[path.name] = names
    return out


def test_no_signal_with_an_argument_is_connected_to_a_method_with_optional_arguments():
    optional = _methods_with_optional_args()
    every = set().union(*optional.values())
    bad = []
    for path in UI.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            target = None
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect"
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in ("clicked", "triggered", "toggled") and node.args):
                target = node.args[0]
            elif isinstance(node, ast.keyword) and node.arg in ("triggered", "clicked", "toggled"):
                target = node.value
            elif isinstance(node, ast.Tuple):  # (text, slot) tables that are connected in a loop
                target = next((e for e in node.elts if isinstance(e, ast.Attribute)
                               and isinstance(e.value, ast.Name) and e.value.id == "self"
                               and e.attr in every), None)
            if (isinstance(target, ast.Attribute) and target.attr in every
                    and isinstance(target.value, ast.Name) and target.value.id == "self"):
                bad.append(f"{path.name}:{node.lineno if hasattr(node, 'lineno') else target.lineno} {target.attr}")
    assert not bad, "connect these through a lambda (clicked(bool) passes False): " + ", ".join(bad)
