"""Issue 29 from the GUI: the Trajectories page's Trials box starts the run as `collect --trials N` does
(the same plan and service call): its sentence, progress bar and run line count tasks x trials, and the
stored episodes are told apart by trial."""

import datetime as dt

from cascade_studio.core.tiers import generation_keys
from cascade_studio.services.collector import select_task_ids
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.run_plan import plan_run
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until


def test_trials_box_runs_each_task_n_times(qtbot, tmp_path, qloop, sandbox_thread):
    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    window.nav.setCurrentRow(2)
    page = window.trajectories_page
    assert page.run_trials.value() == 1  # one episode per task unless asked
    page.run_category.setCurrentIndex(page.run_category.findData("travel-flights"))
    page.run_limit.setValue(1)
    # the Batch API takes one answer per task: refused, as the CLI refuses it
    page.run_trials.setValue(2)
    page.run_batch.setChecked(True)
    page.start_button.click()
    assert page.runner is None and "Batch API" in page.run_status.text()
    page.run_batch.setChecked(False)
    tier = page._selected_tier()
    task_ids = select_task_ids(page.ws, "travel-flights", 1)
    expected = plan_run(page.ws, tier, task_ids, trials=2)  # what `collect --trials 2 --dry-run` says
    assert expected.episodes == 2
    page.start_button.click()
    assert page.runner is not None
    assert expected.sentence() in page.run_status.text(), page.run_status.text()
    assert page.progress_bar.maximum() == 2
    assert not page.run_trials.isEnabled()  # fixed while the run goes
    run_until(qloop, lambda: page.runner is None, timeout=90)
    assert "2/2 done" in page.run_status.text(), page.run_status.text()
    assert page.run_trials.isEnabled()
    units = TrajectoryRepository(page.ws).ok_units(tier.tier, generation_keys(tier), task_ids)
    assert units == {(task_ids[0], 0), (task_ids[0], 1)}
