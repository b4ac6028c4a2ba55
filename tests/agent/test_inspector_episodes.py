"""Issue 16: the inspector shows an episode as a timeline and filters on steps and ends."""
from __future__ import annotations

import json

from PySide6.QtCore import QUrl

from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.trajectories_page import TrajectoriesPage
from tests.agent.test_episodes import cli, copy_tools, setup


def test_inspector_shows_episode_timeline(tmp_path, capsys, sandbox_thread, qtbot):
    folder = copy_tools(tmp_path)
    ws_path = setup(tmp_path, capsys, sandbox_thread.base_url, ["--python", str(folder / "desk_tools.py")])
    assert cli(capsys, ws_path, "collect", "--tier", "1")[0] == 0
    big = tmp_path / "single.jsonl"
    big.write_text(json.dumps({"id": "s1", "category": "single", "tools": [], "messages": [
        {"role": "user", "content": "Say hello"}]}) + "\n")
    assert cli(capsys, ws_path, "tasks", "import", str(big))[0] == 0
    assert cli(capsys, ws_path, "collect", "--tier", "1")[0] == 0
    ws = Workspace.open(ws_path)
    page = TrajectoriesPage(SecretStore())
    qtbot.addWidget(page)
    page.set_workspace(ws)
    page.apply_filter()
    assert page.model.rowCount() == 3
    model = page.model
    steps = [model.index(r, model.COL_STEPS).data() for r in range(3)]
    ends = [model.index(r, model.COL_END).data() for r in range(3)]
    assert sorted(str(s) for s in steps) == ["", "2", "2"] and sorted(ends) == ["", "answered", "answered"]
    page.f_steps.setCurrentIndex(page.f_steps.findData("episodes"))
    page.apply_filter()
    assert page.model.rowCount() == 2
    page.f_steps.setCurrentIndex(page.f_steps.findData("single"))
    page.apply_filter()
    assert page.model.rowCount() == 1
    page.f_steps.setCurrentIndex(page.f_steps.findData("episodes"))
    page.apply_filter()
    page.table.selectRow(0)
    page.show_current()
    text = page.detail.toPlainText()
    assert "Agent episode" in text and "Step 1" in text and "Step 2" in text and "get_weather" in text
    assert "sunny" in text and "ended: answered" in text
    # a long result is folded; its link opens it
    from cascade_studio.core.episode import ToolResult
    _, found, episode = page._shown
    episode.steps[0].results[0] = ToolResult("c", "get_weather", {}, "x" * 1000)
    page._render_detail()
    assert "Show the whole result (1,000 characters)" in page.detail.toPlainText()
    page._detail_link(QUrl("expand:0:0"))
    assert "x" * 1000 in page.detail.toPlainText() and "Fold" in page.detail.toPlainText()
    page._filter_timer.stop()  # the filter combo's debounce would fire after the workspace closes
    page.set_workspace(None)
    ws.close()
