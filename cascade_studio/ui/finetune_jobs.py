"""Fine-tuning page, part 3: the workspace's jobs, followed live (status, events, loss and accuracy
curves), cancel/pause/resume, and the result put in a tier."""

from __future__ import annotations

import datetime as dt
import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.finetune import is_finished
from cascade_studio.ui.finetune_dataset import fill_tier_combo
from cascade_studio.ui.finetune_switch import TierSwitching, tier_set
from cascade_studio.ui.fit import tip_headers
from cascade_studio.ui.style import ERROR_STYLE, OK_STYLE, styled_label

if TYPE_CHECKING:
    from cascade_studio.ui.finetune_host import FineTuneHost

log = logging.getLogger(__name__)
# metric -> (colour, width, line style, legend); local jobs add the two parts of the distillation loss
CURVES = {
    "train_loss": ("#3fa7f5", 2, Qt.PenStyle.SolidLine, "train loss"),
    "valid_loss": ("#f5a623", 2, Qt.PenStyle.SolidLine, "validation loss"),
    "train_mean_token_accuracy": ("#7ed321", 2, Qt.PenStyle.DashLine, "train accuracy"),
    "ce_loss": ("#9b59b6", 1, Qt.PenStyle.DotLine, "hard-label CE"),
    "kd_loss": ("#d0021b", 1, Qt.PenStyle.DotLine, "KD (KL)"),
}


class JobsPanel(TierSwitching, QWidget):
    def __init__(self, page: FineTuneHost) -> None:
        super().__init__()
        import pyqtgraph as pg

        self.page = page
        self._notified: set[str] = set()
        self.candidate_worker = None  # the evaluation before a switch, under way
        self._comparison_job: str | None = None
        self._comparison_tiers: list | None = None  # the tier set the comparison was made with
        self.jobs = QTableWidget(0, 6, objectName="jobTable")
        self.jobs.setHorizontalHeaderLabels(["Job", "Status", "Base model", "Elapsed", "Trained tokens",
                                             "Fine-tuned model"])
        self.jobs.verticalHeader().hide()
        self.jobs.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.jobs.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.jobs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.jobs.horizontalHeader().setStretchLastSection(True)
        tip_headers(self.jobs)
        self.jobs.currentCellChanged.connect(lambda *_: self.show_job())
        self.job_status = QLabel(objectName="jobStatus")
        self.job_status.setWordWrap(True)
        self.events = QTextBrowser(objectName="jobEvents")
        self._events_follow = True  # keep the newest event in view until the user scrolls up
        bar = self.events.verticalScrollBar()
        bar.rangeChanged.connect(lambda _lo, hi: bar.setValue(hi) if self._events_follow else None)
        # the user's own scrolling (wheel, drag, arrows; not a refill): follow again once back at the end
        bar.actionTriggered.connect(lambda _: setattr(self, "_events_follow", bar.sliderPosition() >= bar.maximum()))
        self.plot = pg.PlotWidget(background="w", objectName="lossPlot")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss / accuracy")
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.curves = {key: self.plot.plot([], [], pen=pg.mkPen(color, width=width, style=style), name=name)
                       for key, (color, width, style, name) in CURVES.items()}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Jobs (tracked in the workspace; tracking resumes after a restart)"))
        layout.addWidget(self.jobs, 1)
        layout.addLayout(self._build_controls())
        layout.addWidget(self.job_status)
        self.comparison = styled_label("candidateComparison", OK_STYLE, hidden=True)
        layout.addWidget(self.comparison)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.events)
        layout.addWidget(split, 2)
        self.poll_timer = QTimer(self, interval=3000)
        self.poll_timer.timeout.connect(self.poll)
        self._enable_controls(None)

    def _build_controls(self) -> QVBoxLayout:
        """Job controls on one row, 'Use as tier' with its tier on the next (the tier's name stays
        readable when the panel is narrow)."""
        self.cancel_button = QPushButton("Cancel", objectName="cancelJob")
        self.pause_button = QPushButton("Pause", objectName="pauseJob")
        self.resume_button = QPushButton("Resume", objectName="resumeJob")
        self.use_tier = QComboBox(objectName="useTier")
        self.use_tier.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.use_button = QPushButton("Use as tier", objectName="useAsTier")
        self.use_button.setToolTip("Put the selected job's model in the chosen tier (after an evaluation beside the "
                                   "tier's current model, if you wish)")
        controls, use_row = QHBoxLayout(), QHBoxLayout()
        for b, action in ((self.cancel_button, "cancel"), (self.pause_button, "pause"), (self.resume_button, "resume")):
            b.clicked.connect(lambda _=False, a=action: self.control(a))
            controls.addWidget(b)
        controls.addStretch(1)
        self.use_button.clicked.connect(self.use_as_tier)
        use_row.addWidget(QLabel("Model to"))
        use_row.addWidget(self.use_tier, 1)
        use_row.addWidget(self.use_button)
        rows = QVBoxLayout()
        rows.addLayout(controls)
        rows.addLayout(use_row)
        return rows

    def reload_choices(self) -> None:
        tiers = self.page.tiers()
        fill_tier_combo(self.use_tier, tiers, offer_new=True)
        if self._comparison_job is not None and tier_set(tiers) != self._comparison_tiers:
            self.forget_comparison()  # it names the models of a tier set that is gone

    def follow(self, on: bool) -> None:
        """Poll the unfinished jobs every few seconds (and once now: tracking resumes at once)."""
        if on:
            self.poll_timer.start()
            QTimer.singleShot(0, self.poll)
        else:
            self.poll_timer.stop()

    def poll(self) -> None:
        from cascade_studio.services.finetune import tracker

        page = self.page
        if page.ws is None or page.calls.running("poll"):
            return
        unfinished = tracker.JobStore(page.ws).unfinished()
        if not unfinished:
            return
        ws, secrets = page.ws, page.secrets

        async def refresh_all() -> None:
            for job in unfinished:
                try:
                    await tracker.refresh(ws, job["id"], secrets)
                except Exception as exc:  # noqa: BLE001 - shown, polling goes on with backoff
                    log.warning("Refreshing %s failed: %s", job["id"], exc)

        page.calls.start("poll", refresh_all(), lambda _: self.refresh_jobs())

    def refresh_jobs(self, select: str | None = None) -> None:
        from cascade_studio.services.finetune import tracker

        jobs = tracker.JobStore(self.page.ws).list() if self.page.ws else []
        current = select or self.selected_job_id()
        self.jobs.setRowCount(len(jobs))
        for r, j in enumerate(jobs):
            created = dt.datetime.fromisoformat(j["created_at"])
            end = (dt.datetime.fromisoformat(j["finished_at"]) if j["finished_at"]
                   else dt.datetime.fromtimestamp(j["paused_at"], dt.UTC) if j.get("paused_at")  # stopped while paused
                   else dt.datetime.now(dt.UTC))
            elapsed = int((end - created).total_seconds())
            base = Path(j["base_model"]).name if j["backend"] == "local" else j["base_model"]
            values = [j["id"], j.get("shown_status", j["status"]), base, f"{elapsed // 60}:{elapsed % 60:02d}",
                      f"{j['trained_tokens']:,}" if j["trained_tokens"] else "", j["fine_tuned_model"] or ""]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c == 2:
                    item.setToolTip(j["base_model"] + (" (local trainer)" if j["backend"] == "local" else ""))
                self.jobs.setItem(r, c, item)
            if is_finished(j["status"]) and j["id"] not in self._notified:
                self._notify(j)
        for r, j in enumerate(jobs):
            if j["id"] == current:
                self.jobs.selectRow(r)
                break
        else:
            if jobs:
                self.jobs.selectRow(0)
        self.show_job()

    def _notify(self, job: dict[str, Any]) -> None:
        first_time = not self._notified
        self._notified.add(job["id"])
        if first_time and job.get("finished_at") and job["updated_at"] != job["finished_at"]:
            return
        if QSystemTrayIcon.isSystemTrayAvailable():
            tray = getattr(self, "_tray", None)
            if tray is None:
                self._tray = tray = QSystemTrayIcon(self.window().windowIcon(), self)
                tray.show()
            text = f"{job['id']} {job['status']}" + (f": {job['fine_tuned_model']}" if job["fine_tuned_model"] else "")
            tray.showMessage("Fine-tune job ended", text)

    def selected_job_id(self) -> str | None:
        row = self.jobs.currentRow()
        item = self.jobs.item(row, 0) if row >= 0 else None
        return item.text() if item else None

    def show_job(self) -> None:
        from cascade_studio.services.finetune import tracker

        job_id = self.selected_job_id()
        store = tracker.JobStore(self.page.ws) if self.page.ws is not None else None
        job = store.get(job_id) if store is not None and job_id is not None else None
        self._enable_controls(job)
        if job is None:
            self.job_status.setText("Select a job to follow it." if self.jobs.rowCount() else "No jobs yet.")
            self.job_status.setStyleSheet("")
            self.events.clear()
            for curve in self.curves.values():
                curve.setData([], [])
            return
        self.comparison.setVisible(job_id == self._comparison_job)  # the evaluation before a switch, of this job
        self.job_status.setText(_job_html(job))
        self.job_status.setOpenExternalLinks(True)
        self.job_status.setStyleSheet(ERROR_STYLE if job["error"] else "")
        events = store.events(job_id)
        if job_id != getattr(self, "_events_job", None):  # another job: start at its newest event
            self._events_job, self._events_follow = job_id, True
        bar = self.events.verticalScrollBar()
        held = None if self._events_follow else bar.value()  # the user scrolled up to read: stay there
        self.events.setHtml("<br>".join(
            f"<span style='color:#888'>{dt.datetime.fromtimestamp(e['created_at']).strftime('%H:%M:%S')}</span> "
            f"{'<b>' if e['level'] != 'info' else ''}{html.escape(e['message'])}{'</b>' if e['level'] != 'info' else ''}"
            for e in events[-300:]))
        if held is None:  # the cursor at the end too: a text browser shown the first time scrolls to its cursor
            self.events.moveCursor(QTextCursor.MoveOperation.End)
            bar.setValue(bar.maximum())
        else:
            bar.setValue(held)
        metrics = store.metrics(job_id)
        self.legend.clear()  # the series this job has: an OpenAI job has no distillation-loss parts
        for key, curve in self.curves.items():
            pts = [(m["step"], m[key]) for m in metrics if m.get(key) is not None]
            curve.setData([p[0] for p in pts], [p[1] for p in pts])
            if pts:
                self.legend.addItem(curve, CURVES[key][3])
        self.legend.setVisible(len(self.legend.items) > 1)

    def _enable_controls(self, job: dict[str, Any] | None) -> None:
        """Each control only when it can act on the selected job (none selected: none)."""
        status = job["status"] if job else None
        paused = bool(job) and job.get("shown_status") == "paused"
        self.cancel_button.setEnabled(status in ("validating_files", "queued", "running"))
        together = bool(job) and job.get("backend") == "together"
        self.pause_button.setEnabled(status == "running" and not paused and not together)  # paused: Resume, Cancel
        self.pause_button.setToolTip("Together's fine-tuning API cannot pause a job (only cancel it)" if together
                                     else "Pause the running job (resume it later)")
        self.resume_button.setEnabled(paused)
        self.use_button.setEnabled(status == "succeeded" and self.candidate_worker is None)

    def confirm_cancel(self, job_id: str) -> bool:
        return _confirm(self, job_id)

    def control(self, action: str) -> None:
        from cascade_studio.services.finetune import tracker

        page = self.page
        job_id = self.selected_job_id()
        if page.ws is None or job_id is None:
            return
        if action == "cancel" and not self.confirm_cancel(job_id):
            return

        def done(state) -> None:
            page.say(f"{job_id}: {action} requested ({state.status}).")
            self.refresh_jobs(select=job_id)

        def failed(error: BaseException) -> None:
            from cascade_studio.services.clients import describe_error

            page.say(f"{action.capitalize()} failed: {describe_error(error)[1]}", error=True)
            self.refresh_jobs(select=job_id)

        page.calls.start(f"control {job_id}", tracker.control(page.ws, job_id, action, page.secrets), done, failed)

def _confirm(parent, job_id: str) -> bool:
    from cascade_studio.ui.errors import ask_yes_no

    return ask_yes_no(parent, "Cancel the fine-tune job?", f"Cancel {job_id}? A cancelled job cannot be resumed; "
                      "training done so far is billed (remote) or lost (local, unless a checkpoint was saved).")


def _job_html(job: dict[str, Any]) -> str:
    """One job's status line: backend, status, ETA, hyperparameters, error, where the model is."""
    eta = ""
    if job["estimated_finish"] and job.get("shown_status", job["status"]) in ("queued", "running"):
        eta = f" · estimated finish {dt.datetime.fromtimestamp(job['estimated_finish']).strftime('%H:%M:%S')}"
    err = ""
    if job["error"]:
        err = f" · <span style='color:#a4262c'>{html.escape(job['error'].get('code') or '')}: " \
              f"{html.escape(job['error'].get('message') or '')}</span>"
    hp = {k: v for k, v in job["hyperparameters"].items() if k not in ("output", "serve")}
    output = job["hyperparameters"].get("output")
    where = ""
    if output:
        folder = output.get("merged") or output.get("adapter")
        where = (f"<br>Model folder: <a href='{html.escape(Path(folder).as_uri())}'>{html.escape(folder)}</a> · "
                 f"how to serve it (vLLM, llama.cpp, Ollama): <a href='{html.escape(Path(output['serve']).as_uri())}'>"
                 "SERVE.md</a>")
    return (f"<b>{html.escape(job['id'])}</b> · {job['backend'] or 'openai'} · {job.get('shown_status', job['status'])}"
            f"{eta} · {html.escape(', '.join(f'{k}={v}' for k, v in hp.items()))}{err}{where}")
