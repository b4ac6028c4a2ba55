"""Table model over the trajectories table: the matching ids up front (a numpy array: 8 MB at a
million rows), rows fetched by id a block at a time on demand."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from cascade_studio.core.episode import END_LABELS
from cascade_studio.core.money import micro_to_usd
from cascade_studio.store.trajectory_query import (
    CONF_COLUMNS,
    ROW_COLUMNS,
    TrajectoryFilter,
    matching_ids,
    rows_by_id,
)
from cascade_studio.store.workspace import Workspace

BLOCK = 64
MAX_BLOCKS = 256
_ROW_NAMES = [c.strip() for c in ROW_COLUMNS.split(",")]
# the row index of each confidence method's column, from the one method <-> column map
_CONF_INDEX = {method: _ROW_NAMES.index(column) for method, column in CONF_COLUMNS.items()}


@dataclass
class ViewSnapshot:
    """What the view shows for a filter: how many rows match, their ids in order and some blocks of
    rows already read."""

    total: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    blocks: dict[int, Any] = field(default_factory=dict)


def read_view(ws: Workspace, flt: TrajectoryFilter, block_numbers: range = range(0)) -> ViewSnapshot:
    """The snapshot of `flt` over `ws`, with the blocks `block_numbers` read too. Touches no Qt
    object: a live refresh runs it on a pool thread over a connection of its own."""
    ids = matching_ids(ws, flt)
    total = len(ids)
    blocks = {n: read_block(ws, ids, n) for n in block_numbers if n * BLOCK < total}
    return ViewSnapshot(total, ids, blocks)


def read_block(ws: Workspace, ids: np.ndarray, block_no: int) -> dict[int, tuple]:
    """Rows of one block, {id: row}."""
    return rows_by_id(ws, ids[block_no * BLOCK:(block_no + 1) * BLOCK].tolist())


class TrajectoryTableModel(QAbstractTableModel):
    COL_TASK, COL_CATEGORY, COL_TIER, COL_MODEL, COL_STATUS, COL_STEPS, COL_END, COL_TOOL, COL_CONF, COL_COST, \
        COL_LATENCY, COL_TOKENS, COL_CURATION, COL_TAGS = range(14)
    HEADERS = ["Task", "Category", "Tier", "Model", "Status", "Steps", "End", "Tool", "Confidence", "Cost ($)",
               "Latency ms", "Tokens", "Curation", "Tags"]
    SORT_KEYS = ["task_id", "category", "tier", "model", "status", "steps", "end_reason", "tool_name", "confidence",
                 "cost_micro", "latency_ms", "tokens", "curation", "tags"]
    IdRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.ws: Workspace | None = None
        self.filter = TrajectoryFilter()
        self.ids = np.zeros(0, dtype=np.int64)
        self.total = 0
        self._blocks: OrderedDict[int, Any] = OrderedDict()
        self.stamp = 0  # changes whenever what the rows are read from changes (a live refresh checks it)
        self.sorter: Callable[[TrajectoryFilter, int], None] | None = None  # reads a sorted view off the GUI thread
        self.sorting = 0  # the stamp of the sort being read (0: none)

    # -- querying ------------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        self.ws = ws
        self.refresh()

    def set_filter(self, flt: TrajectoryFilter) -> None:
        self.filter = flt
        self.refresh()

    def refresh(self) -> None:
        self.show(ViewSnapshot() if self.ws is None else read_view(self.ws, self.filter))

    def show(self, view: ViewSnapshot) -> None:
        """Show a snapshot read for the current filter (here or, by a live refresh, on a thread)."""
        self.stamp += 1
        self.sorting = 0
        self.beginResetModel()
        self._blocks = OrderedDict(view.blocks)
        self.total, self.ids = view.total, view.ids
        self.endResetModel()

    def reload_rows(self) -> None:
        """Re-read rows (after curation) and tell the view which columns changed."""
        self.stamp += 1
        self._blocks.clear()
        if self.total:
            self.dataChanged.emit(self.index(0, self.COL_CURATION), self.index(self.total - 1, self.COL_TAGS))

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the view. With a `sorter` (the page's: a worker thread and a connection of its own)
        the GUI stays live while the ids are sorted (a million rows on a cold disk: seconds); the rows
        keep their old order until the sorted view is shown, and a newer sort or filter wins."""
        self.filter.sort = self.SORT_KEYS[column] if 0 <= column < len(self.SORT_KEYS) else "id"  # -1: unsorted
        self.filter.descending = order == Qt.SortOrder.DescendingOrder
        if self.sorter is None or self.ws is None:
            self.refresh()
            return
        self.stamp += 1  # a live refresh under way is dropped: the sorted view is the one to show
        self.sorting = self.stamp
        self.sorter(copy.deepcopy(self.filter), self.stamp)

    def show_sorted(self, view: ViewSnapshot, stamp: int) -> bool:
        """Show the view a sorter read, unless the view changed since it was asked (False)."""
        if stamp != self.stamp:
            return False
        self.sorting = 0
        self.show(view)
        return True

    def _row(self, row: int) -> tuple | None:
        if self.ws is None or not 0 <= row < self.total:
            return None
        block_no = row // BLOCK
        block = self._blocks.get(block_no)
        if block is None:
            block = self._blocks[block_no] = read_block(self.ws, self.ids, block_no)
            if len(self._blocks) > MAX_BLOCKS:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(block_no)
        return block.get(int(self.ids[row]))

    def trajectory_id(self, row: int) -> int | None:
        return int(self.ids[row]) if 0 <= row < self.total else None

    # -- Qt model API ------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self.total

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def confidence_of(self, r: tuple) -> float | None:
        index = _CONF_INDEX.get(self.filter.confidence)
        return None if index is None else r[index]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r = self._row(index.row())
        if r is None:
            return None
        col = index.column()
        if role == self.IdRole:
            return r[0]
        if role == Qt.ItemDataRole.DisplayRole:
            conf = self.confidence_of(r)
            unknown = r[17] or ""  # what a recorded episode did not give: unknown, never 0
            return [r[1], r[2], r[3], r[4], r[5], r[15] if r[16] else "", END_LABELS.get(r[16], r[16] or ""),
                    r[6] or "—", "" if conf is None else f"{conf:.3f}",
                    "unknown" if "cost" in unknown else f"{micro_to_usd(r[10]):.6f}",
                    "unknown" if "latency" in unknown else f"{r[11]:.0f}",
                    "unknown" if "usage" in unknown else f"{r[12]:,}", r[13] or "", r[14] or ""][col]
        if role == Qt.ItemDataRole.ToolTipRole and col == self.COL_TOOL and r[16]:
            return "An agent episode: the tool of its first step (the detail shows every step)"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_TIER, self.COL_STEPS, self.COL_CONF,
                                                                 self.COL_COST, self.COL_LATENCY, self.COL_TOKENS):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            if col == self.COL_CONF:
                conf = self.confidence_of(r)
                return None if conf is None else heat_color(conf)
            if col == self.COL_STATUS and r[5] == "error":
                return QColor("#fde7e9")
            if col == self.COL_END and r[16] and r[16] != "answered":
                return QColor("#fff4ce")
            if col == self.COL_CURATION and r[13]:
                return QColor("#dff6dd") if r[13] == "accepted" else QColor("#fde7e9")
        if role == Qt.ItemDataRole.ForegroundRole and col in (self.COL_CONF, self.COL_STATUS, self.COL_CURATION):
            return QColor("#1b1b1b")
        return None


def heat_color(p: float) -> QColor:
    """Red (unsure) through amber to green (sure), light enough for black text."""
    p = max(0.0, min(1.0, p))
    if p < 0.5:
        t = p / 0.5
        r, g, b = 248, int(180 + 50 * t), int(180 - 40 * t)
    else:
        t = (p - 0.5) / 0.5
        r, g, b = int(248 - 80 * t), int(230 - 10 * t), int(140 + 40 * t)
    return QColor(r, g, b)
