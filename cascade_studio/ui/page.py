"""What the workspace pages share: the workspace they show, a status line, their short calls,
and the tier/category choices most of them offer.

A page builds itself in `__init__` from builder methods (`_build_*`, each returning a widget or a
layout) and follows the workspace through `set_workspace`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QSplitter, QWidget

from cascade_studio.core.tiers import Tier
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls
from cascade_studio.ui.style import show_status, styled_label


class Page(QWidget):
    def __init__(self, status_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws: Workspace | None = None
        self.calls = Calls(self)
        self.status = styled_label(status_name)  # placed by the page

    def say(self, text: str, error: bool = False) -> None:
        show_status(self.status, text, error)

    # -- the workspace's tiers and categories --------------------------------------------------
    def tiers(self) -> list[Tier]:
        return TierRepository(self.ws).list() if self.ws else []

    def tier(self, number: int | None) -> Tier | None:
        return next((t for t in self.tiers() if t.tier == number), None)

    def category_items(self, all_label: str = "All categories") -> list[tuple[str, Any]]:
        """("All categories", None) then ("name (count)", name) for each category of the tasks."""
        cats = TaskRepository(self.ws).categories() if self.ws else []
        return [(all_label, None)] + [(f"{name} ({n})", name) for name, n in cats]

    @staticmethod
    def fill(combo: QComboBox, items: list[tuple[str, Any]], default: Any = None) -> None:
        """Refill a combo box without emitting changes; keep its choice when it is still offered,
        else (or when the choice is the None item, such as "All categories") choose `default`."""
        current = combo.currentData()
        current = default if current is None else current
        combo.blockSignals(True)
        combo.clear()
        for text, value in items:
            combo.addItem(text, value)
        index = combo.findData(current)
        combo.setCurrentIndex(index if index >= 0 else 0)
        combo.blockSignals(False)


def splitter(orientation: Qt.Orientation, widgets: list[QWidget], sizes: list[int]) -> QSplitter:
    split = QSplitter(orientation)
    for w in widgets:
        split.addWidget(w)
    split.setSizes(sizes)
    return split
