"""The Trade-offs page's Strategies tab: teacher only, the best prompt-distilled student, the best
fine-tuned student and the cascade, side by side on the held-out tasks. The figures are
`services.strategies.strategies_report`'s (what `strategies --json` prints), computed on a worker
thread with its own workspace connection; a row without data says how to fill it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.ui.background import run_coroutine_here, run_in_thread

COLUMNS = ["Approach", "Model", "Tasks", "Cost / request", "Cost / month", "Cheaper than teacher", "Quality",
           "Quality loss", "p95 latency", "Cost to make"]


def add_strategies_tab(page: Any, tabs: QTabWidget) -> StrategiesTab:
    """Add the tab to the page's tabs; it loads when shown (and on Refresh)."""
    tab = StrategiesTab(page)
    tabs.addTab(tab, "Strategies (four approaches)")
    tabs.currentChanged.connect(lambda *_: tab.reload() if tabs.currentWidget() is tab else None)
    return tab


def _usd(value: float | None, digits: int) -> str:
    return "unknown" if value is None else f"${value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1%}"


def row_cells(row: dict[str, Any]) -> list[str]:
    """The table's cells of one row of the report (an empty row: its label and how to fill it)."""
    if not row["available"]:
        return [row["label"], row["how_to_fill"], *[""] * (len(COLUMNS) - 2)]
    p95 = "unknown" if row["latency_p95_ms"] is None else f"{row['latency_p95_ms']:.0f} ms"
    return [row["label"], row["model"], str(row["tasks"]), _usd(row["cost_per_request_usd"], 6),
            _usd(row["monthly_cost_usd"], 2), _pct(row["cost_reduction"]),
            f"{_pct(row['quality'])} ({row['quality_basis']})", _pct(row["quality_loss"]), p95,
            _usd(row["cost_to_make_usd"], 2)]


class StrategiesTab(QWidget):
    def __init__(self, page: Any) -> None:
        super().__init__(page)
        self.page = page
        self.report: dict[str, Any] | None = None
        self.loading = False
        self._pending: tuple[Path, float, str | None] = (Path(), 0.0, None)
        self._declined: str | None = None  # the judge whose cost question was answered No
        self.note = QLabel(objectName="strategiesNote", wordWrap=True)
        self.table = QTableWidget(0, len(COLUMNS), objectName="strategiesTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh", objectName="refreshStrategies")
        self.refresh_button.clicked.connect(self.reload)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.refresh_button)

    def volume(self) -> float:
        spin = getattr(self.page, "volume", None)
        return float(spin.value()) if spin is not None else 1_000_000.0

    def judge_name(self) -> str | None:
        """The judge the page's Quality choice names (quality = judged), or None."""
        combo = getattr(self.page, "quality_combo", None)
        return combo.currentData() if combo is not None else None

    def reload(self) -> None:
        """The report, as `strategies` (with `--judge NAME` when the page's Quality is judged: the
        estimate first, as `--dry-run`; a judge is paid only after a Yes, and not asked when every
        verdict is stored already)."""
        ws = getattr(self.page, "ws", None)
        if ws is None or self.loading:
            return
        self.loading = True
        judge = self.judge_name()
        self.note.setText(f"Estimating what judging with {judge} would cost (nothing is sent)…" if judge
                          else "Computing the four approaches…")
        self._compute(Path(ws.path), self.volume(), judge, dry_run=True, done=self._loaded)

    def _compute(self, path: Path, volume: float, judge: str | None, *, dry_run: bool, done) -> None:
        secrets = getattr(self.page, "secrets", None)

        def compute() -> dict[str, Any]:
            from cascade_studio.services.secrets import SecretStore
            from cascade_studio.services.strategies import judging_by, strategies_report
            from cascade_studio.store.workspace import Workspace

            with Workspace.open(path) as own:
                # a plain loop of its own on this worker thread (asyncio.run would make a Qt one)
                judging = judging_by(own, judge, secrets or SecretStore(), dry_run=dry_run,
                                     run=run_coroutine_here) if judge else None
                return strategies_report(own, volume=volume, judging=judging)

        self._pending = (path, volume, judge)
        run_in_thread(compute, done, owner=self)

    def _loaded(self, report: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is not None:
            self.loading = False
            self.note.setText(f"Cannot compare the approaches: {error}")
            return
        judged = report.get("quality_judge") if report else None
        if judged and judged.get("requests"):  # verdicts to pay for: ask, as the page's own Quality does
            from cascade_studio.ui import confirm
            from cascade_studio.ui.judged_quality import JUDGE, cost_question

            path, volume, judge = self._pending
            if confirm.ask_choice(self, "Judge quality", cost_question(judge, judged), [(JUDGE, "Judge")]) == JUDGE:
                self.note.setText(f"Judging the students' text answers with {judge}…")
                self._compute(path, volume, judge, dry_run=False, done=self._judged)
                return
            self.note.setText("Not judged: computing the approaches with quality as recorded…")
            self._declined = judge
            self._compute(path, volume, None, dry_run=False, done=self._judged)
            return
        self._judged(report, None)

    def _judged(self, report: dict[str, Any] | None, error: BaseException | None) -> None:
        self.loading = False
        if error is not None:
            self.note.setText(f"Cannot compare the approaches: {error}")
            return
        self.show_report(report)

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        judged = report.get("quality_judge")
        said = f" Judging with {self._declined} was declined: nothing was sent." if self._declined else ""
        self._declined = None
        if judged is not None:
            said = (f" Quality judged by {judged['basis']}: {judged['requests']} requests, {judged['reused']} verdicts "
                    f"reused, judging cost ${judged['cost_usd']}." if judged.get("applied") else
                    f" Judge not applied: {judged.get('note', 'nothing to judge')}.")
        self.note.setText(f"On {report['tasks_note']}; {report['volume']:,.0f} requests a month (the what-if "
                          "volume). Quality is measured against the teacher on the basis each row names." + said)
        self.table.clearSpans()
        self.table.setRowCount(len(report["rows"]))
        for r, row in enumerate(report["rows"]):
            for c, text in enumerate(row_cells(row)):
                item = QTableWidgetItem(text)
                if c == 1 and not row["available"]:
                    item.setToolTip(text)
                self.table.setItem(r, c, item)
            if not row["available"]:
                self.table.setSpan(r, 1, 1, len(COLUMNS) - 1)
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(1, min(self.table.columnWidth(1), 280))  # not the width of a spanned hint
        self.table.resizeRowsToContents()

    def wait_loaded(self, timeout: float = 60.0) -> bool:
        """Block until the computation under way has been shown (tests)."""
        import time

        from PySide6.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while self.loading and time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.005)
        return not self.loading
