"""Issue 19: the Quality column says what it measures (accuracy or agreement with the teacher), every
saved scenario carries its basis, and the page warns when the basis changes."""

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.services.tradeoffs import list_scenarios
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.test_tradeoffs_page import collected


def test_quality_basis_in_header_scenarios_and_a_warning_when_it_changes(qtbot, tmp_path, sandbox_thread):
    collected(tmp_path / "ws", sandbox_thread.base_url, limit=10)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.show()
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    assert page.wait_loaded()  # outcomes load on a worker thread
    assert page.outcomes.quality_basis == "accuracy"  # the demo's tasks all have expected answers
    assert page.tier_table.horizontalHeaderItem(6).text() == "Quality (accuracy)"
    page.save_scenario("on accuracy")
    assert [s["quality_basis"] for s in list_scenarios(window.ws)] == ["accuracy"]
    quality_row = page.scenario_table.rowCount() - 1
    assert page.scenario_table.item(quality_row, 0).text().endswith("(accuracy)")

    # a task without an expected answer: quality becomes agreement with the teacher
    window.ws.conn.execute("UPDATE tasks SET expected = NULL WHERE id = ?", (page.outcomes.task_ids[0],))
    page.refresh()
    assert page.wait_loaded()
    assert page.outcomes.quality_basis == "agreement"
    assert page.tier_table.horizontalHeaderItem(6).text() == "Quality (agreement with teacher)"
    status = page.status.text()
    assert "changed from accuracy to agreement with teacher" in status
    assert "on accuracy" in status and "another basis" in status
    assert "not comparable" in page.scenario_table.item(quality_row, 0).toolTip()
    page.save_scenario("on agreement")
    assert page.scenario_table.item(quality_row, 1).text().endswith("(agreement with teacher)")
    with Workspace.open(tmp_path / "ws") as ws:
        assert [s["quality_basis"] for s in list_scenarios(ws)] == ["accuracy", "agreement"]
