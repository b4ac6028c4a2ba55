"""Issue 27: a collection run cancelled and resumed shows the whole run's cost (and this part's), and
after a restart the Trajectories page says "tier 1: unfinished run N, K to go" and resumes it."""

from __future__ import annotations

import datetime as dt

from cascade_studio.core.money import micro_to_usd
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until
from tests.ui.test_trajectories_page import prepared_window


def test_an_unfinished_run_is_named_after_a_restart_and_its_whole_cost_shown(qtbot, tmp_path, qloop,
                                                                              sandbox_thread):
    sandbox_thread.config.latency_scale = 0.3
    window = prepared_window(qtbot, tmp_path, sandbox_thread.base_url)
    page = window.trajectories_page
    page.run_tier.setCurrentIndex(page.run_tier.findData(1))
    page.run_limit.setValue(20)
    page.run_concurrency.setValue(2)
    page.start_button.click()
    run_until(qloop, lambda: page.runner is not None and page.runner.last is not None and page.runner.last.done >= 4,
              timeout=30)
    page.cancel_button.click()
    run_until(qloop, lambda: page.runner is None, timeout=30)
    with Workspace.open(tmp_path) as ws:
        run_id, first_part = ws.conn.execute("SELECT run_id, sum(cost_micro) FROM trajectories GROUP BY run_id").fetchone()
        done = ws.conn.execute("SELECT count(*) FROM trajectories WHERE status = 'ok'").fetchone()[0]
    assert not page.unfinished.isHidden() and f"tier 1: unfinished run {run_id}, {20 - done} to go" in \
        page.unfinished.label.text()
    window.close()

    sandbox_thread.config.latency_scale = 0  # a restart: a new window on the same workspace
    again = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(again)
    again.open_workspace(tmp_path)
    again.show()
    page = again.trajectories_page
    bar = page.unfinished
    assert not bar.isHidden() and f"tier 1: unfinished run {run_id}, {20 - done} to go" in bar.label.text()
    assert page.run_tier.currentData() == 1  # not the teacher: the tier with the unfinished run
    page.run_tier.setCurrentIndex(page.run_tier.findData(2))  # whatever the run box shows, Resume resumes it
    bar.button.click()
    assert f"Resuming run {run_id} of tier 1" in page.run_status.text()
    run_until(qloop, lambda: page.runner is None, timeout=60)
    with Workspace.open(tmp_path) as ws:
        runs, whole = ws.conn.execute("SELECT count(DISTINCT run_id), sum(cost_micro) FROM trajectories").fetchone()
    assert runs == 1 and whole > first_part
    text = page.run_status.text()
    assert "20/20 done" in text and f"${micro_to_usd(whole):.4f} in all" in text, text
    assert f"${micro_to_usd(whole - first_part):.4f} this part" in text, text
    assert bar.isHidden()


def test_a_run_another_process_is_collecting_is_named_and_not_offered_for_resume(qtbot, tmp_path):
    import os

    from cascade_studio.core.tiers import generation_id
    from cascade_studio.services.run_lock import TierRunLock
    from cascade_studio.store.tiers import TierRepository
    from cascade_studio.store.trajectories import RunRepository
    from cascade_studio.ui.unfinished_runs import UnfinishedRunBar
    from tests.ui.test_no_slip import tiers

    with Workspace.open(tmp_path) as ws:
        TierRepository(ws).replace_all(tiers())
        tier1 = TierRepository(ws).get(1)
        run = RunRepository(ws).create(1, tier1.model, ["a", "b", "c"], {}, generation_id(tier1))
        bar = UnfinishedRunBar()
        qtbot.addWidget(bar)
        assert [u.run.id for u in bar.refresh(ws)] == [run.id] and not bar.isHidden()
        assert bar.label.text() == f"⚠ tier 1: unfinished run {run.id}, 3 to go." and not bar.button.isHidden()
        with TierRunLock(ws.path, 1, run.id):  # a `collect` (or another window) is collecting tier 1 now
            assert bar.refresh(ws) == [] and bar.button.isHidden() and not bar.isHidden()
            assert f"run {run.id} is being collected by process {os.getpid()}, 3 to go" in bar.label.text()
        assert bar.refresh(ws) and not bar.button.isHidden()  # the lock was only probed, never taken
        # a run with trials counts what it will send on resume: each task's trials
        trials = RunRepository(ws).create(1, tier1.model, ["a", "b", "c"], {"trials": 2}, generation_id(tier1))
        assert [u.run.id for u in bar.refresh(ws)] == [trials.id]
        assert bar.label.text() == f"⚠ tier 1: unfinished run {trials.id}, 6 episodes to go (2 trials a task)."
