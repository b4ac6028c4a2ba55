"""Issue 27: the Fine-tuning page's controls act only on a selected job, a dataset built before can be
chosen after a restart, the event log opens at its end, the page follows tier changes made elsewhere
(the CLI), and a comparison made before a switch does not outlive it. Also: List tools works under
the GUI's loop policy, exports say where they went, and the page's panels do not import the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cascade_studio.core.finetune import JobEvent, JobState
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.finetune_page import FineTunePage
from tests.ui.test_no_slip import FT, tiers, workspace_with_job


@pytest.fixture
def page_on(qtbot):
    """page_on(ws): a Fine-tuning page on `ws`, shown at 1024x700; at the end the page lets go of the
    workspace, then the workspace is closed (a poll due must not find it closed)."""
    pages: list[FineTunePage] = []

    def make(ws, size=(1024, 700)) -> FineTunePage:
        page = FineTunePage(SecretStore())
        qtbot.addWidget(page)
        page.resize(*size)
        page.set_workspace(ws)
        page.show()
        qtbot.waitExposed(page)
        pages.append(page)
        return page

    yield make
    for page in pages:
        ws = page.ws
        page.set_workspace(None)
        if ws is not None:
            ws.close()


def test_job_controls_are_disabled_with_no_job_selected(qtbot, tmp_path, page_on):
    ws = Workspace.open(tmp_path / "ws")
    TierRepository(ws).replace_all(tiers())
    page = page_on(ws)
    panel = page.jobs_panel
    assert page.jobs.rowCount() == 0
    for button in (panel.cancel_button, panel.pause_button, panel.resume_button, panel.use_button):
        assert not button.isEnabled(), button.text()
    assert "No jobs" in page.job_status.text()
    JobStore(ws).save(JobState("ftjob-1", "succeeded", "gpt-4o-mini", "file-1", fine_tuned_model=FT),
                      backend="openai", tier=2)
    panel.refresh_jobs()
    assert panel.use_button.isEnabled() and not panel.cancel_button.isEnabled()
    page.jobs.clearSelection()
    page.jobs.setCurrentCell(-1, -1)
    assert not panel.use_button.isEnabled() and "Select a job" in page.job_status.text()


def test_a_dataset_built_before_can_be_chosen_after_a_restart(qtbot, tmp_path, page_on):
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                       {"role": "assistant", "content": "a"}]}) for i in range(12)))
    ws = Workspace.open(tmp_path / "ws")
    TierRepository(ws).replace_all(tiers())
    dataset_id = DatasetRepository(ws).add(train, None, "openai", {}, 12, 0, [], [])
    page = page_on(ws)  # a fresh page: nothing chosen yet
    assert page.dataset_path is None
    combo = page.dataset.recorded
    assert combo.isEnabled() and combo.findData(dataset_id) > 0
    assert "train.jsonl" in combo.itemText(combo.findData(dataset_id))
    combo.setCurrentIndex(combo.findData(dataset_id))
    combo.activated.emit(combo.currentIndex())
    assert page.dataset_path == train.resolve() and page.dataset_id == dataset_id
    assert "12 examples" in page.ds_report.toPlainText() and page.start_button.isEnabled()
    assert f"Dataset {dataset_id} chosen" in page.status.text()


def test_the_event_log_opens_at_its_end(qtbot, tmp_path):
    ws = workspace_with_job(tmp_path / "ws")
    JobStore(ws).add_events("ftjob-1", [JobEvent(f"ev-{i}", 1_700_000_000 + i, "info", "message",
                                                 f"Step {i}/300: training loss={1 / (i + 1):.4f}")
                                        for i in range(300)])
    page = FineTunePage(SecretStore())  # as the window builds it: filled while not on screen yet
    qtbot.addWidget(page)
    page.resize(1024, 700)
    page.set_workspace(ws)
    assert page.jobs_panel.selected_job_id() == "ftjob-1"
    page.show()
    qtbot.waitExposed(page)
    bar = page.events.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=3000)
    qtbot.wait(100)  # the document lays itself out in steps: the range grows after the first paint
    assert bar.value() == bar.maximum() > 0
    page.jobs_panel.refresh_jobs()  # a poll refills it: still at the end
    qtbot.wait(50)
    assert bar.value() == bar.maximum()
    bar.triggerAction(bar.SliderAction.SliderPageStepSub)  # the user scrolls up to read: it stays there
    held = bar.value()
    page.jobs_panel.refresh_jobs()
    qtbot.wait(50)
    assert bar.value() == held < bar.maximum()
    page.set_workspace(None)
    ws.close()


def test_the_page_follows_a_tier_changed_by_the_cli(qtbot, tmp_path, page_on):
    ws = workspace_with_job(tmp_path / "ws")
    TierRepository(ws).save(TierRepository(ws).get(2).replace(model=FT))  # "Tier 2 — ft:..."
    page = page_on(ws)
    combo = page.use_tier
    assert FT in combo.itemText(combo.findData(2))
    with Workspace.open(tmp_path / "ws") as other:  # another process: no change event reaches the page
        TierRepository(other).save(TierRepository(other).get(2).replace(model="gpt-4o"))
    page.hide()
    page.show()  # shown again (or the next poll, every 3 s): the page looks
    assert combo.itemText(combo.findData(2)) == "Tier 2 — gpt-4o"
    assert page.dataset.ds_tier.itemText(page.dataset.ds_tier.findData(2)) == "Tier 2 — gpt-4o"
    with Workspace.open(tmp_path / "ws") as other:
        TierRepository(other).save(TierRepository(other).get(1).replace(model="gpt-4.1-mini"))
    page.jobs_panel.poll_timer.timeout.emit()
    assert combo.itemText(combo.findData(1)) == "Tier 1 — gpt-4.1-mini"


def test_a_comparison_is_hidden_once_the_tiers_it_named_change(qtbot, tmp_path, page_on, monkeypatch):
    from cascade_studio.ui import confirm

    ws = workspace_with_job(tmp_path / "ws")
    page = page_on(ws)
    panel = page.jobs_panel
    panel.refresh_jobs(select="ftjob-1")
    panel.comparison.setText("…; now in tier 1: gpt-4.1-nano agreement 70%.")  # as after an evaluation
    panel._comparison_job, panel._comparison_tiers = "ftjob-1", [t.to_json() for t in page.tiers()]
    panel.show_job()
    assert panel.comparison.isVisible()
    monkeypatch.setattr(confirm, "ask_choice", lambda *a: "switch")
    page.use_tier.setCurrentIndex(page.use_tier.findData(1))
    page.use_button.click()
    assert TierRepository(ws).get(1).model == FT
    assert not panel.comparison.isVisible() and "gpt-4.1-nano" not in panel.comparison.text()
    panel.show_job()
    assert not panel.comparison.isVisible()


TOOLS = Path(__file__).resolve().parents[1] / "agent" / "desk_tools.py"


def test_list_tools_works_under_the_guis_event_loop_policy(tmp_path, qtbot):
    """The app runs under qasync.run(), which (Python 3.11) installs qasync's loop policy for the whole
    process: asyncio.run() on a pool thread then made a Qt event loop there, which stopped at once
    ("Event loop stopped before Future completed")."""
    import asyncio

    import qasync

    from cascade_studio.services.agent.environments import EnvironmentSpec
    from cascade_studio.ui.tasks_page import TasksPage

    if not hasattr(qasync, "DefaultQEventLoopPolicy"):
        pytest.skip("qasync on Python 3.12+ uses a loop factory, not a global policy")
    shutil.copy(TOOLS, tmp_path / "desk_tools.py")
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(qasync.DefaultQEventLoopPolicy())
    try:
        ws = Workspace.open(tmp_path / "ws")
        page = TasksPage(SecretStore())
        qtbot.addWidget(page)
        page.set_workspace(ws)
        panel = page.environments
        panel.add(EnvironmentSpec("desk", "python", module=str(tmp_path / "desk_tools.py")), {})
        qtbot.waitUntil(lambda: panel.status.text().startswith(("✔", "✖")), timeout=30000)
        assert panel.status.text().startswith("✔"), panel.status.text()
        assert panel.tool_combo.count() == 5
        page.set_workspace(None)
        ws.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_plot_and_csv_exports_say_where_they_went(qtbot, tmp_path):
    import pyqtgraph as pg

    from cascade_studio.ui.page import Page
    from cascade_studio.ui.plot_export import export_csv_dialog, export_plot_dialog

    page = Page("status")
    qtbot.addWidget(page)
    plot = pg.PlotWidget(parent=page)
    plot.plot([0, 1], [1, 0])
    page.resize(400, 300)
    page.show()
    png = tmp_path / "plot.png"
    assert export_plot_dialog(page, plot, "png", str(png)) == png and png.exists()
    assert page.status.text() == f"The plot (PNG) was saved to {png}."

    class Sweep:
        grid = np.array([0.5, 0.9])
        cost = np.array([1.0, 2.0])
        quality = np.array([0.8, 0.9])
        latency = np.array([100.0, 200.0])
        escalation = np.array([0.1, 0.4])

    csv_path = tmp_path / "sweep.csv"
    assert export_csv_dialog(page, Sweep(), str(csv_path)) == csv_path
    assert page.status.text() == f"The sweep's data (CSV) was saved to {csv_path}."


def test_the_finetune_panels_do_not_import_their_page():
    import grimp

    graph = grimp.build_graph("cascade_studio", cache_dir=None)
    for panel in ("finetune_dataset", "finetune_jobs", "finetune_start", "finetune_switch", "finetune_host"):
        chain = graph.find_shortest_chain(importer=f"cascade_studio.ui.{panel}", imported="cascade_studio.ui.finetune_page")
        assert chain is None, chain
