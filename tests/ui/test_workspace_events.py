"""Issue 19, stale views: pages follow the workspace change events the services publish, on screen
at once and off screen when next shown, instead of each page remembering to reload."""

from __future__ import annotations

import threading

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services import events
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.services.tier_service import save_tiers
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow


def test_services_publish_and_subscribers_hear(tmp_path):
    heard = []
    unsubscribe = events.subscribe(lambda kind, folder: heard.append((kind, folder)))
    try:
        with Workspace.open(tmp_path / "ws") as ws:
            save_tiers(ws, [Tier(tier=1, model="gpt-4o", provider=Provider.SANDBOX, base_url="http://127.0.0.1:9/v1")])
        assert heard == [("tiers", (tmp_path / "ws").resolve())]
    finally:
        unsubscribe()
    events.publish("tasks", tmp_path)
    assert len(heard) == 1  # unsubscribed


def test_a_tier_changed_elsewhere_reaches_every_page(qtbot, tmp_path):
    folder = tmp_path / "ws"
    with Workspace.open(folder) as ws:
        save_tiers(ws, [Tier(tier=1, model="gpt-4o-mini", provider=Provider.SANDBOX, base_url="http://127.0.0.1:9/v1"),
                        Tier(tier=2, model="gpt-4o", provider=Provider.SANDBOX, base_url="http://127.0.0.1:9/v1")])
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(folder)
    window.show()
    window.nav.setCurrentRow(2)  # Trajectories on screen
    traj = window.trajectories_page
    window.nav.setCurrentRow(3)
    finetune = window.finetune_page  # built, then left
    window.nav.setCurrentRow(2)

    def names(combo):
        return [combo.itemText(i) for i in range(combo.count())]

    assert not any("ft:gpt-4o-mini" in n for n in names(traj.run_tier))
    # "Use as tier" from another thread (a worker): the service publishes; the relay queues it to the GUI
    def use_as_tier():
        with Workspace.open(folder) as other:
            tiers = TierRepository(other).list()
            tiers[0] = tiers[0].replace(model="ft:gpt-4o-mini:org:demo:abc123")
            save_tiers(other, tiers)

    worker = threading.Thread(target=use_as_tier)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: any("ft:gpt-4o-mini" in n for n in names(traj.run_tier)), timeout=5000)
    # the Tiers and Fine-tuning pages were off screen: each follows when shown again
    assert window.tiers_page.tiers[0].model == "gpt-4o-mini" and len(window.followers.pending) == 2
    window.nav.setCurrentRow(0)
    assert window.tiers_page.tiers[0].model == "ft:gpt-4o-mini:org:demo:abc123"
    window.nav.setCurrentRow(3)
    assert not window.followers.pending
    combos = [c for c in finetune.findChildren(type(traj.run_tier)) if any("ft:gpt-4o-mini" in n for n in names(c))]
    assert combos, "the Fine-tuning page's tier choices still show the old model"


def test_new_trajectories_refresh_the_table(qtbot, tmp_path, sandbox_thread):
    from cascade_studio.cli import main

    folder = tmp_path / "ws"
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    assert main(["-w", str(folder), "tiers", "set", "1", "--model", "gpt-4o", "--base-url", sandbox_thread.base_url,
                 "--provider", "sandbox"]) == 0
    from tests.agent.test_episodes import tasks_file  # noqa: F401 - only to reuse the BFCL file below

    window.open_workspace(folder)
    window.show()
    window.nav.setCurrentRow(2)
    page = window.trajectories_page
    assert page.model.rowCount() == 0
    from pathlib import Path

    bfcl = Path(__file__).resolve().parents[2] / "resources" / "bfcl" / "BFCL_v4_multiple.json"
    assert main(["-w", str(folder), "tasks", "import", str(bfcl)]) == 0
    assert main(["-w", str(folder), "collect", "--tier", "1", "--limit", "5"]) == 0
    qtbot.waitUntil(lambda: page.model.rowCount() == 5, timeout=5000)
    assert "5 of 5 trajectories" in page.count_label.text()


def test_a_new_evaluation_list_updates_the_drill_down(qtbot, tmp_path, sandbox_thread):
    """Choosing another category highlighted its first task while the drill-down kept the previous one."""
    import asyncio

    from cascade_studio.services.collector import select_task_ids
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.services.evaluation import evaluate

    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.nav.setCurrentRow(4)
    page = window.evaluation_page
    tiers = {t.tier: t for t in TierRepository(window.ws).list()}
    for category in ("multiple", "simple_python"):
        ids = select_task_ids(window.ws, category, 3)
        report = asyncio.run(evaluate(window.ws, tiers[3], tiers[1], ids, SecretStore(), collect=True,
                                      use_embeddings=False))
        page.show_report(report)
        assert page.task_table.currentRow() == 0
        assert report.results[0].task_id in page.pair_view.toPlainText()
