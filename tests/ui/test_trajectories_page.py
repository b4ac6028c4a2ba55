"""Run a tier from the GUI, watch progress, then filter, inspect and curate with undo."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"


def prepared_window(qtbot, tmp_path, url):
    with Workspace.open(tmp_path) as ws:
        TierRepository(ws).replace_all([
            Tier(tier=1, model="gpt-4.1-nano", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("0.1"),
                 output_price=Decimal("0.4"), confidence_method=ConfidenceMethod.TOOL_NAME_PROB),
            Tier(tier=2, model="gpt-4o", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("2.5"),
                 output_price=Decimal("10"))])
        import_tasks(ws, BFCL / "BFCL_v4_multiple.json")
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    return window


def test_run_inspect_curate_undo(qtbot, tmp_path, qloop, sandbox_thread):
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    page = window.trajectories_page
    assert page.run_tier.currentText().startswith("Tier 2 (teacher)")
    page.run_limit.setValue(30)
    page.start_button.click()
    assert not page.start_button.isEnabled() and page.cancel_button.isEnabled()
    run_until(qloop, lambda: page.runner is None, timeout=30)
    assert "30/30 done" in page.run_status.text()
    assert page.model.rowCount() == 30 and "30 of 30" in page.count_label.text()

    # detail pane with tool calls and the heat map
    page.table.selectRow(0)
    text = page.detail.toHtml()
    assert "Tool calls" in text and "Token heat map" in text and "background-color" in text

    # filters
    page.f_conf_min.setValue(0.99)
    page.apply_filter()
    assert page.model.rowCount() < 30
    page.f_conf_min.setValue(0)
    page.f_search.setText("multiple_1")
    page.apply_filter()
    assert all("multiple_1" in page.model.index(r, 0).data() for r in range(page.model.rowCount()))
    page.f_search.clear()
    page.apply_filter()

    # curation in bulk, tagging, undo and redo
    page.select_rows([0, 1, 2])
    page.curate("accepted")
    assert [page.model.index(r, page.model.COL_CURATION).data() for r in range(3)] == ["accepted"] * 3
    page.select_rows([1])
    page.curate("rejected")
    page.select_rows([0, 1])
    page.tag("good-args")
    assert page.model.index(0, page.model.COL_TAGS).data() == "good-args"
    page.undo_stack.undo()  # tag
    page.undo_stack.undo()  # reject
    assert page.model.index(1, page.model.COL_CURATION).data() == "accepted"
    assert page.model.index(0, page.model.COL_TAGS).data() == ""
    page.undo_stack.redo()
    assert page.model.index(1, page.model.COL_CURATION).data() == "rejected"
    page.f_curation.setCurrentIndex(page.f_curation.findData("accepted"))
    page.apply_filter()
    assert page.model.rowCount() == 2

    # sorting by cost, descending
    page.f_curation.setCurrentIndex(0)
    page.apply_filter()
    page.model.sort(page.model.COL_COST, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(lambda: not page.model.sorting)  # sorted on a worker thread: the window stays live
    costs = [float(page.model.index(r, page.model.COL_COST).data()) for r in range(page.model.rowCount())]
    assert costs == sorted(costs, reverse=True)


def test_cancel_then_resume_from_gui(qtbot, tmp_path, qloop, sandbox_thread):
    sandbox_thread.config.latency_scale = 0.3
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    page = window.trajectories_page
    page.run_concurrency.setValue(2)
    page.start_button.click()
    run_until(qloop, lambda: page.runner is not None and page.runner.last is not None and page.runner.last.done >= 4, timeout=30)
    page.pause_button.click()
    assert page.pause_button.text() == "Resume"
    page.cancel_button.click()
    run_until(qloop, lambda: page.runner is None, timeout=30)
    assert "Cancelled" in page.run_status.text() or "cancelled" in page.run_status.text()
    sandbox_thread.config.latency_scale = 0
    page.start_button.click()
    assert "Resuming run" in page.run_status.text()
    run_until(qloop, lambda: page.runner is None, timeout=60)
    assert "60/60 done" in page.run_status.text()
    with Workspace.open(tmp_path) as ws:
        assert ws.conn.execute("SELECT count(*), count(DISTINCT task_id) FROM trajectories").fetchone() == (60, 60)


def test_run_without_tasks_explains(qtbot, tmp_path, qloop):
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    page = window.trajectories_page
    page.start_button.click()
    assert "Define a tier" in page.run_status.text()


def test_quit_during_a_run_stops_it_cleanly(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    sandbox_thread.config.latency_scale = 0.3
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    page = window.trajectories_page
    page.start_button.click()
    run_until(qloop, lambda: page.runner is not None and page.runner.last is not None and page.runner.last.done >= 2, timeout=30)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.close()
    run_until(qloop, lambda: not window.isVisible(), timeout=30)
    assert window.ws is None
    with Workspace.open(tmp_path) as ws:
        assert ws.conn.execute("SELECT status FROM runs").fetchone()[0] == "cancelled"
        assert ws.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_large_result_sets_keep_ids_in_view_order(qtbot, tmp_path):
    """The model keeps the matching ids in the view's order (sorted in numpy for numbers, by SQLite for
    text); rows are read by id a block at a time and stay consistent after curation."""
    with Workspace.open(tmp_path) as ws:
        ws.conn.execute("INSERT INTO runs (id, tier, model, status, task_ids, params, created_at, updated_at) "
                        "VALUES (1, 1, 'm', 'done', '[]', '{}', '', '')")
        ws.conn.executemany(
            "INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, cost_micro, "
            "conf_mean) VALUES (1, ?, 1, 'm', 'ok', ?, ?, ?, ?)",
            [(f"t{i:04d}", "a" if i % 2 else "b", f"tool{i % 7}", i, (i % 100) / 100) for i in range(1000)])
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    page = window.trajectories_page
    assert len(page.model.ids) == page.model.rowCount() == 1000
    assert page.model.index(999, 0).data() == "t0999" and page.model.index(300, 0).data() == "t0300"
    assert page.f_tool.count() == 8  # "Any tool" + 7 distinct tools, found by index skip-scan
    page.f_category.setCurrentIndex(page.f_category.findData("a"))
    page.apply_filter()
    assert page.model.rowCount() == 500
    page.model.sort(page.model.COL_COST, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.SortOrder.DescendingOrder)
    assert page.model.sorting and page.count_label.text() == "Sorting 500 trajectories…"
    qtbot.waitUntil(lambda: not page.model.sorting)
    assert page.count_label.text().startswith("500 of ")
    # two sorts asked at once (a double click on headers): the newer one is what shows
    Qt = __import__("PySide6.QtCore", fromlist=["Qt"]).Qt
    page.model.sort(page.model.COL_TASK, Qt.SortOrder.AscendingOrder)
    page.model.sort(page.model.COL_COST, Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(lambda: not page.model.sorting)
    qtbot.wait(50)  # the older read's answer, if it came later, must change nothing
    assert page.model.filter.sort == "cost_micro"
    assert page.model.index(0, 0).data() == "t0999" and page.model.index(499, 0).data() == "t0001"
    page.select_rows([0, 1])
    page.curate("accepted")
    assert page.model.index(1, page.model.COL_CURATION).data() == "accepted"
    # a sort whose read fails (the disk, a locked file) says so; the rows stay as they were
    import cascade_studio.ui.trajectory_model as tm

    def broken(*a, **k):
        raise OSError("disk I/O error")

    real = tm.read_view
    tm.read_view = broken
    try:
        page.model.sort(page.model.COL_TASK, Qt.SortOrder.AscendingOrder)
        qtbot.waitUntil(lambda: not page.model.sorting)
    finally:
        tm.read_view = real
    assert page.count_label.text() == "Cannot sort: disk I/O error"
    assert page.model.index(0, 0).data() == "t0999"


def test_import_and_export_dialogs(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    window = prepared_window(qtbot, tmp_path / "a", sandbox_thread.base_url)
    page = window.trajectories_page
    page.run_limit.setValue(5)
    page.start_button.click()
    run_until(qloop, lambda: page.runner is None, timeout=30)
    target = tmp_path / "out.jsonl"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "Trajectory JSONL (*.jsonl)"))
    page.export_dialog()
    assert len(target.read_text().splitlines()) == 5 and "Exported 5" in page.run_status.text()
    other = prepared_window(qtbot, tmp_path / "b", sandbox_thread.base_url)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(target), ""))
    other.trajectories_page.import_dialog()
    assert other.trajectories_page.model.rowCount() == 5
    assert "Imported 5" in other.trajectories_page.run_status.text()


def test_start_skips_what_is_collected_and_again_asks(qtbot, tmp_path, qloop, sandbox_thread):
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    page = window.trajectories_page
    page.run_limit.setValue(8)
    page.start_button.click()
    assert "8 requests, about $" in page.status.text()  # the plan and its estimated cost, before paying
    run_until(qloop, lambda: page.runner is None, timeout=30)
    sent = sandbox_thread.sandbox.request_count
    page.start_button.click()  # the same tasks again: nothing to send, nothing started
    assert page.runner is None and "already have answers" in page.status.text()
    assert sandbox_thread.sandbox.request_count == sent
    page.run_again.setChecked(True)
    asked = []
    page.confirm_again = lambda plan: asked.append(plan.requests) or False  # declined
    page.start_button.click()
    assert asked == [8] and page.runner is None and sandbox_thread.sandbox.request_count == sent
    page.confirm_again = lambda plan: True
    page.start_button.click()
    run_until(qloop, lambda: page.runner is None, timeout=30)
    assert sandbox_thread.sandbox.request_count == sent + 8


def test_the_inspector_shows_current_models_by_default_and_history_on_demand(qtbot, tmp_path, qloop, sandbox_thread):
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    page = window.trajectories_page
    page.run_limit.setValue(5)
    page.start_button.click()
    run_until(qloop, lambda: page.runner is None, timeout=30)
    assert page.model.rowCount() == 5
    with Workspace.open(tmp_path) as ws:  # the teacher's model changes: its answers become history
        repo = TierRepository(ws)
        repo.save(repo.get(2).replace(model="gpt-4.1"))
    page.apply_filter()
    assert page.f_generation.currentData() == "current" and page.model.rowCount() == 0
    page.f_generation.setCurrentIndex(page.f_generation.findData(None))
    page.apply_filter()
    assert page.model.rowCount() == 5


def test_opening_reads_the_view_once_with_the_current_filter(qtbot, tmp_path, sandbox_thread, monkeypatch):
    """At a million rows each read of the view costs ~0.2 s: opening the page reads it once, with the
    filter its choices set (current models), not once unfiltered and again when the debounce fires."""
    import cascade_studio.ui.trajectory_model as tm

    reads = []
    real = tm.read_view
    monkeypatch.setattr(tm, "read_view", lambda ws, flt, *a: (reads.append(flt), real(ws, flt, *a))[1])
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    window.nav.setCurrentRow(2)
    qtbot.wait(400)  # past the filter's debounce
    assert len(reads) == 1 and reads[0].generations is not None  # "Current models" is the default
