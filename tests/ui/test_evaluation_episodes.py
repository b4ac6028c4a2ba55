"""Issue 17: the Evaluation page's drill-down shows an agent task's two episodes side by side,
aligned by step, with the first divergence highlighted."""

import datetime as dt

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until


def test_episode_drill_down(qtbot, tmp_path, qloop, sandbox_thread):
    from cascade_studio.services.demo import prepare_demo

    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    window.nav.setCurrentRow(4)
    page = window.evaluation_page
    page.student_combo.setCurrentIndex(page.student_combo.findData(1))
    page.category_combo.setCurrentIndex(page.category_combo.findData("travel-flights"))
    page.run_button.click()
    run_until(qloop, lambda: page.report is not None, timeout=90)
    assert page.task_table.rowCount() >= 3
    status = page.status.text()
    assert "Agent tasks: step agreement" in status and "teacher-forced steps" in status
    # the CLI's words: each side's success with what judged it; an unknown cost is never "$None" or "$0"
    assert "Episodes on its own: Episodes, teacher: success" in status and "Episodes, student: success" in status
    assert "judged by" in status and "$None" not in status
    texts = []
    for row in range(page.task_table.rowCount()):
        page.task_table.selectRow(row)
        texts.append(page.pair_view.toPlainText())
        html = page.pair_view.toHtml()
        assert "agent episode in travel-desk" in texts[-1]
        assert "Teacher (tier 3)" in texts[-1] and "Student (tier 1)" in texts[-1]
        assert "steps · ended:" in texts[-1] and "state check" in texts[-1]
        if "first differs at step" in texts[-1]:
            assert "first divergence" in texts[-1] and "#fde7e9" in html
    assert any("search_flights" in t for t in texts)
