"""The Trade-offs page's "Agent episodes" tab: the per-step cascade (services.agent.tradeoffs).

A student tier acts at every step of an episode; below its threshold that step (policy "step")
or the rest of the episode (policy "rest") goes up a tier. The rows (the teacher's episodes and the
students' teacher-forced steps) load on a worker thread; moving a threshold recomputes in memory.
Every figure is an estimate from teacher-forced steps, and the tab says so; the students' measured
free-running success is shown beside it when it exists."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.tiers import Tier
from cascade_studio.services.agent import tradeoffs as agent_tradeoffs
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls
from cascade_studio.ui.style import INFO_STYLE


def with_episode_tab(page: Any, single: QWidget) -> tuple[QTabWidget, EpisodeTradeoffs]:
    """The Trade-offs page's two tabs: single requests (`single`) and agent episodes, loaded when shown."""
    episodes = EpisodeTradeoffs(page)
    tabs = QTabWidget(objectName="tradeTabs")
    tabs.addTab(single, "Single requests")
    tabs.addTab(episodes, "Agent episodes (per-step cascade)")
    tabs.currentChanged.connect(lambda *_: episodes.reload())
    return tabs, episodes


class EpisodeTradeoffs(QWidget):
    def __init__(self, page: Any) -> None:
        super().__init__(page)
        self.page = page
        self._stale = True
        import pyqtgraph as pg

        self.ws: Workspace | None = None
        self.tiers: list[Tier] = []
        self.rows: list[Any] = []
        self.calls = Calls(self)
        self.policy = QComboBox(objectName="episodePolicy")
        self.policy.addItem("Escalate the step (policy: step)", "step")
        self.policy.addItem("Escalate the rest of the episode (policy: rest)", "rest")
        self.volume = QSpinBox(objectName="episodeVolume", minimum=1, maximum=1_000_000_000, singleStep=10_000,
                               value=100_000, suffix=" episodes / month")
        self.volume.setGroupSeparatorShown(True)
        self.basis = QLabel(agent_tradeoffs.BASIS[0].upper() + agent_tradeoffs.BASIS[1:] + ".", wordWrap=True,
                            objectName="episodeBasis")
        self.basis.setStyleSheet(INFO_STYLE)
        self.summary = QLabel(objectName="episodeSummary", wordWrap=True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.measured = QLabel(objectName="episodeMeasured", wordWrap=True)  # beside the estimates, as the CLI
        self.measured.setStyleSheet(INFO_STYLE)
        self.sliders_box = QGroupBox("Thresholds (per student tier)")
        self.sliders_form = QFormLayout(self.sliders_box)
        self.sliders: list[tuple[QSlider, QLabel]] = []
        from cascade_studio.ui.plot_axes import clean_axes, legend_label

        self.plot = pg.PlotWidget(objectName="episodeSweep", axisItems=clean_axes(pg))
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "cost per episode ($)")
        self.plot.setLabel("left", "step agreement")
        self.plot.setLimits(minYRange=0.05, minXRange=1e-6)
        self.legend = legend_label([("━", "#0f6cbd", "sweep: tier 1 and the teacher"), ("●", "#0f6cbd", "Pareto front"),
                                    ("★", "#c50f1f", "operating point (every tier at its threshold)")], "episodeLegend")
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#0f6cbd", width=2), name="sweep: tier 1 and the teacher")
        self.front = self.plot.plot([], [], pen=None, symbol="o", symbolSize=5, symbolBrush="#0f6cbd",
                                    name="Pareto front")
        self.point = self.plot.plot([], [], pen=None, symbol="star", symbolSize=16, symbolBrush="#c50f1f",
                                    name="operating point (every tier at its threshold)")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Policy"))
        controls.addWidget(self.policy)
        controls.addWidget(QLabel("Volume"))
        controls.addWidget(self.volume)
        controls.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.sliders_box)
        right.addWidget(self.summary)
        right.addWidget(self.measured)
        right.addStretch(1)
        plot_box = QVBoxLayout()
        plot_box.addWidget(self.plot, 1)
        plot_box.addWidget(self.legend)
        body = QHBoxLayout()
        body.addLayout(plot_box, 3)
        body.addLayout(right, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.basis)
        layout.addLayout(body, 1)
        self.policy.currentIndexChanged.connect(lambda *_: self.recompute(sweep=True))
        self.volume.valueChanged.connect(lambda *_: self.recompute())

    def reload(self) -> None:
        """Load again now if the tab is showing, else the next time it is shown (the page's Refresh,
        a new category or workspace)."""
        self._stale = True
        if self.isVisible():
            self._stale = False
            page = self.page
            self.load(page.ws, page.tiers(), page.category_combo.currentData())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._stale:
            self.reload()

    def load(self, ws: Workspace | None, tiers: list[Tier], category: str | None = None) -> None:
        """Load the rows on a worker thread, with its own connection to the workspace."""
        self.ws, self.tiers = ws, tiers
        self._build_sliders()
        if ws is None or len(tiers) < 2:
            self.rows = []
            self.measured.setText("")
            self.summary.setText("Define a student and a teacher tier first.")
            return
        self.summary.setText("Loading the episodes…")
        self.measured.setText("")  # the previous load's line would read as this one's
        path = ws.path

        def work() -> tuple[list[Any], int, dict[str, Any] | None]:
            with Workspace.open(path, create=False, check="none") as own:
                rows, tasks = agent_tradeoffs.load_rows(own, tiers, category)
                return rows, tasks, agent_tradeoffs.measured_free_running(own, tiers, rows) if rows else None

        self.calls.start_in_thread("load", work, on_done=self._loaded, on_error=lambda e: self.summary.setText(f"✖ {e}"))

    def _build_sliders(self) -> None:
        while self.sliders_form.rowCount():
            self.sliders_form.removeRow(0)
        self.sliders = []
        for tier in self.tiers[:-1]:
            slider = QSlider(Qt.Orientation.Horizontal, objectName=f"episodeThreshold{tier.tier}")
            slider.setRange(0, 100)
            slider.setValue(round(tier.threshold * 100))
            label = QLabel(f"{tier.threshold:.2f}")
            slider.valueChanged.connect(lambda v, lab=label: (lab.setText(f"{v / 100:.2f}"), self.recompute()))
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(label)
            self.sliders_form.addRow(f"Tier {tier.tier} ({tier.model})", row)
            self.sliders.append((slider, label))

    def _loaded(self, result: tuple[list[Any], int, dict[str, Any] | None]) -> None:
        self.rows, tasks, measured = result
        self.measured.setText("" if measured is None else
                              f"Measured, free-running: tier {measured['tier']} succeeds on "
                              f"{measured['student_success_rate']:.0%} of {measured['tasks']} episodes (teacher "
                              f"{measured['teacher_success_rate']:.0%}).")
        if not tasks:
            self.summary.setText("No agent episode tasks in this workspace (tasks that name an environment).")
        elif not self.rows:
            self.summary.setText(agent_tradeoffs.NO_ROWS)
        self.recompute(sweep=True)

    def thresholds(self) -> list[float]:
        return [s.value() / 100 for s, _ in self.sliders]

    def recompute(self, sweep: bool = False) -> dict[str, Any] | None:
        if not self.rows or len(self.tiers) < 2:
            for item in (self.curve, self.front, self.point):
                item.setData([], [])
            return None
        out = agent_tradeoffs.figures(self.rows, self.tiers, self.thresholds(), self.policy.currentData(),
                                      float(self.volume.value()), with_sweep=sweep)
        c, w = out["cascade"], out["whatif"]
        shares = ", ".join(f"tier {k} {v:.0%}" for k, v in c["share_answered"].items())
        self.summary.setText(
            f"<b>{len(self.rows)} episodes</b> · ${c['cost_per_episode_usd']} per episode "
            f"(teacher only ${out['teacher_only']['cost_per_episode_usd']})<br>"
            f"Steps answered: {shares}<br>Step agreement {c['step_agreement']:.1%} · episodes with every step "
            f"agreeing {c['episode_agreement']:.1%} <i>(estimates)</i><br>"
            f"<b>{w['volume_episodes_per_month']:,.0f} episodes a month: ${float(w['monthly_cost_usd']):,.2f}</b> "
            f"(teacher only ${float(w['teacher_only_monthly_cost_usd']):,.2f})")
        if sweep and "sweep" in out:
            points = out["sweep"]
            xs = [float(p["cost_per_episode_usd"]) for p in points]
            ys = [p["step_agreement"] or 0.0 for p in points]
            self.curve.setData(xs, ys)
            front = set(out["pareto"])
            self.front.setData([x for x, p in zip(xs, points, strict=True) if p["threshold"] in front],
                               [y for y, p in zip(ys, points, strict=True) if p["threshold"] in front])
        self.point.setData([float(c["cost_per_episode_usd"])], [c["step_agreement"] or 0.0])
        return out
