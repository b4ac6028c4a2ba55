"""Issue 27: the trajectory inspector's counts follow the workspace (a change event even with a row
selected, the page shown again, F5, and writes from elsewhere that publish no event here), and Export
writes what the page says."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from cascade_studio.services import events
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.test_tradeoffs_page import collected


def collect(ws_dir, tier_no: int, limit: int, monkeypatch=None) -> int:
    """Collect tier `tier_no` over the first `limit` tasks on a connection of its own; with
    `monkeypatch`, silently (as another process would: no change event reaches the window)."""
    if monkeypatch is not None:
        monkeypatch.setattr(events, "publish", lambda *a, **k: None)
    with Workspace.open(ws_dir) as ws:
        tier = TierRepository(ws).get(tier_no)
        run, _ = start_or_resume(ws, tier, select_task_ids(ws, limit=limit), {})
        asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
        total = TrajectoryRepository(ws).count()
    if monkeypatch is not None:
        monkeypatch.undo()
    return total


def test_counts_follow_the_workspace_and_export_writes_what_the_page_says(qtbot, tmp_path, sandbox_thread,
                                                                          monkeypatch):
    ws_dir = tmp_path / "ws"
    collected(ws_dir, sandbox_thread.base_url, limit=6)  # 6 tasks x 3 tiers
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(ws_dir)
    window.show()
    window.nav.setCurrentRow(2)
    page = window.trajectories_page
    label = page.count_label
    qtbot.waitUntil(lambda: label.text() == "18 of 18 trajectories")

    # a row selected, then an in-process change event: the counts follow and the selection stays
    page.select_rows([0, 2])
    chosen = page.selected_ids()
    assert len(chosen) == 2
    total = collect(ws_dir, 1, 8)  # publishes its change events
    assert total == 20
    qtbot.waitUntil(lambda: label.text() == "20 of 20 trajectories", timeout=5000)
    assert page.selected_ids() == chosen

    # written elsewhere (no event): the page sees the workspace's data_version move while it is shown
    total = collect(ws_dir, 2, 8, monkeypatch)
    qtbot.waitUntil(lambda: label.text() == f"{total} of {total} trajectories", timeout=10_000)

    # elsewhere while another page is shown: right when shown again
    window.nav.setCurrentRow(1)
    total = collect(ws_dir, 3, 8, monkeypatch)
    window.nav.setCurrentRow(2)
    qtbot.waitUntil(lambda: label.text() == f"{total} of {total} trajectories", timeout=3000)

    # F5, before any poll could have seen it
    page._version_timer.stop()
    total = collect(ws_dir, 1, 10, monkeypatch)
    qtbot.keyClick(page.table, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: label.text() == f"{total} of {total} trajectories", timeout=3000)

    # Export writes the rows the page counts: a tier and a search, not every trajectory of the tier
    page.f_tier.setCurrentIndex(page.f_tier.findData(1))
    page.f_search.setText("irrelevance_1")
    page.apply_filter()
    shown = page.model.total
    assert 0 < shown < 10 and label.text().startswith(f"{shown} of ")
    target = tmp_path / "shown.jsonl"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "Trajectory JSONL (*.jsonl)"))
    page.export_dialog()
    assert len(target.read_text().splitlines()) == shown
    assert f"Exported {shown} trajectories" in page.status.text()
    csv = tmp_path / "shown.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(csv), "CSV summary (*.csv)"))
    page.export_dialog()
    assert len(csv.read_text().splitlines()) == shown + 1  # and its header
