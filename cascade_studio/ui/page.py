"""What the workspace pages share: the workspace they show, a status line, their short calls,
and the tier/category choices most of them offer.

A page builds itself in `__init__` from builder methods (`_build_*`, each returning a widget or a
layout) and follows the workspace through `set_workspace`."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import QComboBox, QScrollArea, QSplitter, QWidget

from cascade_studio.core.tiers import ConfidenceMethod, Tier, teacher_of
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls
from cascade_studio.ui.style import show_status, styled_label

DEFAULT_CONFIDENCE: ConfidenceMethod = next(f.default for f in dataclasses.fields(Tier) if f.name == "confidence_method")


def confidence_method_of(tiers: list[Tier], number: int | None = None) -> str:
    """The confidence method a view starts with: the chosen tier's; with none chosen, the one the student
    tiers share; else the core default (Tier.confidence_method), so Tiers, Trajectories and Evaluation agree."""
    top = teacher_of(tiers) if tiers else None
    chosen = [t for t in tiers if t.tier == number] if number is not None and number >= 0 else \
        [t for t in tiers if t is not top]
    methods = {t.confidence_method for t in chosen}
    return (methods.pop() if len(methods) == 1 else DEFAULT_CONFIDENCE).value


def fill_confidence_methods(combo: QComboBox) -> None:
    for m in ConfidenceMethod:
        combo.addItem(m.label, m.value)


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


def scrolled(widget: QWidget) -> QScrollArea:
    """A column in a frameless, vertically scrolling area: at the smallest window size a column taller
    than its place scrolls instead of squeezing its parts; it keeps the width its parts need (a
    splitter cannot squeeze it under that)."""
    return _Column(widget)


class _Column(QScrollArea):
    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)
        widget.installEventFilter(self)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - the width of the parts, now (they change with the data)
        from PySide6.QtWidgets import QStyle

        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        return QSize(self.widget().minimumSizeHint().width() + bar, super().minimumSizeHint().height())

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the parts' needs changed: the splitter asks again
        return super().eventFilter(watched, event)
