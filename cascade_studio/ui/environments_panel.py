"""Environments (agent tools): the MCP servers and Python modules that episodes run their tool calls
in. Add one, test it (list its tools, call one with arguments you type), remove it. The same
services as `cascade-studio env ...`; the calls run in a worker thread (each opens a fresh session)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.errors import UserError
from cascade_studio.services.agent import environments as envs
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls, run_coroutine_here
from cascade_studio.ui.errors import ask_yes_no, show_error
from cascade_studio.ui.style import INFO_STYLE

KIND_LABELS = {"stdio": "MCP server (command line, stdio)", "http": "MCP server (URL, Streamable HTTP)",
               "python": "Python module of functions"}
TARGET_HINTS = {"stdio": 'e.g. npx -y @modelcontextprotocol/server-everything, or python -m my_server',
                "http": "e.g. https://tools.example.com/mcp or http://127.0.0.1:8000/mcp",
                "python": "a .py file (or dotted module) of type-hinted functions"}


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise UserError(f"line {n} of the variables/headers: write KEY=VALUE")
        out[key.strip()] = value
    return out


class AddEnvironmentDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add an environment")
        self.name = QLineEdit(objectName="envName")
        self.name.setPlaceholderText("e.g. travel-desk")
        self.kind = QComboBox(objectName="envKind")
        for kind, label in KIND_LABELS.items():
            self.kind.addItem(label, kind)
        self.target = QLineEdit(objectName="envTarget")
        self.cwd = QLineEdit(objectName="envCwd")
        self.cwd.setPlaceholderText("working folder (optional)")
        self.secrets_edit = QPlainTextEdit(objectName="envSecrets")
        self.secrets_edit.setPlaceholderText("KEY=VALUE, one a line: variables of the process (stdio, python) or "
                                             "HTTP headers (URL). Kept in the OS keyring.")
        self.secrets_edit.setMaximumHeight(70)
        self.timeout = QDoubleSpinBox(objectName="envTimeout", minimum=1, maximum=3600, value=30, suffix=" s")
        form = QFormLayout(self)
        for label, widget in (("Name", self.name), ("Kind", self.kind), ("Command / URL / module", self.target),
                              ("Working folder", self.cwd), ("Secrets", self.secrets_edit),
                              ("Tool call timeout", self.timeout)):
            form.addRow(label, widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.kind.currentIndexChanged.connect(self._hint)
        self._hint()

    def _hint(self) -> None:
        self.target.setPlaceholderText(TARGET_HINTS[self.kind.currentData()])
        self.cwd.setEnabled(self.kind.currentData() != "http")

    def spec(self) -> tuple[envs.EnvironmentSpec, dict[str, str]]:
        """The environment and its secrets as typed; UserError names what is wrong."""
        kind, target = self.kind.currentData(), self.target.text().strip()
        if not target:
            raise UserError("Give the command line, the URL or the module.")
        cwd = self.cwd.text().strip() or None
        if kind == "stdio":
            try:
                parts = shlex.split(target)
            except ValueError as exc:
                raise UserError(f"The command line cannot be read: {exc}") from None
            spec = envs.EnvironmentSpec(self.name.text().strip(), kind, command=parts[0], args=parts[1:], cwd=cwd)
        elif kind == "http":
            spec = envs.EnvironmentSpec(self.name.text().strip(), kind, url=target)
        else:
            spec = envs.EnvironmentSpec(self.name.text().strip(), kind, module=target, cwd=cwd)
        spec.timeout_s = self.timeout.value()
        return spec, _pairs(self.secrets_edit.toPlainText())


class EnvironmentsPanel(QWidget):
    """The workspace's environments with Add / Test / Remove."""

    changed = Signal()
    COLUMNS = ["Name", "Kind", "Tasks", "Runs"]

    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.secrets = secrets
        self.ws: Workspace | None = None
        self.calls = Calls(self)
        self.table = QTableWidget(0, len(self.COLUMNS), objectName="envTable")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 110), (1, 52), (2, 48)):
            self.table.setColumnWidth(col, width)
        self.add_button = QPushButton("Add…", objectName="envAdd")
        self.add_button.clicked.connect(self.add_dialog)
        self.remove_button = QPushButton("Remove", objectName="envRemove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.tools_button = QPushButton("List tools", objectName="envTools")
        self.tools_button.clicked.connect(self.list_tools)
        self.tool_combo = QComboBox(objectName="envTool")
        self.tool_combo.setMinimumContentsLength(16)
        self.tool_combo.currentIndexChanged.connect(self._template)
        self.args_edit = QLineEdit(objectName="envArgs")
        self.args_edit.setPlaceholderText('arguments as JSON, e.g. {"city": "Paris"}')
        self.call_button = QPushButton("Call", objectName="envCall")
        self.call_button.clicked.connect(self.call_tool)
        self.status = QLabel(objectName="envStatus", wordWrap=True)
        self.status.setStyleSheet(INFO_STYLE)
        self.output = QTextBrowser(objectName="envOutput")
        self.output.setPlaceholderText("Select an environment and list its tools to test it.")
        self._tools: list[dict[str, Any]] = []
        buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.tools_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        test = QHBoxLayout()
        test.addWidget(QLabel("Test"))
        test.addWidget(self.tool_combo)
        test.addWidget(self.args_edit, 1)
        test.addWidget(self.call_button)
        left = QVBoxLayout()
        left.addLayout(buttons)
        left.addWidget(self.table, 1)
        right = QVBoxLayout()
        right.addLayout(test)
        right.addWidget(self.status)
        right.addWidget(self.output, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(left, 2)
        layout.addLayout(right, 3)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self._selection_changed()

    def set_workspace(self, ws: Workspace | None) -> None:
        self.ws = ws
        self.refresh()

    def refresh(self) -> None:
        rows = envs.list_environments(self.ws) if self.ws is not None else []
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate((row["name"], row["kind"], str(row["tasks"]), row["target"])):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                if c == 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        if rows and not self.table.selectedItems():
            self.table.selectRow(0)
        self._selection_changed()

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def _selection_changed(self) -> None:
        has = self.selected_name() is not None
        for w in (self.remove_button, self.tools_button):
            w.setEnabled(has)
        self.call_button.setEnabled(has and self.tool_combo.count() > 0)
        self.tool_combo.clear()
        self._tools = []

    # -- actions -------------------------------------------------------------------------------
    def add_dialog(self) -> None:
        dialog = AddEnvironmentDialog(self)
        while dialog.exec() == QDialog.DialogCode.Accepted:
            try:
                self.add(*dialog.spec())
                return
            except UserError as exc:
                show_error("Environment not added", str(exc), self)

    def add(self, spec: envs.EnvironmentSpec, secrets: dict[str, str]) -> None:
        if self.ws is None:
            return
        key = "headers" if spec.kind == "http" else "env"
        envs.add_environment(self.ws, self.secrets, spec, **{key: secrets})
        self.refresh()
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == spec.name:
                self.table.selectRow(r)
        self.status.setText(f"Added {spec.name}; listing its tools to check that it starts…")
        self.changed.emit()
        self.list_tools()

    def remove_selected(self) -> None:
        name = self.selected_name()
        if name is None or self.ws is None:
            return
        if not ask_yes_no(self, "Remove the environment?", f"Remove {name} and its secrets from the keyring? "
                          "Tasks that name it stay; episodes need it again to run."):
            return
        envs.remove_environment(self.ws, self.secrets, name)
        self.status.setText(f"Removed {name}.")
        self.refresh()
        self.changed.emit()

    def list_tools(self) -> None:
        name = self.selected_name()
        if name is None or self.ws is None:
            return
        spec = envs.get_environment(self.ws, name)
        self.status.setText(f"Starting {name} ({spec.describe()})…")
        self.tools_button.setEnabled(False)
        self.calls.start_in_thread("tools", lambda: run_coroutine_here(envs.list_tools(spec, self.secrets)),
                                   on_done=self._show_tools, on_error=self._failed)

    def _show_tools(self, tools: list[dict[str, Any]]) -> None:
        self.tools_button.setEnabled(True)
        self._tools = tools
        self.tool_combo.blockSignals(True)
        self.tool_combo.clear()
        for t in tools:
            self.tool_combo.addItem(t["function"]["name"])
        self.tool_combo.blockSignals(False)
        self._template()
        self.call_button.setEnabled(bool(tools))
        self.status.setText(f"✔ {len(tools)} tool(s).")
        self.output.setPlainText("\n\n".join(json.dumps(t["function"], indent=2) for t in tools))

    def _template(self) -> None:
        """Arguments to start from: the chosen tool's parameters, with empty values."""
        i = self.tool_combo.currentIndex()
        if not 0 <= i < len(self._tools):
            return
        props = self._tools[i]["function"].get("parameters", {}).get("properties", {})
        self.args_edit.setText(json.dumps({k: "" for k in props}))

    def call_tool(self) -> None:
        name = self.selected_name()
        if name is None or self.ws is None or not self.tool_combo.currentText():
            return
        try:
            arguments = json.loads(self.args_edit.text() or "{}")
        except json.JSONDecodeError as exc:
            self.status.setText(f"✖ The arguments are not JSON ({exc.msg} at character {exc.pos}).")
            return
        if not isinstance(arguments, dict):
            self.status.setText('✖ The arguments must be a JSON object, e.g. {"city": "Paris"}.')
            return
        spec, tool = envs.get_environment(self.ws, name), self.tool_combo.currentText()
        self.status.setText(f"Calling {tool} in a fresh session…")
        self.call_button.setEnabled(False)
        self.calls.start_in_thread("call", lambda: run_coroutine_here(envs.try_call(spec, self.secrets, tool, arguments)),
                                   on_done=self._show_result, on_error=self._failed)

    def _show_result(self, result) -> None:
        self.call_button.setEnabled(True)
        if result.error:
            self.status.setText(f"✖ {result.error}")
        else:
            self.status.setText(("✖ The tool reported an error" if result.is_error else "✔ Answered")
                                + f" in {result.duration_ms:,.0f} ms.")
        self.output.setPlainText(result.content)

    def _failed(self, exc: BaseException) -> None:
        self.tools_button.setEnabled(self.selected_name() is not None)
        self.call_button.setEnabled(bool(self._tools))
        self.status.setText(f"✖ {exc}")
