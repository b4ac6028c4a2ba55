"""Issue 16: the Tasks page's Environments section adds, tests (list tools, call one) and removes."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from cascade_studio.services.agent.environments import EnvironmentSpec
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.tasks_page import TasksPage

TOOLS = Path(__file__).resolve().parents[1] / "agent" / "desk_tools.py"


def test_add_test_and_remove_an_environment(tmp_path, qtbot, monkeypatch):
    shutil.copy(TOOLS, tmp_path / "desk_tools.py")
    ws = Workspace.open(tmp_path / "ws")
    page = TasksPage(SecretStore())
    qtbot.addWidget(page)
    page.set_workspace(ws)
    panel = page.environments
    assert panel.table.rowCount() == 0 and not panel.tools_button.isEnabled()
    panel.add(EnvironmentSpec("desk", "python", module=str(tmp_path / "desk_tools.py")), {})
    assert panel.table.rowCount() == 1 and panel.table.item(0, 0).text() == "desk"
    qtbot.waitUntil(lambda: panel.status.text().startswith(("✔", "✖")), timeout=30000)
    assert panel.status.text().startswith("✔") and panel.tool_combo.count() == 5  # with the hand-off tool
    panel.tool_combo.setCurrentText("get_weather")
    assert panel.args_edit.text() == '{"city": ""}'  # a template from the tool's parameters
    panel.args_edit.setText('{"city": "Oslo"}')
    panel.call_tool()
    qtbot.waitUntil(lambda: panel.status.text().startswith(("✔ Answered", "✖")), timeout=30000)
    assert "Oslo" in panel.output.toPlainText() and "sunny" in panel.output.toPlainText()
    panel.args_edit.setText("{oops")
    panel.call_tool()
    assert "not JSON" in panel.status.text()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    panel.remove_selected()
    assert panel.table.rowCount() == 0
    ws.close()


def test_an_environment_that_does_not_start_says_why(tmp_path, qtbot):
    ws = Workspace.open(tmp_path / "ws")
    page = TasksPage(SecretStore())
    qtbot.addWidget(page)
    page.set_workspace(ws)
    panel = page.environments
    panel.add(EnvironmentSpec("ghost", "stdio", command="no-such-command-xyz"), {})
    qtbot.waitUntil(lambda: panel.status.text().startswith(("✔", "✖")), timeout=30000)
    assert "no-such-command-xyz" in panel.status.text() and "not found" in panel.status.text()
    ws.close()
