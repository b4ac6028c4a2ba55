"""The Evaluation page's judge box (issue 30): how far each judge's verdicts agree with people's
labels, from stored verdicts only (opening it sends nothing and costs nothing), with a warning when
kappa is below the level the user sets or fewer than 30 labels were judged.

The figures are `services.judge_calibration.calibrate`'s, the same function `judge calibrate` runs.
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from cascade_studio.services.judge_calibration import DEFAULT_MIN_KAPPA, calibrate
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.judges import JudgeRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls
from cascade_studio.ui.style import INFO_STYLE, WARN_STYLE


def calibration_sentence(report: dict) -> str:
    """One line of a calibration report's figures."""
    if not report["judged"]:
        return (f"{report['labels']} labels; none judged yet: run `cascade-studio judge calibrate "
                f"{report['judge']}` ({report['pending']} to judge)")
    kappa = "undefined" if report["kappa"] is None else f"{report['kappa']:.2f}"
    return (f"kappa {kappa}, accuracy {report['accuracy']:.0%} on {report['judged']} labels "
            f"({len(report['disagreements'])} disagreements, {report['unparseable']} unparseable, "
            f"{report['pending']} not judged yet); template {report['template_version']}")


class JudgePanel(QGroupBox):
    def __init__(self, secrets: SecretStore, parent=None) -> None:
        super().__init__("Judge against people", parent)
        self.setObjectName("judgePanel")
        self.secrets = secrets
        self.ws: Workspace | None = None
        self.report: dict | None = None
        self.calls = Calls(self)
        self.judge_combo = QComboBox(objectName="judgeCombo")
        self.kappa_spin = QDoubleSpinBox(objectName="judgeMinKappa", minimum=0, maximum=1, singleStep=0.05,
                                         value=DEFAULT_MIN_KAPPA)
        self.kappa_spin.setToolTip("Warn when the judge's kappa against people's labels is below this")
        self.refresh_button = QPushButton("Refresh", objectName="judgeRefresh")
        self.figures = QLabel(objectName="judgeFigures")
        self.figures.setWordWrap(True)
        self.figures.setStyleSheet(INFO_STYLE)
        self.warning = QLabel(objectName="judgeWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARN_STYLE)
        self.warning.hide()
        row = QHBoxLayout()
        row.addWidget(self.judge_combo, 1)
        row.addWidget(QLabel("Warn below kappa"))
        row.addWidget(self.kappa_spin)
        row.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.figures)
        layout.addWidget(self.warning)
        self.judge_combo.currentIndexChanged.connect(lambda *_: self.refresh())
        self.kappa_spin.valueChanged.connect(lambda *_: self.refresh())
        self.refresh_button.clicked.connect(self.refresh)

    def set_workspace(self, ws: Workspace | None) -> None:
        self.ws = ws
        self.judge_combo.blockSignals(True)
        self.judge_combo.clear()
        names = [j.name for j in JudgeRepository(ws).list()] if ws is not None else []
        for name in names:
            self.judge_combo.addItem(name, name)
        self.judge_combo.blockSignals(False)
        self.setVisible(bool(names))
        self.refresh()

    def refresh(self) -> None:
        name = self.judge_combo.currentData()
        if self.ws is None or not name:
            self.report = None
            self.figures.setText("No judge; add one with `cascade-studio judge add`.")
            self.warning.hide()
            return
        judge = JudgeRepository(self.ws).get(name)
        if judge is None:
            return
        ws, min_kappa = self.ws, self.kappa_spin.value()

        def compute() -> dict:  # a reader of its own, made on the worker thread (it only reads)
            with ws.reader() as reader:
                return asyncio.run(calibrate(reader, judge, self.secrets, min_kappa=min_kappa, stored_only=True))

        self.calls.start_in_thread("calibration", compute, self.show_report)

    def show_report(self, report: dict) -> None:
        self.report = report
        self.figures.setText(f"Judge {report['judge']} ({report['model']}): " + calibration_sentence(report))
        self.warning.setText("\n".join(f"Warning: {w}" for w in report["warnings"]))
        self.warning.setVisible(bool(report["warnings"]))
