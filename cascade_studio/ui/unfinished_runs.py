"""The Trajectories page's note of runs that stopped before their end (a cancel, a failure, a crash,
the window closed): 'tier 1: unfinished run 7, 12 to go' and a Resume button, after a restart too."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from cascade_studio.services.run_plan import UnfinishedRun, unfinished_runs
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.style import WARN_STYLE


class UnfinishedRunBar(QWidget):
    resume = Signal(object)  # the UnfinishedRun to resume

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="unfinishedRuns")
        self.found: list[UnfinishedRun] = []
        self.label = QLabel(objectName="unfinishedRunText")
        self.label.setWordWrap(True)
        self.label.setStyleSheet(WARN_STYLE)
        self.button = QPushButton("Resume", objectName="resumeUnfinished")
        self.button.setToolTip("Resume the run where it stopped: only the tasks without an answer are sent")
        self.button.clicked.connect(lambda: self.found and self.resume.emit(self.found[0]))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.hide()

    def refresh(self, ws: Workspace | None) -> list[UnfinishedRun]:
        every = unfinished_runs(ws) if ws is not None else []
        self.found = [u for u in every if u.collector is None]  # those this window may resume
        if every:
            self.label.setText("⚠ " + "; ".join(u.sentence() for u in every) + ".")
        if self.found:
            first = self.found[0]
            self.button.setText(f"Resume tier {first.tier}'s run" if len(self.found) > 1 else "Resume")
        self.button.setVisible(bool(self.found))
        self.setVisible(bool(every))
        return self.found
