"""Trade-offs page: per-tier figures, the cost-quality curve with its Pareto frontier, threshold
sliders that move the operating point live, router metrics, and monthly what-if scenarios."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.tradeoffs import (
    Outcomes,
    WhatIf,
    operating_point,
    pareto_front,
    router_metrics,
    sweep,
    tier_figures,
)
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.episode_tradeoffs import with_episode_tab
from cascade_studio.ui.fit import tip_headers
from cascade_studio.ui.judged_quality import judged_quality_sentence
from cascade_studio.ui.page import Page, scrolled, splitter
from cascade_studio.ui.strategies_tab import add_strategies_tab
from cascade_studio.ui.style import INFO_STYLE, TIER_COLORS
from cascade_studio.ui.tradeoffs_parts import (
    OutcomesThread,
    bar_plots,
    basis_words,
    fill_mix,
    fill_scenario_table,
    metrics_text,
    mix_argument,
    ms_text,
    read_mix,
)
from cascade_studio.ui.tradeoffs_parts import money_text as _money

_ms = ms_text

log = logging.getLogger(__name__)
GRID = 101


class TradeoffsPage(Page):
    def __init__(self, secrets: Any = None, parent: QWidget | None = None) -> None:
        super().__init__("tradeStatus", parent)
        self.secrets = secrets  # for a judge's requests (quality judged, issue 30)
        self.judging = None  # the ui.judged_quality.QualityJudging under way
        self.quality_judge: dict[str, Any] | None = None  # what the judge did to Quality (`whatif --judge`'s)
        import pyqtgraph as pg

        self.pg = pg
        self.outcomes: Outcomes | None = None
        self.loader: OutcomesThread | None = None  # the outcomes load under way
        self.sw = None
        self.figures: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self._basis: str | None = None  # the quality basis last shown, to warn when it changes
        self._whatif_timer = QTimer(self, singleShot=True, interval=120)
        top = self._build_top()
        bars = self._build_figures()
        self._build_sweep_plot()
        whatif = self._build_whatif()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(bars)
        ll.addWidget(self.plot, 1)
        ll.addWidget(self.plot_legend)
        ll.addLayout(self._build_export_row())
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self._build_sliders())
        rl.addWidget(whatif)
        rl.addWidget(QLabel("Saved scenarios"))
        rl.addWidget(self.scenario_table, 1)
        single = QWidget()  # the tier table across the whole width (every column readable at 1024 px)
        sl = QVBoxLayout(single)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.tier_table)
        sl.addWidget(splitter(Qt.Orientation.Horizontal, [left, scrolled(right)], [760, 460]), 1)
        self.tabs, self.episodes = with_episode_tab(self, single)
        self.strategies = add_strategies_tab(self, self.tabs)  # issue 31: the four approaches side by side
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        self._whatif_timer.timeout.connect(self.update_whatif)
        self.mode_combo.currentIndexChanged.connect(lambda *_: self.recompute())
        self.category_combo.currentIndexChanged.connect(lambda *_: self.refresh())
        self.quality_combo.currentIndexChanged.connect(lambda *_: self._quality_chosen())
        self.refresh_button.clicked.connect(self.refresh)
        QShortcut(QKeySequence("F5"), self, self.refresh)

    def _build_top(self) -> QHBoxLayout:
        self.mode_combo = QComboBox(objectName="mode")
        self.mode_combo.addItem("Cascade (escalate in turn, pay each tier tried)", "cascade")
        self.mode_combo.addItem("Routing (choose one tier up front, pay once)", "routing")
        self.category_combo = QComboBox(objectName="tradeCategory")
        self.quality_combo = QComboBox(objectName="tradeQuality")  # issue 30: quality basis "judged"
        self.quality_combo.setToolTip("Quality as recorded (accuracy or exact agreement with the teacher), or the "
                                      "students' text answers judged against the teacher's (`whatif --judge`); "
                                      "a judge that would be paid shows its estimated cost and asks first")
        self.refresh_button = QPushButton("Refresh", objectName="refreshTradeoffs")
        self.refresh_button.setToolTip("Reload the outcomes from the recorded trajectories (F5)")
        top = QHBoxLayout()
        top.addWidget(QLabel("Mode"))
        top.addWidget(self.mode_combo)
        top.addWidget(QLabel("Category"))
        top.addWidget(self.category_combo)
        top.addWidget(QLabel("Quality"))
        top.addWidget(self.quality_combo)
        top.addStretch(1)
        top.addWidget(self.refresh_button)
        return top

    def _build_figures(self) -> QHBoxLayout:
        """The per-tier table and bar charts."""
        pg = self.pg
        self.tier_table = QTableWidget(0, 7, objectName="tierFigures")
        self.tier_table.setHorizontalHeaderLabels(["Tier", "Requests", "Cost / request", "Cost p95", "Latency p50",
                                                   "Latency p95", "Quality"])
        self.tier_table.verticalHeader().hide()
        self.tier_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.tier_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # no "$0.000…", no two "Latenc…"
        header.setStretchLastSection(True)
        tip_headers(self.tier_table)
        self.tier_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tier_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        bars, self.bar_plots = bar_plots(pg)
        return bars

    def _build_sweep_plot(self) -> None:
        pg = self.pg
        from cascade_studio.ui.plot_axes import clean_axes, legend_label

        self.plot = pg.PlotWidget(background="w", objectName="sweepPlot", axisItems=clean_axes(pg))
        self.plot.setLabel("bottom", "cost per request ($)")
        self.plot.setLabel("left", "quality")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLimits(minYRange=0.05, minXRange=1e-6)  # one point or equal tiers: readable ticks
        self.plot_legend = legend_label([("●", "#969696", "thresholds"), ("━", "#0b5a08", "Pareto frontier"),
                                         ("┅", "#888888", "random routing"), ("■", "#333333", "single tier"),
                                         ("★", "#d13438", "operating point")], "sweepLegend")
        self.cloud = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(150, 150, 150, 70), name="thresholds")
        self.front = pg.PlotDataItem(pen=pg.mkPen("#0b5a08", width=2), name="Pareto frontier")
        self.random_line = pg.PlotDataItem(pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine), name="random routing")
        self.tier_points = pg.ScatterPlotItem(size=12, symbol="s", pen=pg.mkPen("#333"), name="single tier")
        self.current = pg.ScatterPlotItem(size=18, symbol="star", brush=pg.mkBrush("#d13438"), pen=pg.mkPen("#7a1215"),
                                          name="operating point")
        for item in (self.cloud, self.front, self.random_line, self.tier_points, self.current):
            self.plot.addItem(item)
        # The threshold cloud (up to 10,201 points) only changes with the data: cache it as a pixmap so
        # that moving the operating point repaints a star, not ten thousand dots.
        from PySide6.QtWidgets import QGraphicsItem

        self.cloud.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.tier_labels: list[Any] = []

    def _build_sliders(self) -> QGroupBox:
        self.sliders: list[QSlider] = []
        self.slider_labels: list[QLabel] = []
        slider_box = QGroupBox("Operating point")
        sl = QFormLayout(slider_box)
        for i in range(2):
            s = QSlider(Qt.Orientation.Horizontal, objectName=f"threshold{i + 1}")
            s.setRange(0, GRID - 1)
            s.valueChanged.connect(self._slider_moved)
            label = QLabel()
            row = QHBoxLayout()
            row.addWidget(s, 1)
            row.addWidget(label)
            sl.addRow(f"Tier {i + 1} escalates below", row)
            self.sliders.append(s)
            self.slider_labels.append(label)
        self.point_label = QLabel(objectName="pointFigures")
        self.point_label.setWordWrap(True)
        self.metrics_label = QLabel(objectName="routerMetrics")
        self.metrics_label.setTextFormat(Qt.TextFormat.PlainText)
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setStyleSheet(INFO_STYLE)
        self.apply_button = QPushButton("Save thresholds to tiers", objectName="saveThresholds")
        self.apply_button.clicked.connect(self.save_thresholds)
        sl.addRow(self.point_label)
        sl.addRow(self.metrics_label)
        sl.addRow(self.apply_button)
        return slider_box

    def _build_whatif(self) -> QGroupBox:
        self.volume = QDoubleSpinBox(objectName="volume", minimum=0, maximum=1e12, decimals=0, singleStep=100000,
                                     value=1_000_000)
        self.volume.setGroupSeparatorShown(True)
        self.batch = QDoubleSpinBox(objectName="batchDiscount", minimum=0, maximum=0.9, singleStep=0.05)
        self.training = QDoubleSpinBox(objectName="trainingCost", minimum=0, maximum=1e9, decimals=2, singleStep=50)
        self.months = QSpinBox(objectName="amortizeMonths", minimum=1, maximum=120, value=12)
        self.price_spins: dict[int, QDoubleSpinBox] = {}
        self.price_row = QHBoxLayout()
        self.mix_table = QTableWidget(0, 2, objectName="mixTable")
        self.mix_table.setHorizontalHeaderLabels(["Category", "Share of traffic"])
        self.mix_table.verticalHeader().hide()
        self.mix_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.mix_table.setMaximumHeight(110)
        self.whatif_label = QLabel(objectName="whatIfResult")
        self.whatif_label.setWordWrap(True)
        self.save_button = QPushButton("Save scenario…", objectName="saveScenario")
        self.save_button.clicked.connect(self.save_scenario_dialog)
        wf = QGroupBox("What-if (monthly)")
        wl = QFormLayout(wf, rowWrapPolicy=QFormLayout.RowWrapPolicy.WrapLongRows)  # narrow: labels above fields
        for label, field in (("Requests / month", self.volume), ("Price multipliers", self.price_row),
                             ("Batch discount", self.batch), ("Training cost ($)", self.training),
                             ("Amortise over (months)", self.months)):
            wl.addRow(label, field)
        for widget in (self.mix_table, self.whatif_label, self.save_button):
            wl.addRow(widget)
        for w in (self.volume, self.batch, self.training, self.months):
            w.valueChanged.connect(lambda *_: self._whatif_timer.start())
        self.mix_table.itemChanged.connect(lambda *_: self._whatif_timer.start())

        self.scenario_table = QTableWidget(0, 0, objectName="scenarioTable")
        self.scenario_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        return wf

    def _build_export_row(self) -> QHBoxLayout:
        export_row = QHBoxLayout()
        export_row.addWidget(QLabel("Export"))
        for name, text, tip, slot in (
                ("exportPng", "Plot as PNG…", "Export the cost-quality plot as a PNG image",
                 lambda: self.export_plot("png")),
                ("exportSvg", "Plot as SVG…", "Export the cost-quality plot as SVG", lambda: self.export_plot("svg")),
                ("exportCsv", "Data as CSV…", "Export the threshold sweep's data as CSV", lambda: self.export_csv())):
            b = QPushButton(text, objectName=name)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            export_row.addWidget(b)
        export_row.addStretch(1)
        return export_row

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.outcomes is None and self.ws is not None and self.loader is None:
            self.refresh()  # new trajectories may have arrived since the last look

    # -- data ----------------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        self.ws = ws
        self._basis = None
        self.reload_choices()
        self.refresh()

    def reload_choices(self) -> None:
        self.fill(self.category_combo, self.category_items())
        from cascade_studio.store.judges import JudgeRepository

        judges = [(f"Judged by {j.name}", j.name) for j in JudgeRepository(self.ws).list()] if self.ws else []
        self.fill(self.quality_combo, [("As recorded", ""), *judges], default="")

    def _quality_chosen(self) -> None:
        self._basis = None  # the user chose another basis: no "Quality changed" warning for it
        self.refresh()

    def cancel_judged_quality(self, outcomes: Outcomes, tiers: list) -> None:
        """The judge's cost question answered Cancel: quality as recorded, nothing sent."""
        self.judging = None
        self.quality_combo.blockSignals(True)
        self.quality_combo.setCurrentIndex(0)
        self.quality_combo.blockSignals(False)
        self._basis = None
        self._show(outcomes, tiers)
        self.say("Judged quality cancelled: nothing was sent; quality as recorded. " + self.status.text())

    def refresh(self) -> None:
        """Load the outcomes on a worker thread (its own workspace connection; a big workspace takes
        seconds); the figures follow in `_loaded`. A newer refresh supersedes a load under way."""
        self.outcomes = None
        self.judging = self.quality_judge = None  # a judged load under way is dropped (its results ignored)
        if self.loader is not None:  # a load under way is superseded: it stops, its result is ignored
            self.loader.supersede()
        self.loader = None
        if self.ws is None:
            return
        tiers = TierRepository(self.ws).list()
        if len(tiers) < 2:
            self.say("Define at least two tiers (a student and the teacher) on the Tiers page.", error=True)
            return
        self.say("Loading outcomes…")
        self.episodes.reload()
        self.loader = OutcomesThread(self.ws.path, tiers, self.category_combo.currentData(), parent=self)
        self.loader.progress.connect(self._loading)
        self.loader.finished.connect(self._loaded)
        self.loader.start()

    def wait_loaded(self, timeout: float = 60.0) -> bool:
        """Block until the load under way has been shown (tests, benchmarks)."""
        import time

        from PySide6.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while (self.loader is not None or self.judging is not None) and time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.002)
        return self.loader is None and self.judging is None

    def _loading(self, step) -> None:
        if self.sender() is self.loader:
            done, total = step
            self.say(f"Loading outcomes… ({done} of {total} steps)")

    def _loaded(self, outcomes, error) -> None:
        if self.sender() is not self.loader:
            return  # superseded by a newer refresh, or the workspace changed
        tiers = self.loader.tiers
        self.loader.wait(5)
        self.loader = None
        if error:
            self.say(f"Cannot load the outcomes: {error}", error=True)
            return
        if outcomes is None:
            return
        judge_name = self.quality_combo.currentData()
        if judge_name and outcomes.n:
            from cascade_studio.store.judges import JudgeRepository
            from cascade_studio.ui.judged_quality import QualityJudging

            judge = JudgeRepository(self.ws).get(judge_name)
            if judge is None:
                self.say(f"No judge {judge_name!r} any more.", error=True)
                return
            self.judging = QualityJudging(self, judge, outcomes, tiers, self.secrets)
            self.judging.start()
            return
        self._show(outcomes, tiers)

    def _show(self, outcomes: Outcomes, tiers: list) -> None:
        if outcomes.n == 0:
            self.say("No task has trajectories of every tier yet: run each tier on the Trajectories page "
                     "(or evaluate with 'Collect missing').", error=True)
            return
        self.outcomes = outcomes
        k = len(tiers)
        for i, s in enumerate(self.sliders):
            s.setEnabled(i < k - 1)
            s.blockSignals(True)
            if i < k - 1:
                s.setValue(int(round(sorted(tiers, key=lambda t: t.tier)[i].threshold * (GRID - 1))))
            s.blockSignals(False)
        self._build_price_spins(outcomes.tiers)
        self._fill_mix(outcomes)
        notes = [f" Tier {f['tier']} has no confidence for {f['without_confidence']} tasks (no logprobs): it "
                 f"{'keeps those answers' if f['without_confidence_rule'] == 'keeps the answer' else 'escalates them'}."
                 for f in tier_figures(outcomes)[:-1] if f["without_confidence"]]
        basis = outcomes.quality_basis
        changed = ""
        if self._basis is not None and self._basis != basis:
            changed = (f" Note: Quality changed from {basis_words(self._basis)} to {basis_words(basis)} "
                       "(tasks with or without expected answers came or went); earlier figures are not comparable.")
        self._basis = basis
        other = self.load_scenarios()
        if other:
            changed += (f" Saved scenario(s) {', '.join(other)} measured Quality on another basis than today's "
                        f"{basis_words(basis)}: compare their quality with care.")
        self.say(f"{outcomes.n} tasks have outcomes for every tier ({outcomes.excluded} excluded, never imputed). "
                 f"Quality = {basis}"
                 + (" against expected answers." if basis == "accuracy" else " with the teacher.")
                 + judged_quality_sentence(self.quality_judge) + "".join(notes) + changed, error=bool(changed))
        self.recompute()

    def recompute(self) -> None:
        if self.outcomes is None:
            return
        o = self.outcomes
        pg = self.pg
        mode = self.mode_combo.currentData()
        self.figures = tier_figures(o)
        quality_header = QTableWidgetItem(f"Quality ({basis_words(o.quality_basis)})")
        quality_header.setToolTip("Accuracy against the tasks' expected answers" if o.quality_basis == "accuracy"
                                  else "Agreement with the teacher (not every task has an expected answer)")
        self.tier_table.setHorizontalHeaderItem(6, quality_header)
        tip_headers(self.tier_table)
        self.tier_table.setRowCount(len(self.figures))
        for r, f in enumerate(self.figures):
            for c, v in enumerate([f"Tier {f['tier']}", str(f["requests"]), _money(f["cost_per_request_usd"]),
                                   _money(f["cost_p95_usd"]), _ms(f["latency_p50_ms"]),
                                   _ms(f["latency_p95_ms"]), f"{f['quality']:.0%}"]):
                self.tier_table.setItem(r, c, QTableWidgetItem(v))
        self.tier_table.resizeRowsToContents()
        self.tier_table.setFixedHeight(self.tier_table.horizontalHeader().sizeHint().height()
                                       + self.tier_table.verticalHeader().length() + 2 * self.tier_table.frameWidth())
        for plot, key in zip(self.bar_plots, ("cost_per_request_usd", "latency_p95_ms", "quality"), strict=True):
            plot.clear()
            xs = np.arange(len(self.figures))
            ys = [f[key] or 0 for f in self.figures]
            plot.addItem(pg.BarGraphItem(x=xs, height=ys, width=0.6, brushes=TIER_COLORS[-len(xs):]))
            plot.getAxis("bottom").setTicks([[(i, f"T{f['tier']}") for i, f in enumerate(self.figures)]])
            plot.setXRange(-0.5, len(xs) - 0.5, padding=0.02)  # every tier's bar, however narrow the plot
        self.sw = sweep(o, np.linspace(0, 1, GRID), mode)
        cost, quality = np.ravel(self.sw.cost), np.ravel(self.sw.quality)
        self.cloud.setData(cost, quality)
        front = pareto_front(self.sw.cost, self.sw.quality)
        self.front.setData(cost[front], quality[front])
        tier_c = [f["cost_per_request_usd"] for f in self.figures]
        tier_q = [f["quality"] for f in self.figures]
        self.tier_points.setData(tier_c, tier_q, brush=[pg.mkBrush(c) for c in TIER_COLORS[-len(tier_c):]])
        self.random_line.setData([tier_c[0], tier_c[-1]], [tier_q[0], tier_q[-1]])
        for label in self.tier_labels:
            self.plot.removeItem(label)
        self.tier_labels = []
        for f in self.figures:
            right = f is not self.figures[-1]  # beside its point; the teacher's (top right) on its left
            label = pg.TextItem(f"tier {f['tier']}", color="#333", anchor=(-0.15, 0.5) if right else (1.15, 0.5))
            label.setPos(f["cost_per_request_usd"], f["quality"])
            self.plot.addItem(label)
            self.tier_labels.append(label)
        self.metrics = router_metrics(o, mode)
        self.metrics_label.setText(metrics_text(self.metrics))
        self._slider_moved()

    def thresholds(self) -> list[float]:
        k = len(self.outcomes.tiers) if self.outcomes else 2
        return [self.sliders[i].value() / (GRID - 1) for i in range(k - 1)]

    def _slider_moved(self, *_: Any) -> None:
        if self.outcomes is None or self.sw is None:
            return
        th = self.thresholds()
        for i, label in enumerate(self.slider_labels):
            label.setText(f"{self.sliders[i].value() / (GRID - 1):.2f}" if i < len(th) else "")
        at = tuple(self.sliders[i].value() for i in range(len(th)))
        # Immediate feedback from the precomputed grid (exact at grid points, O(1)); the full
        # simulation (p95 latency, shares per tier) and the what-if follow once the slider rests.
        self.current.setData([float(self.sw.cost[at])], [float(self.sw.quality[at])])
        self.point_label.setText(
            f"<b>{_money(float(self.sw.cost[at]))}</b> per request · quality <b>{float(self.sw.quality[at]):.1%}</b>"
            f" · mean latency {float(self.sw.latency[at]):,.0f} ms · escalated past tier 1: "
            f"{float(self.sw.escalation[at]):.0%}")
        self._whatif_timer.start()

    def _show_point_details(self, c: dict[str, Any]) -> None:
        self.point_label.setText(
            f"<b>{_money(c['cost_per_request_usd'])}</b> per request · quality <b>{c['quality']:.1%}</b> · latency "
            f"p95 <b>{_ms(c['latency_p95_ms'])}</b> · escalated past each tier: "
            + ", ".join(f"{e:.0%}" for e in c["escalation_rate"])
            + " · answered by each tier: " + ", ".join(f"{a:.0%}" for a in c["answered_share"]))

    # -- what-if -------------------------------------------------------------------------------
    def _build_price_spins(self, tiers: list[int]) -> None:
        while self.price_row.count():
            item = self.price_row.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.price_spins = {}
        for tier in tiers:
            spin = QDoubleSpinBox(minimum=0, maximum=100, singleStep=0.1, value=1.0, prefix=f"T{tier} ×")
            spin.valueChanged.connect(lambda *_: self._whatif_timer.start())
            self.price_row.addWidget(spin)
            self.price_spins[tier] = spin

    def _fill_mix(self, o: Outcomes) -> None:
        fill_mix(self.mix_table, o)

    def scenario(self) -> WhatIf:
        """The what-if's inputs, as `whatif` takes them: an unedited mix and unit prices are the
        CLI's defaults (None), not their rounded display."""
        scale = {t: s.value() for t, s in self.price_spins.items() if s.value() != 1.0}
        return WhatIf(monthly_volume=self.volume.value(), mix=read_mix(self.mix_table), price_scale=scale or None,
                      batch_discount=self.batch.value(), training_cost_usd=self.training.value(),
                      amortize_months=self.months.value())

    def cli_arguments(self) -> list[str]:
        """The `whatif` arguments that print this page's figures (`whatif ... --json`)."""
        sc, args = self.scenario(), ["whatif", "--mode", self.mode_combo.currentData()]
        args += ["--thresholds", ",".join(f"{t:g}" for t in self.thresholds()), "--volume", f"{sc.monthly_volume:.0f}"]
        if self.category_combo.currentData():
            args += ["--category", self.category_combo.currentData()]
        if self.quality_judge is not None:
            args += ["--judge", self.quality_combo.currentData()]
        if sc.mix is not None:
            args += ["--mix", mix_argument(sc.mix)]
        if sc.price_scale:
            args += ["--price-scale", ",".join(f"{t}={v:g}" for t, v in sc.price_scale.items())]
        if sc.batch_discount:
            args += ["--batch-discount", f"{sc.batch_discount:g}"]
        if sc.training_cost_usd:
            args += ["--training-cost", f"{sc.training_cost_usd:g}", "--amortize-months", str(sc.amortize_months)]
        return args

    def update_whatif(self) -> dict[str, Any] | None:
        """The operating point and the monthly what-if, from `tradeoff_report`'s own parts (what
        `whatif --json` prints for the same inputs: `cli_arguments`)."""
        if self.outcomes is None:
            return None
        # tradeoff_report's parts: the tier figures (`recompute`) and the part that moves with the sliders
        self.report = {"tiers": self.figures,
                       **operating_point(self.outcomes, self.thresholds(), self.scenario(), self.mode_combo.currentData())}
        self._show_point_details(self.report["cascade"])
        result = self.report["whatif"]
        be = "never (no saving)" if result["break_even_month"] is None else (
            "immediately" if result["break_even_month"] == 0 else f"month {result['break_even_month']}")
        self.whatif_label.setText(
            f"Monthly cost <b>{_money(result['monthly_cost_usd'], 2)}</b> (run {_money(result['monthly_run_cost_usd'], 2)}"
            f" + training {_money(result['monthly_training_usd'], 2)}) vs teacher-only "
            f"{_money(result['teacher_only_monthly_usd'], 2)}: saves <b>{_money(result['monthly_savings_usd'], 2)}"
            f"</b> a month; break-even {be}. Latency p95 {_ms(result['latency_p95_ms'])}; quality "
            f"{result['quality']:.1%} (teacher {result['teacher_quality']:.1%}).")
        self.whatif_label.setToolTip("The same figures from the command line:\ncascade-studio "
                                     + " ".join(shlex.quote(a) for a in self.cli_arguments()) + " --json")
        self.last_whatif = result
        return result

    def save_scenario_dialog(self) -> None:
        name, ok = QInputDialog.getText(self, "Save scenario", "Scenario name:")
        if ok and name.strip():
            self.save_scenario(name.strip())

    def save_scenario(self, name: str) -> None:
        from cascade_studio.services.tradeoffs import save_scenario

        result = self.update_whatif()
        if result is None or self.ws is None:
            return
        save_scenario(self.ws, name, {"mode": self.mode_combo.currentData(), "thresholds": self.thresholds(),
                                      **self.scenario().to_json()}, result, self.outcomes.quality_basis)
        self.load_scenarios()

    def load_scenarios(self) -> list[str]:
        """Fill the scenario table; returns the names of scenarios saved on another quality basis."""
        from cascade_studio.services.tradeoffs import list_scenarios

        items = list_scenarios(self.ws) if self.ws else []
        return fill_scenario_table(self.scenario_table, items,
                                   self.outcomes.quality_basis if self.outcomes is not None else None)

    def save_thresholds(self) -> None:
        if self.ws is None or self.outcomes is None:
            return
        from cascade_studio.services.tier_service import save_tiers

        tiers = sorted(TierRepository(self.ws).list(), key=lambda t: t.tier)
        values = dict(zip((t.tier for t in tiers[:-1]), self.thresholds(), strict=False))
        # one change of the tier set (one Edit > Undo puts every threshold back), and the pages hear of it
        save_tiers(self.ws, [t.replace(threshold=round(values[t.tier], 4)) if t.tier in values else t for t in tiers])
        self.say("Saved the thresholds to the tiers: " + ", ".join(f"tier {t.tier} < {v:.2f}" for t, v in
                                                                     zip(tiers[:-1], self.thresholds(), strict=False)))

    # -- export --------------------------------------------------------------------------------
    def export_plot(self, kind: str, path: str | None = None) -> Path | None:
        from cascade_studio.ui.plot_export import export_plot_dialog

        return export_plot_dialog(self, self.plot, kind, path)

    def export_csv(self, path: str | None = None) -> Path | None:
        from cascade_studio.ui.plot_export import export_csv_dialog

        return None if self.sw is None else export_csv_dialog(self, self.sw, path)
