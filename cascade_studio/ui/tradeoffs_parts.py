"""Trade-offs page parts: the outcomes loader thread, money and basis wording, the category-mix
and saved-scenario tables."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QTableWidget, QTableWidgetItem

from cascade_studio.core.tradeoffs import Outcomes, category_counts
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.run_thread import Worker


def money_text(v: float | None, places: int = 6) -> str:
    return "—" if v is None else f"${v:,.{places}f}"


BASIS_WORDS = {"accuracy": "accuracy", "agreement": "agreement with teacher",
               "judged": "agreement with teacher, text answers judged"}  # judged: `whatif --judge` (issue 30)


def basis_words(basis: str | None) -> str:
    """What a Quality figure measures, in words (None: a scenario saved before the basis was kept)."""
    return "basis not recorded" if basis is None else BASIS_WORDS.get(basis, basis)


class OutcomesThread(Worker):
    """`load_outcomes` on a thread of its own (ui/run_thread.py): a big workspace's outcomes take
    seconds to read, and the GUI thread stays free; `progress` carries (steps done, steps)."""

    def __init__(self, workspace_dir: Path, tiers: list, category: str | None, parent=None) -> None:
        super().__init__(workspace_dir, "trade-offs", parent)
        self.tiers, self.category = tiers, category
        self.superseded = False  # set from the GUI thread: the load stops at its next step

    def supersede(self) -> None:
        """A newer load replaces this one: stop at the next step instead of reading on for nothing
        (two loads at once each take twice as long on two cores)."""
        self.superseded = True

    async def work(self, ws: Workspace) -> Outcomes:
        from cascade_studio.services.tradeoffs import load_outcomes

        def progress(done: int, of: int) -> None:
            if self.superseded:
                raise asyncio.CancelledError
            self.emit_progress((done, of))

        return load_outcomes(ws, self.tiers, self.category, progress=progress)


def fill_mix(table: QTableWidget, o: Outcomes) -> None:
    """One row per category with its share of the tasks (editable: the what-if's traffic mix)."""
    counts = category_counts(o.categories)
    table.blockSignals(True)
    table.setRowCount(len(counts))
    for r, (cat, n) in enumerate(sorted(counts.items())):
        table.setItem(r, 0, QTableWidgetItem(cat))
        table.item(r, 0).setFlags(Qt.ItemFlag.ItemIsEnabled)
        table.setItem(r, 1, QTableWidgetItem(f"{n / o.n:.2f}"))
    table.blockSignals(False)


def read_mix(table: QTableWidget) -> dict[str, float]:
    mix = {}
    for r in range(table.rowCount()):
        try:
            mix[table.item(r, 0).text()] = max(0.0, float(table.item(r, 1).text()))
        except (ValueError, AttributeError):
            continue
    return mix


def fill_scenario_table(table: QTableWidget, items: list[dict[str, Any]], current: str | None) -> list[str]:
    """Saved scenarios side by side; returns the names of those saved on another quality basis
    (their Quality cell is marked)."""
    rows = [("Mode", lambda s: s["params"]["mode"]),
            ("Thresholds", lambda s: ", ".join(f"{t:.2f}" for t in s["params"]["thresholds"])),
            ("Requests / month", lambda s: f"{s['params']['monthly_volume']:,.0f}"),
            ("Monthly cost", lambda s: money_text(s["results"]["monthly_cost_usd"], 2)),
            ("Teacher-only", lambda s: money_text(s["results"]["teacher_only_monthly_usd"], 2)),
            ("Savings / month", lambda s: money_text(s["results"]["monthly_savings_usd"], 2)),
            ("Break-even month", lambda s: "—" if s["results"]["break_even_month"] is None
             else str(s["results"]["break_even_month"])),
            ("Latency p95", lambda s: f"{s['results']['latency_p95_ms']:,.0f} ms"),
            ("Quality", lambda s: f"{s['results']['quality']:.1%} ({basis_words(s['quality_basis'])})")]
    table.setRowCount(len(rows))
    table.setColumnCount(len(items))
    table.setHorizontalHeaderLabels([s["name"] for s in items])
    table.setVerticalHeaderLabels([r[0] for r in rows])
    other = []
    for c, s in enumerate(items):
        for r, (_, get) in enumerate(rows):
            table.setItem(r, c, QTableWidgetItem(get(s)))
        if current is not None and s["quality_basis"] != current:
            other.append(s["name"])
            cell = table.item(len(rows) - 1, c)
            cell.setBackground(QColor("#fde7c2"))
            cell.setToolTip(f"Saved with Quality = {basis_words(s['quality_basis'])}; it is now "
                            f"{basis_words(current)}: not comparable")
    return other


def bar_plots(pg) -> tuple[QHBoxLayout, list]:
    """The per-tier bar charts (cost, latency p95, quality), side by side; short titles so three fit at
    1024 px, the full ones as tooltips."""
    plots = []
    bars = QHBoxLayout()
    for title, tip in (("Cost ($)", "Cost per request ($)"), ("p95 (ms)", "Latency p95 (ms)"), ("Quality", "Quality")):
        plot = pg.PlotWidget(background="w", title=title)
        plot.setToolTip(tip)
        plot.setMaximumHeight(150)
        plot.setMouseEnabled(False, False)
        plot.getAxis("left").enableAutoSIPrefix(False)
        plot.hideButtons()
        bars.addWidget(plot)
        plots.append(plot)
    return bars, plots

