"""The Trajectories view during a run: it follows the rows the run writes without blocking the GUI.

Every 1.5 s the filter's count, its matching ids and the rows on screen are read on a pool thread
over a second connection (WAL: it neither waits for the run's writes nor blocks them; a million
rows with a filter take a second or more to count), then shown at once. A tick is skipped while the
previous read is still running, and a read is dropped when the view changed meanwhile (a new
filter, sort or curation: that change's own refresh wins)."""

from __future__ import annotations

import copy
from typing import Protocol

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QObject, QTimer
from PySide6.QtWidgets import QTableView

from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls
from cascade_studio.ui.trajectory_model import BLOCK, TrajectoryTableModel, read_view

INTERVAL_MS = 1500
CALL = "live-refresh"


class LiveView(Protocol):
    """What the live refresh needs of its page (the Trajectories page): no more, so that this module
    does not import the page that uses it."""

    ws: Workspace | None
    model: TrajectoryTableModel
    table: QTableView
    calls: Calls

    def show_count(self, stored: int) -> None: ...


class LiveRefresh:
    """The page's live refresh while a run writes rows (start, stop; `tick` does one)."""

    def __init__(self, page: LiveView, parent: QObject) -> None:
        self.page = page
        self.timer = QTimer(parent, interval=INTERVAL_MS)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def tick(self, keep_selection: bool = False) -> None:
        """Read the view again off the GUI thread. During a run a selection pauses it (rows must not
        move under the user's hand); `keep_selection` (a change made elsewhere, the page shown again,
        F5) reads anyway and selects the same trajectories again where they still match."""
        page, model = self.page, self.page.model
        ws = page.ws
        if ws is None:
            return
        if not keep_selection and (page.table.selectionModel().hasSelection() or page.calls.running(CALL)):
            return  # a run's tick: the next one reads; a read asked for (keep_selection) supersedes one under way
        flt, stamp, blocks = copy.deepcopy(model.filter), model.stamp, visible_blocks(page.table)

        def read():
            reader = ws.reader()
            try:
                return read_view(reader, flt, blocks), TrajectoryRepository(reader).count()
            finally:
                reader.close()

        def show(result) -> None:
            if page.ws is not ws or model.stamp != stamp:
                return
            selected = page.table.selectionModel().hasSelection()
            if selected and not keep_selection:
                return  # selected while the read ran: the rows stay where the user's hand is
            chosen = _selected_ids(page) if selected else []
            view, stored = result
            model.show(view)
            page.show_count(stored)
            if chosen:
                _select_ids(page, chosen)

        # A failed read is logged; the next tick tries again and the run's end refreshes anyway.
        page.calls.start_in_thread(CALL, read, show, on_error=lambda exc: None)


def visible_blocks(table: QTableView) -> range:
    """The model's blocks that hold the rows on screen (the first rows when none are shown yet)."""
    first = max(table.rowAt(0), 0)
    last = table.rowAt(max(table.viewport().height() - 1, 0))
    if last < first:
        last = first + BLOCK - 1
    return range(first // BLOCK, last // BLOCK + 1)


def _selected_ids(page: LiveView) -> list[int]:
    """The selected trajectories' ids, the current one first (when it is selected)."""
    rows = sorted({i.row() for i in page.table.selectionModel().selectedRows()})
    current = page.table.currentIndex()
    if current.isValid() and current.row() in rows:
        rows.remove(current.row())
        rows.insert(0, current.row())
    return [i for i in (page.model.trajectory_id(r) for r in rows) if i is not None]


def _select_ids(page: LiveView, ids: list[int]) -> None:
    """Select the rows that hold `ids` now (the first one current), those still shown: one range per run
    of adjacent rows, not one selection change per row."""
    rows = np.flatnonzero(np.isin(page.model.ids, np.asarray(ids, dtype=np.int64)))
    if not len(rows):
        return
    selection = QItemSelection()
    last = page.model.columnCount() - 1
    breaks = np.flatnonzero(np.diff(rows) > 1)
    for start, end in zip(np.r_[0, breaks + 1], np.r_[breaks, len(rows) - 1], strict=True):
        selection.select(page.model.index(int(rows[start]), 0), page.model.index(int(rows[end]), last))
    sel = page.table.selectionModel()
    sel.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
    hits = np.flatnonzero(page.model.ids == ids[0])
    if len(hits):
        sel.setCurrentIndex(page.model.index(int(hits[0]), 0), QItemSelectionModel.SelectionFlag.NoUpdate)
