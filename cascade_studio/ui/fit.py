"""Small-window helpers: what does not fit says its whole text in a tooltip (issue 19, every size)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget


def tip_headers(table: QTableWidget) -> None:
    """Headers of a narrow table elide; each keeps its whole text as a tooltip."""
    table.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideRight)
    for i in range(table.columnCount()):
        item = table.horizontalHeaderItem(i)
        if item is not None and not item.toolTip():
            item.setToolTip(item.text())
