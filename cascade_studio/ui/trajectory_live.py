"""The Trajectories view during a run: it follows the rows the run writes without blocking the GUI.

Every 1.5 s the filter's count, its matching ids and the rows on screen are read on a pool thread
over a second connection (WAL: it neither waits for the run's writes nor blocks them; a million
rows with a filter take a second or more to count), then shown at once. A tick is skipped while the
previous read is still running, and a read is dropped when the view changed meanwhile (a new
filter, sort or curation: that change's own refresh wins)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.ui.trajectory_model import BLOCK, read_view

if TYPE_CHECKING:
    from PySide6.QtWidgets import QTableView

    from cascade_studio.ui.trajectories_page import TrajectoriesPage

INTERVAL_MS = 1500
CALL = "live-refresh"


class LiveRefresh:
    """The page's live refresh while a run writes rows (start, stop; `tick` does one)."""

    def __init__(self, page: TrajectoriesPage) -> None:
        self.page = page
        self.timer = QTimer(page, interval=INTERVAL_MS)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def tick(self) -> None:
        page, model = self.page, self.page.model
        ws = page.ws
        if ws is None or page.table.selectionModel().hasSelection() or page.calls.running(CALL):
            return
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
            view, stored = result
            model.show(view)
            page.show_count(stored)

        # A failed read is logged; the next tick tries again and the run's end refreshes anyway.
        page.calls.start_in_thread(CALL, read, show, on_error=lambda exc: None)


def visible_blocks(table: QTableView) -> range:
    """The model's blocks that hold the rows on screen (the first rows when none are shown yet)."""
    first = max(table.rowAt(0), 0)
    last = table.rowAt(max(table.viewport().height() - 1, 0))
    if last < first:
        last = first + BLOCK - 1
    return range(first // BLOCK, last // BLOCK + 1)
