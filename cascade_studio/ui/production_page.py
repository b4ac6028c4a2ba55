"""Production page: the gateway's traffic brought home (`traffic import`): requests over time, the
share answered per tier, cost against teacher-only, latency, live agreement from shadow samples with
the drift warning, and the hard cases with their one action: collect the teacher's answers for them
and build the next dataset. The figures are services.traffic.report's (as `traffic report --json`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.production import ProductionRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.page import Page
from cascade_studio.ui.run_thread import Worker
from cascade_studio.ui.style import WARN_STYLE, styled_label

log = logging.getLogger(__name__)


class TrafficImportThread(Worker):
    def __init__(self, workspace_dir: Path, path: Path) -> None:
        super().__init__(workspace_dir, "traffic-import")
        self.path = path

    async def work(self, ws: Workspace) -> Any:
        from cascade_studio.services.traffic import import_traffic

        return import_traffic(ws, self.path, lambda done, of: self.emit_progress(f"Imported {done} of {of} files…"))


class HardCaseThread(Worker):
    def __init__(self, workspace_dir: Path, secrets: SecretStore, dataset: Path) -> None:
        super().__init__(workspace_dir, "hard-cases")
        self.secrets, self.dataset = secrets, dataset

    async def work(self, ws: Workspace) -> Any:
        from cascade_studio.services.hard_cases import collect_hard_cases

        return await collect_hard_cases(ws, self.secrets, self.dataset, on_progress=lambda p: self.emit_progress(
            f"Collecting the teacher's answers: {p.done} of {p.total}…"))


class ProductionPage(Page):
    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__("productionStatus", parent)
        self.secrets = secrets
        self.worker: Worker | None = None
        self.figures: dict[str, Any] | None = None
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_bar())
        self.summary = styled_label("productionSummary")
        self.drift_warning = styled_label("productionDrift", WARN_STYLE, hidden=True)
        layout.addWidget(self.summary)
        layout.addWidget(self.drift_warning)
        row = QHBoxLayout()
        row.addWidget(self._build_plot(), 3)
        row.addWidget(self._build_tiers(), 2)
        layout.addLayout(row, 1)
        layout.addWidget(self._build_hard_cases(), 1)
        layout.addWidget(self.status)

    # -- builders --------------------------------------------------------------------------------
    def _build_bar(self) -> QHBoxLayout:
        self.import_button = QPushButton("Import gateway logs…", objectName="importTraffic")
        self.import_button.setToolTip("Read the gateway's --log folder (cascade-studio traffic import DIR)")
        self.import_button.clicked.connect(self.import_dialog)
        self.alert_spin = QDoubleSpinBox(objectName="productionAlert", minimum=0, maximum=1, singleStep=0.05,
                                         value=0.8)
        self.alert_spin.setToolTip("Warn when live agreement with the teacher falls below this share")
        self.alert_spin.valueChanged.connect(lambda _: self.refresh())
        bar = QHBoxLayout()
        bar.addWidget(self.import_button)
        bar.addStretch(1)
        bar.addWidget(QLabel("Alert below"))
        bar.addWidget(self.alert_spin)
        return bar

    def _build_plot(self) -> QWidget:
        import pyqtgraph as pg

        from cascade_studio.ui.plot_axes import clean_axes

        self.plot = pg.PlotWidget(objectName="requestsPlot",
                                  axisItems={"left": clean_axes(pg)["left"], "bottom": pg.DateAxisItem()})
        self.plot.setBackground("w")
        self.plot.setLabel("left", "requests per hour")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.bars = pg.BarGraphItem(x=[], height=[], width=3000, brush="#0f6cbd")
        self.plot.addItem(self.bars)
        import time

        self.plot.setXRange(time.time() - 86400, time.time(), padding=0)  # empty: the last day, read as times
        return self.plot

    def _build_tiers(self) -> QGroupBox:
        self.tier_table = QTableWidget(0, 3, objectName="answeredShare")
        self.tier_table.setHorizontalHeaderLabels(["Tier", "Answered", "Live agreement"])
        self.tier_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tier_table.horizontalHeader().setStretchLastSection(True)
        self.tier_table.verticalHeader().hide()
        box = QGroupBox("Share answered per tier")
        QVBoxLayout(box).addWidget(self.tier_table)
        return box

    def _build_hard_cases(self) -> QGroupBox:
        self.hard_table = QTableWidget(0, 4, objectName="hardCases")
        self.hard_table.setHorizontalHeaderLabels(["Task", "Category", "Requests", "Last seen (UTC)"])
        self.hard_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.hard_table.verticalHeader().hide()
        self.collect_button = QPushButton("Collect teacher answers and build the next dataset…",
                                          objectName="collectHardCases")
        self.collect_button.setToolTip("Ask the teacher for every hard case it has not answered yet, then build a "
                                       "fine-tuning dataset from the teacher's trajectories")
        self.collect_button.clicked.connect(self.collect_dialog)
        box = QGroupBox("Hard cases (requests the cascade escalated)")
        lay = QVBoxLayout(box)
        lay.addWidget(self.hard_table)
        lay.addWidget(self.collect_button, 0, Qt.AlignmentFlag.AlignRight)
        return box

    # -- the workspace ---------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        self.ws = ws
        self.refresh()

    def reload_choices(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        from cascade_studio.services.traffic import report

        if self.ws is None:
            self.figures = None
            return
        f = self.figures = report(self.ws, self.alert_spin.value())
        if not f["requests"]:
            self.summary.setText("No production traffic yet. Serve the policy with `cascade-studio serve --policy "
                                 "FILE --log DIR --log-content full`, then import the log folder here.")
        else:
            saved = f"{f['savings_share']:.0%} less" if f["savings_share"] is not None else "n/a"
            p95 = "n/a" if f["latency_p95_ms"] is None else f"{f['latency_p95_ms']:.0f} ms"
            self.summary.setText(
                f"{f['requests']:,} requests ({f['failed']} failed), {f['escalated']:,} requests escalated. Cost "
                f"${float(f['cost_usd']):,.4f} against ${float(f['teacher_only_usd']):,.4f} teacher-only ({saved}). "
                f"Latency p95 {p95}. {f['hard_cases']} hard cases (tasks with an escalated request)"
                + (f"; {f['hard_cases_without_content']} more escalated requests logged without content"
                   if f["hard_cases_without_content"] else "") + ".")
        self.drift_warning.setText("\n".join(f["drift_warnings"]))
        self.drift_warning.setVisible(bool(f["drift_warnings"]))
        self._show_series(f["series"])
        self._show_tiers(f)
        self._show_hard_cases()
        self.collect_button.setEnabled(self.hard_table.rowCount() > 0 and self.worker is None)

    def _show_series(self, series: list[tuple[str, int]]) -> None:
        import datetime as dt

        xs = [dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t, _ in series]
        self.bars.setOpts(x=xs, height=[n for _, n in series], width=3000)

    def _show_tiers(self, f: dict[str, Any]) -> None:
        shares = f["answered_share"]
        self.tier_table.setRowCount(len(shares))
        for row, (tier, share) in enumerate(shares.items()):
            live = f["live_agreement"].get(tier)
            cells = [f"Tier {tier}", f"{share:.1%}",
                     "—" if live is None else f"{live['agreement']:.0%} of {live['samples']} samples"]
            for col, text in enumerate(cells):
                self.tier_table.setItem(row, col, QTableWidgetItem(text))

    def _show_hard_cases(self) -> None:
        rows = ProductionRepository(self.ws).hard_cases(limit=1000) if self.ws else []
        self.hard_table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for col, text in enumerate([r["task_id"], r["category"], str(r["requests"]), r["last_seen"]]):
                self.hard_table.setItem(i, col, QTableWidgetItem(text))

    # -- actions ---------------------------------------------------------------------------------
    def import_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Gateway log folder (--log DIR)")
        if folder:
            self.import_logs(Path(folder))

    def import_logs(self, path: Path) -> None:
        self._start(TrafficImportThread(self.ws.path, path), "Importing gateway logs…",
                    lambda result: f"Imported {result}." + "".join(f" Warning: {n}." for n in result.notes))

    def collect_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Next dataset", "next-dataset.jsonl", "JSONL (*.jsonl)")
        if name:
            self.collect_and_build(Path(name))

    def collect_and_build(self, dataset: Path) -> None:
        self._start(HardCaseThread(self.ws.path, self.secrets, dataset), "Collecting the teacher's answers…",
                    lambda r: f"{r.hard_cases} hard cases: {r.collected} teacher answers collected, {r.failed} failed; "
                              f"dataset {r.dataset.path.name} with {r.dataset.examples} examples "
                              f"({r.dataset.validation_examples} for validation).")

    def _start(self, worker: Worker, message: str, done_text) -> None:
        if self.ws is None or self.worker is not None:
            return
        self.worker = worker
        self.import_button.setEnabled(False)
        self.collect_button.setEnabled(False)
        self.say(message)
        worker.progress.connect(lambda text: self.say(str(text)))

        def finished(result: Any, error: str | None) -> None:
            self.worker = None
            self.import_button.setEnabled(True)
            if error:
                self.say(error, error=True)
            elif result is not None:
                self.say(done_text(result))
            self.refresh()

        worker.finished.connect(finished)
        worker.start()
