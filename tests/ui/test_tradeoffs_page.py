"""Trade-offs page on a demo workspace with trajectories of all three tiers."""

import asyncio
import json

from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow


def collected(tmp_path, url, limit=30):
    prepare_demo(tmp_path, url)
    with Workspace.open(tmp_path) as ws:
        ids = select_task_ids(ws, limit=limit)
        for tier in TierRepository(ws).list():
            run, _ = start_or_resume(ws, tier, ids, {})
            asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())


def test_curve_slider_whatif_scenarios_exports(qtbot, tmp_path, sandbox_thread):
    collected(tmp_path / "ws", sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.show()
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    assert "Loading outcomes" in page.status.text() or page.outcomes is not None  # on a worker thread
    assert page.wait_loaded()
    assert page.outcomes is not None and page.outcomes.n == 30
    assert page.tier_table.rowCount() == 3
    assert "APGR" in page.metrics_label.text()
    before = page.current.getData()[0][0]
    page.sliders[0].setValue(0)  # never escalate from tier 1: cheapest point
    after = page.current.getData()[0][0]
    assert after < before and "escalated past tier 1: 0%" in page.point_label.text()
    qtbot.waitUntil(lambda: "answered by each tier: 100%" in page.point_label.text())  # after the slider rests
    page.sliders[0].setValue(100)
    assert page.sliders[1].isEnabled()
    page.volume.setValue(2_000_000)
    page.training.setValue(100)
    result = page.update_whatif()
    assert result["scenario"]["monthly_volume"] == 2_000_000 and result["monthly_training_usd"] == 100 / 12
    page.save_scenario("baseline")
    page.sliders[0].setValue(30)
    page.save_scenario("aggressive")
    assert page.scenario_table.columnCount() == 2
    assert [page.scenario_table.horizontalHeaderItem(i).text() for i in range(2)] == ["baseline", "aggressive"]
    page.mode_combo.setCurrentIndex(1)  # routing
    assert page.sw.mode == "routing"
    png = page.export_plot("png", str(tmp_path / "p.png"))
    svg = page.export_plot("svg", str(tmp_path / "p.svg"))
    data = page.export_csv(str(tmp_path / "p.csv"))
    assert png.stat().st_size > 1000 and "<svg" in svg.read_text()[:2000]
    assert data.read_text().startswith("threshold_1,threshold_2,cost_per_request_usd")
    before = len(TierRepository(page.ws).history())
    page.save_thresholds()
    with Workspace.open(tmp_path / "ws") as ws:
        assert TierRepository(ws).get(1).threshold == 0.3
        # one change of the tier set: one Edit > Undo puts every threshold back (issue 27)
        assert len(TierRepository(ws).history()) == before + 1


def test_whatif_cli(tmp_path, capsys, sandbox_thread):
    from cascade_studio.cli import main

    collected(tmp_path / "ws", sandbox_thread.base_url, limit=20)
    capsys.readouterr()
    assert main(["-w", str(tmp_path / "ws"), "whatif", "--volume", "500000", "--thresholds", "0.5,0.6", "--sweep",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("tier", "requests", "cost_per_request_usd", "latency_p50_ms", "latency_p95_ms", "quality"):
        assert key in out["tiers"][0]
    assert out["cascade"]["thresholds"] == [0.5, 0.6] and out["whatif"]["scenario"]["monthly_volume"] == 500000
    assert set(out["metrics"]) >= {"apgr", "cpt50", "cpt80", "aiq"} and out["sweep"]["points"]
    assert main(["-w", str(tmp_path / "ws"), "whatif", "--thresholds", "0.5"]) == 2
    assert main(["-w", str(tmp_path / "ws"), "whatif", "--mix", "simple"]) == 2  # KEY=NUMBER pairs
    assert main(["-w", str(tmp_path / "ws"), "whatif", "--price-scale", "one=2"]) == 2
    assert main(["-w", str(tmp_path / "ws"), "whatif", "--mode", "routing"]) == 0


def test_cli_and_page_show_the_same_figures(qtbot, tmp_path, capsys, sandbox_thread):
    """One function makes the trade-off report: `whatif --json` and the page agree, three tiers included."""
    from cascade_studio.cli import main

    collected(tmp_path / "ws", sandbox_thread.base_url, limit=25)
    capsys.readouterr()
    assert main(["-w", str(tmp_path / "ws"), "whatif", "--sweep", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    assert page.wait_loaded()
    assert len(page.figures) == 3
    assert json.loads(json.dumps(page.figures)) == out["tiers"]
    assert json.loads(json.dumps(page.metrics)) == out["metrics"] and "teacher" in out["metrics"]["note"]
    assert out["tasks"] == page.outcomes.n
