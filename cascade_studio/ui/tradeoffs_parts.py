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


def ms_text(v: float | None) -> str:
    """A latency in milliseconds; unknown (None or NaN: no real-time latency) is said, not shown as 0."""
    return "unknown" if v is None or v != v else f"{v:,.0f} ms"


def metrics_text(m: dict[str, Any]) -> str:
    """The router metrics in words: APGR and AIQ to two places (a third is noise at these task counts),
    CPT as a share of requests sent to the teacher, and why they are unstable when they are."""
    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}"

    def share(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    text = (f"APGR {num(m['apgr'])} · CPT(50%) {share(m['cpt50'])} · CPT(80%) {share(m['cpt80'])} · "
            f"AIQ {num(m['aiq'])}" + (" (cheapest tier vs teacher)" if m.get("note") else ""))
    if m.get("unstable"):
        text += f"\nUnstable: {m['unstable']}."
    return text




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
    """One row per category with its share of the tasks (editable: the what-if's traffic mix). Each
    share cell keeps the exact recorded share beside its two-decimal text: a cell the user has not
    edited means "as recorded", never its rounded display (a small category would read as 0.00)."""
    counts = category_counts(o.categories)
    table.blockSignals(True)
    table.setRowCount(len(counts))
    for r, (cat, n) in enumerate(sorted(counts.items())):
        table.setItem(r, 0, QTableWidgetItem(cat))
        table.item(r, 0).setFlags(Qt.ItemFlag.ItemIsEnabled)
        share = QTableWidgetItem(_share_text(n / o.n))
        share.setData(RECORDED, n / o.n)
        share.setToolTip(f"Recorded share: {n} of {o.n} tasks ({n / o.n:.4%}); edit to ask 'what if'")
        table.setItem(r, 1, share)
    table.blockSignals(False)


RECORDED = Qt.ItemDataRole.UserRole + 1  # a share cell's exact recorded share


def _share_text(share: float) -> str:
    return f"{share:.2f}"


def read_mix(table: QTableWidget) -> dict[str, float] | None:
    """The traffic mix the table asks for: None while no share was edited (the recorded mix, as the
    CLI's `whatif` uses by default); otherwise every category's share, the edited ones as typed and
    the others at their exact recorded share."""
    mix: dict[str, float] = {}
    edited = False
    for r in range(table.rowCount()):
        cat, cell = table.item(r, 0), table.item(r, 1)
        if cat is None or cell is None:
            continue
        recorded = cell.data(RECORDED)
        if recorded is not None and cell.text().strip() == _share_text(recorded):
            mix[cat.text()] = float(recorded)
            continue
        try:
            mix[cat.text()] = max(0.0, float(cell.text()))
            edited = True
        except ValueError:
            continue
    return mix if edited else None


def mix_argument(mix: dict[str, float] | None) -> str | None:
    """The mix as `whatif --mix` takes it (None: the recorded mix, no option)."""
    return None if mix is None else ",".join(f"{k}={v!r}" for k, v in mix.items())


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
    from cascade_studio.ui.plot_axes import clean_axes

    for title, tip in (("Cost ($)", "Cost per request ($)"), ("p95 (ms)", "Latency p95 (ms)"), ("Quality", "Quality")):
        plot = pg.PlotWidget(background="w", title=title, axisItems=clean_axes(pg))
        plot.setToolTip(tip)
        plot.setMaximumHeight(150)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        bars.addWidget(plot)
        plots.append(plot)
    return bars, plots

