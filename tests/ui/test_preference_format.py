"""The Fine-tuning page builds preference pairs (DPO) with the same service as `dataset build
--format preference`: the same pairs, and a validation that reads them as preference pairs."""

import asyncio
import json

from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow


def test_page_builds_the_pairs_the_cli_builds(qtbot, tmp_path, qloop, sandbox_thread, capsys):
    from cascade_studio.cli import main

    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        tiers = sorted(TierRepository(ws).list(), key=lambda t: t.tier)
        tasks = select_task_ids(ws, limit=30)
        for tier in (tiers[-1], tiers[0]):
            run, _ = start_or_resume(ws, tier, tasks, {})
            asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
    asyncio.set_event_loop(qloop)  # asyncio.run() above unset the current loop
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    panel = page.dataset
    panel.ds_format.setCurrentIndex(panel.ds_format.findData("preference"))
    panel.ds_share.setValue(0)
    page.build(tmp_path / "gui.jsonl")
    assert "disagreements kept" in page.status.text() and "agreements dropped" in page.status.text()
    assert "gui.jsonl" in page.ds_report.toPlainText()  # validated as preference pairs
    assert panel.report[1].format == "preference"
    window.close()
    assert main(["-w", str(tmp_path / "ws"), "dataset", "build", "--out", str(tmp_path / "cli.jsonl"), "--format",
                 "preference", "--validation-share", "0"]) == 0
    capsys.readouterr()
    gui = [json.loads(x) for x in (tmp_path / "gui.jsonl").read_text().splitlines()]
    cli = [json.loads(x) for x in (tmp_path / "cli.jsonl").read_text().splitlines()]
    assert gui == cli and len(gui) > 0
