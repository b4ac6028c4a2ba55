"""Edit > Undo Tier Change and Edit > Tier History: every change of the tier set (a switch, a
threshold, a removal) keeps the set before it in the workspace (services.tier_service), so a slip
can be taken back, and the undo in turn (the history's "Put back")."""

from __future__ import annotations

import datetime as dt

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.services import tier_service


class TierUndo:
    """The Edit menu's tier actions of a main window (it has `ws`, `tiers_page` and a status bar)."""

    def __init__(self, window, menu: QMenu) -> None:
        self.window = window
        self.undo_action = QAction("&Undo Tier Change", window, objectName="undoTierChange",
                                   triggered=lambda *_: self.undo())
        self.history_action = QAction("Tier &History…", window, objectName="tierHistory", triggered=self.show_history)
        menu.addAction(self.undo_action)
        menu.addAction(self.history_action)
        menu.aboutToShow.connect(self.update)

    def update(self) -> None:
        """Name what Undo would put back (read when the menu opens: the CLI may have changed the tiers)."""
        ws = self.window.ws
        change = tier_service.next_undo(ws) if ws is not None else None
        self.undo_action.setText(f"&Undo Tier Change: {change}" if change else "&Undo Tier Change")
        self.undo_action.setEnabled(change is not None)
        self.history_action.setEnabled(ws is not None)

    def _unsaved_edits_go(self) -> bool:
        from cascade_studio.ui.errors import ask_yes_no

        page = self.window.tiers_page
        if not page.dirty:
            return True
        if not ask_yes_no(self.window, "Unsaved tier changes",
                          "The Tiers page has unsaved changes. Discard them and put the saved tiers back?"):
            return False
        page.revert()
        return True

    def undo(self, change_id: int | None = None) -> bool:
        window = self.window
        if window.ws is None or not self._unsaved_edits_go():
            return False
        try:
            entry, done = tier_service.undo_tier_change(window.ws, change_id)
        except tier_service.TierServiceError as exc:
            window.statusBar().showMessage(f"Nothing undone: {exc}", 10000)
            return False
        window.statusBar().showMessage(f"Tiers put back: {done} (Edit > Tier History can put this back too: "
                                       f"change {entry}).", 15000)
        return True

    def show_history(self) -> None:
        if self.window.ws is not None:
            TierHistoryDialog(self, self.window).open()


class TierHistoryDialog(QDialog):
    """The tier set's changes, newest first; "Put back" restores the tiers as they were before one."""

    def __init__(self, undo: TierUndo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tier history")
        self.setObjectName("tierHistoryDialog")
        self.resize(760, 360)
        self.undo = undo
        self.table = QTableWidget(0, 3, objectName="tierHistoryTable")
        self.table.setHorizontalHeaderLabels(["#", "When", "Change"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.put_back = buttons.addButton("Put the tiers back as before this change",
                                          QDialogButtonBox.ButtonRole.ActionRole)
        self.put_back.setObjectName("putTiersBack")
        self.put_back.clicked.connect(self._put_back)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Every change of the tiers, newest first. Putting a change back is a change too: "
                                "it appears here and can be put back in turn."))
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.table.currentCellChanged.connect(lambda *_: self.put_back.setEnabled(self.table.currentRow() >= 0))
        self.refresh()

    def refresh(self) -> None:
        rows = tier_service.tier_history(self.undo.window.ws)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            note = f" (undoes #{row['undoes']})" if row["undoes"] else \
                f" (undone by #{row['undone_by']})" if row["undone_by"] else ""
            when = dt.datetime.fromisoformat(row["at"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
            for c, text in enumerate((str(row["id"]), when, row["change"] + note)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.put_back.setEnabled(False)

    def _put_back(self) -> None:
        row = self.table.currentRow()
        if row >= 0 and self.undo.undo(int(self.table.item(row, 0).text())):
            self.refresh()
