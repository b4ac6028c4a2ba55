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
