"""Issue 16 from the GUI: the Trajectories page's Start runs agent episodes (the demo's travel desk
over stdio, from the run's worker thread), the run line counts episodes, the table shows them."""

import datetime as dt

from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until


def test_start_runs_episodes(qtbot, tmp_path, qloop, sandbox_thread):
    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    window.nav.setCurrentRow(2)
    page = window.trajectories_page
    page.run_category.setCurrentIndex(page.run_category.findData("travel-flights"))
    page.start_button.click()
    assert "agent episodes" in page.run_status.text() or page.runner is not None
    run_until(qloop, lambda: page.runner is None, timeout=90)
    assert "4/4 done" in page.run_status.text(), page.run_status.text()
    page._filter_timer.stop()
    page.f_steps.setCurrentIndex(page.f_steps.findData("episodes"))
    page.apply_filter()
    page._filter_timer.stop()
    assert page.model.rowCount() == 4
    steps = [page.model.index(r, page.model.COL_STEPS).data() for r in range(4)]
    assert all(int(s) >= 2 for s in steps)
