"""Evaluation page, part 2: the evaluation history (which generations each evaluation measured),
agreement over time (a date axis; a legend once there are several students), the drift warning,
and the comparison of a student's current generation with its previous one on the same tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.tiers import Tier, generation_keys
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.fit import tip_headers
from cascade_studio.ui.style import PALETTE, WARN_STYLE, show_status, styled_label


class EvaluationChoices(Protocol):
    """What the history needs of its page (the Evaluation page): the workspace, the tiers and the
    teacher, student and tasks chosen there. No more: this module does not import that page."""

    ws: Workspace | None
    secrets: SecretStore
    teacher_combo: QComboBox
    student_combo: QComboBox

    def tiers(self) -> list[Tier]: ...

    def tier(self, number: int | None) -> Tier | None: ...

    def chosen_task_ids(self) -> list[str]: ...

HEADERS = ["When", "Student", "Generation", "Teacher", "Tasks", "Agreement"]


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def local_time(created_at: str) -> str:
    """Stored UTC, shown in local time."""
    return dt.datetime.fromisoformat(created_at).astimezone().strftime("%Y-%m-%d %H:%M")


class HistoryPanel(QGroupBox):
    def __init__(self, page: EvaluationChoices) -> None:
        super().__init__("Agreement over time")
        self.page = page
        self.plot = None  # pyqtgraph (and numpy) load when the page is first shown: ~1.5 s off startup
        self._curves: dict[int, Any] = {}
        self.worker = None  # the generation comparison under way
        self.comparison = None
        self.alert_spin = QDoubleSpinBox(objectName="alertLevel", minimum=0, maximum=1, singleStep=0.05, value=0.8)
        self.alert_spin.valueChanged.connect(lambda _: self.refresh())
        self.drift_warning = styled_label("driftWarning", WARN_STYLE, hidden=True)
        self.table = QTableWidget(0, len(HEADERS), objectName="evalHistory")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        tip_headers(self.table)
        self.table.setMinimumHeight(110)
        self.compare_button = QPushButton("Compare with previous generation", objectName="compareGenerations")
        self.compare_button.setToolTip("The student's current generation and its previous one (another model, "
                                       "prompt or endpoint), each against the teacher, on the tasks both answered")
        self.compare_button.clicked.connect(self.compare)
        self.compare_result = styled_label("compareResult")
        self._plot_holder = QVBoxLayout()
        self._plot_holder.setContentsMargins(0, 0, 0, 0)
        holder = QWidget()
        holder.setLayout(self._plot_holder)
        holder.setMinimumHeight(150)  # the plot comes later (first shown): the splitter must not size it to 0
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(holder)
        self.split.addWidget(self.table)
        self.split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Alert below"))
        row.addWidget(self.alert_spin)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.drift_warning)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.compare_button)
        layout.addWidget(self.compare_result)

    def ensure_plot(self):
        if self.plot is None:
            import pyqtgraph as pg

            self.plot = pg.PlotWidget(background="w", axisItems={"bottom": pg.DateAxisItem()})
            self.plot.setObjectName("driftPlot")
            self.plot.setLabel("left", "agreement")
            self.plot.setYRange(0, 1.05)
            self.plot.showGrid(x=True, y=True, alpha=0.2)
            self.plot.setMinimumHeight(150)
            self._alert_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#d13438", style=Qt.PenStyle.DashLine))
            self.plot.addItem(self._alert_line)
            self._plot_holder.addWidget(self.plot)
            from cascade_studio.ui.plot_axes import legend_label

            self.legend = legend_label([], "driftLegend")  # under the plot: never over the points
            self.legend.hide()
            self._plot_holder.addWidget(self.legend)
        return self.plot

    def refresh(self) -> None:
        """The warning, the table and the curves, from the stored history."""
        from cascade_studio.store.evaluations import drift_warning, history

        ws = self.page.ws
        if ws is None:
            self.table.setRowCount(0)
            return
        rows = history(ws)
        tiers = {t.tier: t for t in self.page.tiers()}
        warnings = []
        for number in sorted({r["student_tier"] for r in rows}):
            # a tier's current generation only: an older model's (or a candidate's) figures are not its drift
            keys = generation_keys(tiers[number]) if number in tiers else None
            w = drift_warning(ws, number, self.alert_spin.value(), keys)
            if w:
                warnings.append(w)
        self.drift_warning.setText("\n".join(warnings))
        self.drift_warning.setVisible(bool(warnings))
        self._fill_table(rows)
        if self.plot is not None:
            self._draw(rows)

    def _fill_table(self, rows: list[dict[str, Any]]) -> None:
        self.table.setRowCount(len(rows))
        for i, r in enumerate(reversed(rows)):  # newest first
            values = [local_time(r["created_at"]), f"tier {r['student_tier']} · {r['student_model']}",
                      r["student_generation"] or "unknown",
                      f"tier {r['teacher_tier']} · {r['teacher_model']} · {r['teacher_generation'] or 'unknown'}",
                      str(r["tasks"]), _pct(r["agreement"])]
            tips = [r["created_at"] + " UTC", None, "The generation measured (model, endpoint, prompt, temperature)",
                    "The teacher and its generation", r["category"] or "all tasks", None]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setToolTip(tips[c] or v)
                item.setData(Qt.ItemDataRole.UserRole, r["id"])
                self.table.setItem(i, c, item)
        self.table.resizeColumnsToContents()

    def _draw(self, rows: list[dict[str, Any]]) -> None:
        import pyqtgraph as pg

        self._alert_line.setValue(self.alert_spin.value())
        by_tier: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            if r["agreement"] is not None:
                by_tier.setdefault(r["student_tier"], []).append(r)
        for i, (tier, points) in enumerate(sorted(by_tier.items())):
            xs = [dt.datetime.fromisoformat(p["created_at"]).timestamp() for p in points]
            ys = [p["agreement"] for p in points]
            curve = self._curves.get(tier)
            if curve is None:
                color = PALETTE[i % len(PALETTE)]
                curve = self.plot.plot([], [], pen=pg.mkPen(color, width=2), symbol="o", symbolBrush=color)
                curve.color = color
                self._curves[tier] = curve
            curve.setData(xs, ys)
        times = [dt.datetime.fromisoformat(r["created_at"]).timestamp() for r in rows if r["agreement"] is not None]
        if times:  # at least an hour in view: the date axis shows dates and times, not seconds
            pad = max(1800.0, 0.05 * (max(times) - min(times)))
            self.plot.setXRange(min(times) - pad, max(times) + pad, padding=0)
        else:  # nothing yet: the last day, so the empty axis reads as times, not "00.500"
            now = dt.datetime.now(dt.UTC).timestamp()
            self.plot.setXRange(now - 86400, now, padding=0)
        for tier in set(self._curves) - set(by_tier):  # a workspace without this tier's evaluations
            self.plot.removeItem(self._curves.pop(tier))
        from cascade_studio.ui.plot_axes import set_legend

        set_legend(self.legend, [("━●", c.color, f"tier {t}") for t, c in sorted(self._curves.items())])
        self.legend.setVisible(len(self._curves) > 1)  # one series needs no legend

    # -- old generation against new --------------------------------------------------------------
    def compare(self) -> None:
        from cascade_studio.services.generation_compare import compare_generations
        from cascade_studio.ui.run_thread import ServiceThread

        page = self.page
        if page.ws is None or self.worker is not None:
            return
        teacher = page.tier(page.teacher_combo.currentData())
        student = page.tier(page.student_combo.currentData())
        if teacher is None or student is None or teacher.tier == student.tier:
            show_status(self.compare_result, "Choose one student tier (not 'All student tiers') and its teacher "
                        "above, then compare.", error=True)
            return
        task_ids = page.chosen_task_ids()
        secrets = page.secrets

        async def work(ws):
            return await compare_generations(ws, teacher, student, secrets, task_ids=task_ids)

        self.compare_button.setEnabled(False)
        show_status(self.compare_result, f"Comparing tier {student.tier}'s generations…")
        self.worker = ServiceThread(page.ws.path, "generation-compare", work, parent=self)
        self.worker.finished.connect(self._compared)
        self.worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(5)
            self.worker = None
            self.compare_button.setEnabled(True)

    def _compared(self, comparison, error) -> None:
        if self.sender() is not self.worker:
            return  # cancelled when the workspace changed
        self.worker.wait(5)
        self.worker = None
        self.compare_button.setEnabled(True)
        if error:
            show_status(self.compare_result, f"No comparison: {error.rstrip('.')}.", error=True)
            return
        self.comparison = comparison
        show_status(self.compare_result, comparison.sentence())
