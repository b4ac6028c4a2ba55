"""Tasks page: the imported task sets, filterable, with a detail pane; import (Ctrl+I)."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.tasks import TaskImportError
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.environments_panel import EnvironmentsPanel
from cascade_studio.ui.errors import show_error
from cascade_studio.ui.page import Page
from cascade_studio.ui.style import INFO_STYLE

log = logging.getLogger(__name__)
PAGE = 500


class TaskTableModel(QAbstractTableModel):
    """Rows come from SQLite a page at a time (canFetchMore/fetchMore), so big task sets stay fluid."""

    COL_ID, COL_CATEGORY, COL_TOOLS, COL_PROMPT, COL_EXPECTED = range(5)
    HEADERS = ["ID", "Category", "Tools", "Prompt", "Expected"]
    IdRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.repo: TaskRepository | None = None
        self.rows: list[tuple[Any, ...]] = []
        self.total = 0
        self.category: str | None = None
        self.search = ""

    def set_query(self, repo: TaskRepository | None, category: str | None = None, search: str = "") -> None:
        self.beginResetModel()
        self.repo, self.category, self.search = repo, category, search
        self.total = repo.count(category, search) if repo else 0
        self.rows = repo.page(0, PAGE, category, search) if repo else []
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def canFetchMore(self, parent: QModelIndex) -> bool:  # noqa: N802
        return not parent.isValid() and len(self.rows) < self.total

    def fetchMore(self, parent: QModelIndex) -> None:  # noqa: N802
        if self.repo is None:
            return
        more = self.repo.page(len(self.rows), PAGE, self.category, self.search)
        if not more:
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(more) - 1)
        self.rows.extend(more)
        self.endInsertRows()

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        task_id, category, tools, prompt, expected = self.rows[index.row()]
        if role == self.IdRole:
            return task_id
        if role == Qt.ItemDataRole.DisplayRole:
            shown = f"agent: tools of {tools[1:]}" if tools.startswith("@") else tools.replace(",", ", ")
            return [task_id, category, shown, prompt.replace("\n", " "), expected][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole and index.column() in (self.COL_PROMPT, self.COL_TOOLS):
            return prompt if index.column() == self.COL_PROMPT else tools
        return None


class TasksPage(QWidget):
    imported = Signal()

    def __init__(self, secrets: SecretStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws: Workspace | None = None
        self.model = TaskTableModel(self)
        self.environments = EnvironmentsPanel(secrets or SecretStore(), self)
        self.environments.changed.connect(self.refresh)
        self.category_combo = QComboBox(objectName="categoryFilter")
        self.category_combo.setMinimumContentsLength(18)
        self.search_edit = QLineEdit(objectName="taskSearch")
        self.search_edit.setPlaceholderText("Search prompts, ids and tools…  (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self.import_button = QPushButton("Import tasks…", objectName="importTasks")
        self.import_button.setToolTip("Import native JSONL, BFCL or CSV task files (Ctrl+I)")
        self.import_button.clicked.connect(self.import_dialog)
        self.count_label = QLabel(objectName="taskCount")
        self.count_label.setStyleSheet(INFO_STYLE)

        self.table = QTableView(objectName="taskTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(TaskTableModel.COL_PROMPT, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 150), (1, 110), (2, 220), (4, 70)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(self._show_detail)
        self.detail = QTextBrowser(objectName="taskDetail")
        self.detail.setPlaceholderText("Select a task to see its messages, tools and expected answer.")

        top = QHBoxLayout()
        top.addWidget(QLabel("Category"))
        top.addWidget(self.category_combo)
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.count_label)
        top.addWidget(self.import_button)
        env_box = QGroupBox("Environments: where agent tasks' tools run (MCP servers, Python modules)",
                            objectName="envBox")
        QVBoxLayout(env_box).addWidget(self.environments)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.addWidget(env_box)
        splitter.setSizes([420, 200, 200])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)

        self._search_timer = QTimer(self, singleShot=True, interval=200)
        self._search_timer.timeout.connect(self.refresh)
        self.search_edit.textChanged.connect(lambda _: self._search_timer.start())
        self.category_combo.currentIndexChanged.connect(lambda _: self.refresh())
        QShortcut(QKeySequence("Ctrl+I"), self, self.import_dialog)
        QShortcut(QKeySequence.StandardKey.Find, self, self.search_edit.setFocus)

    def set_workspace(self, ws: Workspace | None) -> None:
        self.ws = ws
        self.environments.set_workspace(ws)
        self._fill_categories()
        self.refresh()

    def _fill_categories(self) -> None:
        cats = TaskRepository(self.ws).categories() if self.ws else []
        Page.fill(self.category_combo, [(f"All ({sum(n for _, n in cats)})", None)]
                  + [(f"{name} ({n})", name) for name, n in cats])

    def refresh(self) -> None:
        repo = TaskRepository(self.ws) if self.ws else None
        self.model.set_query(repo, self.category_combo.currentData(), self.search_edit.text().strip())
        self.count_label.setText(f"{self.model.total:,} tasks")
        self.detail.clear()
        if self.model.total and self.ws:
            self.table.selectRow(0)

    def _show_detail(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or self.ws is None:
            self.detail.clear()
            return
        task = TaskRepository(self.ws).get(self.model.data(current, TaskTableModel.IdRole))
        if task is None:
            return
        parts = [f"<h3>{html.escape(task.id)} <small>· {html.escape(task.category)}</small></h3>"]
        if task.environment:
            limit = f"at most {task.max_steps} steps" if task.max_steps else "at most 8 steps (the default)"
            parts.append(f"<p><b>Agent episode</b> in environment <i>{html.escape(task.environment)}</i>, "
                         f"{limit}.</p>")
        for m in task.messages:
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content, indent=1)
            parts.append(f"<p><b>{html.escape(m.get('role', ''))}:</b> {html.escape(text or '')}</p>")
        if task.environment and not task.tools:
            parts.append(f"<p><b>Tools:</b> those of {html.escape(task.environment)} (List tools, below)</p>")
        else:
            parts.append(f"<p><b>Tools ({len(task.tools)})</b></p><pre>{html.escape(json.dumps(task.tools, indent=2))}</pre>")
        if task.expected is not None:
            label = "no function call" if task.expected == [] else json.dumps(task.expected, indent=2)
            parts.append(f"<p><b>Expected</b></p><pre>{html.escape(label)}</pre>")
        self.detail.setHtml("".join(parts))

    def import_dialog(self) -> None:
        if self.ws is None:
            return
        name, _ = QFileDialog.getOpenFileName(self, "Import tasks", "",
                                              "Task files (*.jsonl *.json *.csv);;All files (*)")
        if name:
            self.import_file(Path(name))

    def import_file(self, path: Path, fmt: str | None = None) -> bool:
        assert self.ws is not None
        try:
            result = import_tasks(self.ws, path, fmt)
        except TaskImportError as exc:
            show_error("Tasks not imported", f"{exc}.\n\nNothing was imported; fix the file and try again.", self)
            return False
        except OSError as exc:
            show_error("Tasks not imported", f"Could not write to the workspace: {exc}. Nothing was imported.", self)
            return False
        log.info("Imported %s: %s", path, result.to_json())
        self._fill_categories()
        self.refresh()
        self.count_label.setText(f"{self.model.total:,} tasks  (imported: {result.added} new, "
                                 f"{result.updated} updated, {result.unchanged} unchanged)")
        self.imported.emit()
        return True
