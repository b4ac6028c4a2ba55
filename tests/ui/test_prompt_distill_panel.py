"""The Fine-tuning page's prompt-distillation panel: asks before paying for the evaluation, builds the
generation through the same service as `distil prompt`, and removes it again."""

from __future__ import annotations

import asyncio

from cascade_studio.services.datasets import DatasetFilters, build_dataset
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui import errors
from cascade_studio.ui.main_window import MainWindow
from tests.services.test_prompt_distill import collected


def test_panel_builds_and_removes_a_prompt_distilled_generation(qtbot, tmp_path, sandbox_thread, monkeypatch):
    folder = tmp_path / "ws"
    asyncio.run(collected(folder, sandbox_thread.base_url, n=40))
    with Workspace.open(folder) as ws:
        build_dataset(ws, tmp_path / "ds.jsonl", DatasetFilters(validation_share=0.3, seed=5))
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(folder)
    page = window.finetune_page
    panel = page.prompt_panel
    panel.reload_choices()
    assert [panel.student.itemData(i) for i in range(panel.student.count())] == [1, 2]  # never the teacher
    asked = []
    monkeypatch.setattr(errors, "ask_yes_no", lambda *a: asked.append(a[2]) or False)
    panel.build_button.click()
    assert asked and "validation tasks" in asked[0] and panel.worker is None  # declined: nothing ran
    monkeypatch.setattr(errors, "ask_yes_no", lambda *a: True)
    panel.k.setValue(2)
    panel.build_button.click()
    assert panel.wait_done()
    assert "left out" in panel.note.text()
    with Workspace.open(folder) as ws:
        tier = TierRepository(ws).get(1)
    if "now answers as tier 1" in panel.note.text():
        assert tier.demonstrations is not None and tier.demonstrations.k == 2
    else:
        assert tier.demonstrations is None and "was not changed" in panel.note.text()
    panel.remove_button.click()
    with Workspace.open(folder) as ws:
        assert TierRepository(ws).get(1).demonstrations is None
