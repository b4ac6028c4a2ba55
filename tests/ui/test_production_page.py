"""The Production page after a gateway served the demo tiers: import the log folder, read the
figures (the same as `traffic report --json`), the hard cases, and run their one action."""

from __future__ import annotations

import asyncio
import json

from cascade_studio.cli import main
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.gateway.conftest import write_policy
from tests.gateway.test_traffic_import import serve_tasks


def test_production_page(qtbot, tmp_path, sandbox_thread, capsys):
    ws_dir = tmp_path / "ws"
    prepare_demo(ws_dir, sandbox_thread.base_url)
    policy = write_policy(ws_dir, tmp_path / "policy.json")
    with Workspace.open(ws_dir) as ws:
        tasks = TaskRepository(ws).list(limit=30)
    asyncio.run(serve_tasks(policy, tmp_path / "logs", tasks, category="production"))

    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(ws_dir)
    window.show()
    window.nav.setCurrentRow(window.nav.count() - 1)
    page = window.production_page
    assert window.pages.currentWidget() is page
    assert "No production traffic yet" in page.summary.text() and not page.collect_button.isEnabled()

    page.import_logs(tmp_path / "logs")
    qtbot.waitUntil(lambda: page.worker is None, timeout=30_000)
    assert "Imported 30 requests" in page.status.text(), page.status.text()
    f = page.figures
    assert f["requests"] == 30 and "30 requests" in page.summary.text() and "teacher-only" in page.summary.text()
    assert page.tier_table.rowCount() == len(f["answered_share"]) >= 2
    assert page.hard_table.rowCount() == f["hard_cases"] > 0 and page.collect_button.isEnabled()
    assert page.bars.opts["height"] and sum(page.bars.opts["height"]) == 30
    assert page.drift_warning.isHidden() == (not f["drift_warnings"])
    page.alert_spin.setValue(1.0)  # above any agreement short of perfect
    shown = page.figures
    assert page.drift_warning.isHidden() == (not shown["drift_warnings"])
    # the page's figures are the CLI's
    assert main(["-w", str(ws_dir), "traffic", "report", "--alert-level", "1.0", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["answered_share"] == {str(k): v for k, v in shown["answered_share"].items()}
    assert cli["cost_usd"] == shown["cost_usd"] and cli["drift_warnings"] == shown["drift_warnings"]

    page.collect_and_build(tmp_path / "next.jsonl")
    qtbot.waitUntil(lambda: page.worker is None, timeout=60_000)
    assert "dataset next.jsonl with" in page.status.text(), page.status.text()
    assert (tmp_path / "next.jsonl").exists()
