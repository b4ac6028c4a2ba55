"""The Trade-offs page's Strategies tab shows what `strategies --json` prints (one function, the same
inputs), empty rows included."""

from __future__ import annotations

import asyncio
import json

from cascade_studio.cli import main
from cascade_studio.services.datasets import DatasetFilters, build_dataset
from cascade_studio.services.prompt_distill import distil_prompt
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from cascade_studio.ui.strategies_tab import COLUMNS, row_cells
from tests.services.test_prompt_distill import collected


async def prompt_distilled(folder, url, tmp_path) -> None:
    await collected(folder, url, n=40)
    with Workspace.open(folder) as ws:
        build_dataset(ws, tmp_path / "ds.jsonl", DatasetFilters(validation_share=0.3, seed=4))
        assert (await distil_prompt(ws, 1, 3, "fixed", SecretStore(), evaluate_first=True, force=True,
                                    use_embeddings=False)).applied


def test_strategies_tab_equals_the_cli_json(qtbot, tmp_path, sandbox_thread, capsys):
    folder = tmp_path / "ws"
    asyncio.run(prompt_distilled(folder, sandbox_thread.base_url, tmp_path))
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(folder)
    window.show()
    page = window.tradeoffs_page
    page.volume.setValue(300000)
    page.tabs.setCurrentWidget(page.strategies)
    tab = page.strategies
    assert tab.wait_loaded() and tab.report is not None
    assert main(["-w", str(folder), "strategies", "--json", "--volume", "300000"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert json.loads(json.dumps(tab.report)) == cli
    rows = {r["strategy"]: r for r in cli["rows"]}
    assert rows["prompt_distilled"]["available"] and not rows["fine_tuned"]["available"]
    assert tab.table.rowCount() == 4 and tab.table.columnCount() == len(COLUMNS)
    for r, row in enumerate(cli["rows"]):
        assert [tab.table.item(r, c).text() for c in range(len(COLUMNS))] == row_cells(row)
    assert "finetune start" in tab.table.item(2, 1).text()  # the empty row says how to fill it
    assert "validation tasks of dataset" in tab.note.text()


def test_strategies_tab_judges_quality_as_the_cli_does(qtbot, tmp_path, sandbox_thread, capsys, monkeypatch):
    """With the page's Quality set to a judge, the tab shows `strategies --judge NAME`: it estimates
    first, asks before paying (a Yes here), and its rows equal the CLI's from the stored verdicts."""
    from cascade_studio.ui import confirm
    from cascade_studio.ui.judged_quality import JUDGE

    folder = tmp_path / "ws"
    asyncio.run(prompt_distilled(folder, sandbox_thread.base_url, tmp_path))
    asked = []
    monkeypatch.setattr(confirm, "ask_choice", lambda parent, title, text, choices: asked.append(text) or JUDGE)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(folder)
    window.show()
    page = window.tradeoffs_page
    page.tabs.setCurrentWidget(page.strategies)
    tab = page.strategies
    assert tab.wait_loaded()
    judge = "sandbox-reference"
    page.quality_combo.setCurrentIndex(page.quality_combo.findData(judge))
    qtbot.waitUntil(lambda: page.judging is None, timeout=60000)
    tab.reload()
    assert tab.wait_loaded() and tab.report is not None
    judged = tab.report["quality_judge"]  # BFCL tasks have expected answers: quality is accuracy, no judge needed
    assert judged == {"applied": False, "note": "quality is accuracy: nothing for a judge to replace"}
    assert main(["-w", str(folder), "strategies", "--judge", judge, "--json", "--volume",
                 str(int(tab.volume()))]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert json.loads(json.dumps(tab.report["rows"])) == cli["rows"]
    assert cli["quality_judge"] == judged and "Judge not applied: quality is accuracy" in tab.note.text()


def test_strategies_tab_asks_before_paying_a_judge_and_then_equals_the_cli(qtbot, tmp_path, sandbox_thread, capsys,
                                                                           monkeypatch):
    """Free-text tasks (quality is agreement, so a judge applies): the tab estimates, asks (Yes here),
    judges, and its rows equal `strategies --judge NAME --json`, which then pays nothing (stored)."""
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.ui import confirm
    from cascade_studio.ui.judged_quality import JUDGE
    from tests.services.test_judges import PLAIN

    folder = tmp_path / "ws"
    prepare_demo(folder, sandbox_thread.base_url)
    tasks = tmp_path / "plain.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"plain-{i}", "category": "plain", "tools": [],
                                         "messages": [{"role": "user", "content": p}]}) + "\n"
                             for i, p in enumerate(PLAIN)))
    assert main(["-w", str(folder), "tasks", "import", str(tasks)]) == 0
    for tier in ("1", "2", "3"):
        assert main(["-w", str(folder), "collect", "--tier", tier, "--category", "plain"]) == 0
    assert main(["-w", str(folder), "judge", "add", "ref", "--tier", "3", "--model", "judge-sim-0", "--kind",
                 "reference", "--input-price", "2.5", "--output-price", "10"]) == 0
    capsys.readouterr()
    asked = []
    monkeypatch.setattr(confirm, "ask_choice", lambda parent, title, text, choices: asked.append(text) or JUDGE)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(folder)
    window.show()
    page = window.tradeoffs_page
    page.quality_combo.blockSignals(True)  # the page's own judged load is not what is tested here
    page.quality_combo.setCurrentIndex(page.quality_combo.findData("ref"))
    page.quality_combo.blockSignals(False)
    tab = page.strategies
    tab.reload()
    assert tab.wait_loaded() and tab.report is not None
    # asked before paying (the page's own Quality may ask too: it refreshes on its own)
    assert asked and all("Quality judged by ref would cost about $" in a for a in asked), asked
    judged = tab.report["quality_judge"]  # the cascade's two students on the 3 tasks: 6 verdicts, new or stored
    assert judged["applied"] and judged["requests"] + judged["reused"] == 6, judged
    assert "Quality judged by judge ref" in tab.note.text()
    assert main(["-w", str(folder), "strategies", "--judge", "ref", "--json", "--volume",
                 str(int(tab.volume()))]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert json.loads(json.dumps(tab.report["rows"])) == cli["rows"]
    assert cli["quality_judge"]["requests"] == 0 and cli["quality_judge"]["reused"] == 6
    assert {r["quality_basis"] for r in cli["rows"] if r["available"] and r["strategy"] == "cascade"} == {"judged"}
    # a No to the cost question: nothing is sent, quality as recorded, and the note says so
    monkeypatch.setattr(confirm, "ask_choice", lambda *a: "cancel")
    monkeypatch.setattr(tab, "judge_name", lambda: "ref-other")
    assert main(["-w", str(folder), "judge", "add", "ref-other", "--tier", "3", "--model", "judge-sim-20", "--kind",
                 "reference"]) == 0  # another model: none of its verdicts is stored
    capsys.readouterr()
    sent = sandbox_thread.sandbox.request_count
    tab.reload()
    assert tab.wait_loaded() and "quality_judge" not in tab.report
    assert sandbox_thread.sandbox.request_count == sent and "declined: nothing was sent" in tab.note.text()
