"""Fine-tuning page: build and validate a dataset, start a job, follow it live (status, events,
loss and accuracy curves), cancel/pause/resume, and put the result in a tier."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.finetune import is_finished
from cascade_studio.core.tiers import teacher_of
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.tier_editor import ERROR_STYLE, INFO_STYLE, WARN_STYLE, show_status

log = logging.getLogger(__name__)
FINE_TUNABLE = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"]


class FineTunePage(QWidget):
    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        self.pg = pg
        self.secrets = secrets
        self.ws: Workspace | None = None
        self.dataset_path: Path | None = None
        self.dataset_id: int | None = None  # the workspace's record of dataset_path, when it has one
        self.validation_path: Path | None = None
        self._poll_task: asyncio.Task | None = None
        self._busy: asyncio.Task | None = None
        self._notified: set[str] = set()
        self._report: tuple[Path, Any] | None = None  # (file, ValidationReport) of the last validation

        # dataset builder
        self.ds_tier = QComboBox(objectName="dsTier")
        self.ds_category = QComboBox(objectName="dsCategory")
        self.ds_accepted = QCheckBox("Accepted only", objectName="dsAccepted")
        self.ds_min_conf = QDoubleSpinBox(objectName="dsMinConf", minimum=0, maximum=1, singleStep=0.05)
        self.ds_min_conf.setSpecialValueText("any")
        self.ds_strategy = QComboBox(objectName="dsStrategy")
        self.ds_strategy.addItem("Final answer / tool calls only", "final")
        self.ds_strategy.addItem("Keep the teacher's reasoning", "reasoning")
        self.ds_system = QLineEdit(objectName="dsSystem")
        self.ds_system.setPlaceholderText("keep each task's system prompt")
        self.ds_share = QDoubleSpinBox(objectName="dsShare", minimum=0, maximum=0.5, singleStep=0.05, value=0.1)
        self.ds_format = QComboBox(objectName="dsFormat")
        self.ds_format.addItem("OpenAI chat JSONL", "openai")
        self.ds_format.addItem("ShareGPT (Unsloth, Axolotl, LLaMA-Factory)", "sharegpt")
        self.build_button = QPushButton("Build dataset…", objectName="buildDataset")
        self.build_button.clicked.connect(self.build_dialog)
        self.validate_button = QPushButton("Validate a file…", objectName="validateDataset")
        self.validate_button.clicked.connect(self.validate_dialog)
        self.ds_report = QTextBrowser(objectName="dsReport")
        self.ds_report.setMaximumHeight(150)
        ds_box = QGroupBox("1. Dataset")
        dl = QFormLayout(ds_box)
        dl.addRow("From tier", self.ds_tier)
        dl.addRow("Category", self.ds_category)
        dl.addRow("Curation", self.ds_accepted)
        dl.addRow("Confidence at least", self.ds_min_conf)
        dl.addRow("Assistant message", self.ds_strategy)
        dl.addRow("System prompt", self.ds_system)
        dl.addRow("Validation share", self.ds_share)
        dl.addRow("Format", self.ds_format)
        row = QHBoxLayout()
        row.addWidget(self.build_button)
        row.addWidget(self.validate_button)
        dl.addRow(row)
        dl.addRow(self.ds_report)

        # job launcher: where it trains (a tier's fine-tuning API, or this machine)
        from cascade_studio.services.finetune.tracker import backends

        self.backend = QComboBox(objectName="ftBackend")
        self.backend_note = QLabel(objectName="ftBackendNote")
        self.backend_note.setWordWrap(True)
        self.backend_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._backends = {b["name"]: b for b in backends()}
        for b in self._backends.values():
            self.backend.addItem(b["label"] + ("" if b["available"] else " — not installed"), b["name"])
            self.backend.setItemData(self.backend.count() - 1, b["message"], Qt.ItemDataRole.ToolTipRole)
        self.base_model = QComboBox(objectName="baseModel", editable=True)
        self.base_model.addItems(FINE_TUNABLE)
        self.endpoint_tier = QComboBox(objectName="endpointTier")
        self.epochs = QSpinBox(objectName="epochs", minimum=0, maximum=50)
        self.epochs.setSpecialValueText("auto")
        self.suffix = QLineEdit(objectName="suffix")
        self.suffix.setPlaceholderText("e.g. distilled-v1")
        self.start_button = QPushButton("Start fine-tune", objectName="startJob")
        self.start_button.clicked.connect(self.start_job)
        self.deprecation = QLabel(objectName="ftDeprecation")
        self.deprecation.setWordWrap(True)
        self.deprecation.setStyleSheet(WARN_STYLE)
        self.deprecation.hide()
        # local trainer settings
        self.local_model = QLineEdit(objectName="localModel")
        self.local_model.setPlaceholderText("a Hugging Face model folder (config.json, tokenizer, weights)")
        browse = QPushButton("Browse…", objectName="browseModel")
        browse.clicked.connect(self.choose_model_folder)
        model_row = QHBoxLayout()
        model_row.setContentsMargins(0, 0, 0, 0)
        model_row.addWidget(self.local_model, 1)
        model_row.addWidget(browse)
        self.method = QComboBox(objectName="localMethod")
        self.method.addItem("LoRA adapter (+ merged model)", "lora")
        self.method.addItem("Full fine-tuning", "full")
        self.alpha = QDoubleSpinBox(objectName="kdAlpha", minimum=0, maximum=1, singleStep=0.05, value=0.5)
        self.alpha.setToolTip("Weight of the hard-label cross-entropy; 1 - a goes to the teacher's soft labels "
                              "(used only when teacher and student share a tokenizer).")
        self.temperature = QDoubleSpinBox(objectName="kdTemperature", minimum=0.1, maximum=20, singleStep=0.5, value=2.0)
        self.temperature.setToolTip("Distillation temperature T: softens both distributions; the KL term is scaled by T².")
        self.mass = QComboBox(objectName="kdMass")
        self.mass.addItem("renormalise the teacher's top-k (drop the rest)", "drop")
        self.mass.addItem("spread the remaining mass over the vocabulary", "spread")
        self.device = QComboBox(objectName="localDevice")
        for label, value in (("auto (CUDA GPU when available)", "auto"), ("CPU", "cpu"), ("CUDA", "cuda")):
            self.device.addItem(label, value)
        self.local_box = QWidget(objectName="localBox")
        ll_ = QFormLayout(self.local_box)
        ll_.setContentsMargins(0, 0, 0, 0)
        ll_.addRow("Base model folder", model_row)
        ll_.addRow("Method", self.method)
        ll_.addRow("KD weight a (CE share)", self.alpha)
        ll_.addRow("Temperature T", self.temperature)
        ll_.addRow("Teacher mass", self.mass)
        ll_.addRow("Device", self.device)
        self.remote_box = QWidget(objectName="remoteBox")
        rl_ = QFormLayout(self.remote_box)
        rl_.setContentsMargins(0, 0, 0, 0)
        rl_.addRow("Base model", self.base_model)
        rl_.addRow("Endpoint of tier", self.endpoint_tier)
        job_box = QGroupBox("2. Job")
        jl = QFormLayout(job_box)
        jl.addRow("Backend", self.backend)
        jl.addRow(self.backend_note)
        jl.addRow(self.remote_box)
        jl.addRow(self.local_box)
        jl.addRow("Epochs", self.epochs)
        jl.addRow("Suffix", self.suffix)
        jl.addRow(self.deprecation)
        jl.addRow(self.start_button)
        self.backend.currentIndexChanged.connect(lambda *_: self._backend_changed())
        self._backend_changed()
        self.endpoint_tier.currentIndexChanged.connect(lambda *_: self._update_deprecation())
        self.base_model.currentTextChanged.connect(lambda *_: self._update_deprecation())

        # jobs
        self.jobs = QTableWidget(0, 6, objectName="jobTable")
        self.jobs.setHorizontalHeaderLabels(["Job", "Status", "Base model", "Elapsed", "Trained tokens",
                                             "Fine-tuned model"])
        self.jobs.verticalHeader().hide()
        self.jobs.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.jobs.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.jobs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.jobs.horizontalHeader().setStretchLastSection(True)
        self.jobs.currentCellChanged.connect(lambda *_: self.show_job())
        self.cancel_button = QPushButton("Cancel", objectName="cancelJob")
        self.pause_button = QPushButton("Pause", objectName="pauseJob")
        self.resume_button = QPushButton("Resume", objectName="resumeJob")
        self.use_tier = QComboBox(objectName="useTier")
        self.use_button = QPushButton("Use as tier", objectName="useAsTier")
        for b, action in ((self.cancel_button, "cancel"), (self.pause_button, "pause"), (self.resume_button, "resume")):
            b.clicked.connect(lambda _=False, a=action: self.control(a))
        self.use_button.clicked.connect(self.use_as_tier)
        self.job_status = QLabel(objectName="jobStatus")
        self.job_status.setWordWrap(True)
        self.events = QTextBrowser(objectName="jobEvents")
        self.plot = pg.PlotWidget(background="w", objectName="lossPlot")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss / accuracy")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.curves = {
            "train_loss": self.plot.plot([], [], pen=pg.mkPen("#3fa7f5", width=2), name="train loss"),
            "valid_loss": self.plot.plot([], [], pen=pg.mkPen("#f5a623", width=2), name="validation loss"),
            "train_mean_token_accuracy": self.plot.plot([], [], pen=pg.mkPen("#7ed321", width=2, style=Qt.PenStyle.DashLine),
                                                        name="train accuracy"),
            # local jobs: the two parts of the distillation loss
            "ce_loss": self.plot.plot([], [], pen=pg.mkPen("#9b59b6", width=1, style=Qt.PenStyle.DotLine),
                                      name="hard-label CE"),
            "kd_loss": self.plot.plot([], [], pen=pg.mkPen("#d0021b", width=1, style=Qt.PenStyle.DotLine),
                                      name="KD (KL)"),
        }
        controls = QHBoxLayout()
        for w in (self.cancel_button, self.pause_button, self.resume_button):
            controls.addWidget(w)
        controls.addStretch(1)
        controls.addWidget(self.use_tier)
        controls.addWidget(self.use_button)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("Jobs (tracked in the workspace; tracking resumes after a restart)"))
        rl.addWidget(self.jobs, 1)
        rl.addLayout(controls)
        rl.addWidget(self.job_status)
        split_v = QSplitter(Qt.Orientation.Vertical)
        split_v.addWidget(self.plot)
        split_v.addWidget(self.events)
        rl.addWidget(split_v, 2)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(ds_box)
        ll.addWidget(job_box)
        ll.addStretch(1)
        self.status = QLabel(objectName="ftStatus")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(INFO_STYLE)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([430, 800])
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        self._poll_timer = QTimer(self, interval=3000)
        self._poll_timer.timeout.connect(self._poll)

    # -- workspace -----------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        if ws is not self.ws:
            self.dataset_id = None  # a dataset id names a record of the previous workspace
        self.ws = ws
        self.reload_choices()
        self.refresh_jobs()
        if ws is not None:
            self._poll_timer.start()
            QTimer.singleShot(0, self._poll)  # resume tracking of unfinished jobs at once
        else:
            self._poll_timer.stop()
        self._say("Build a dataset from curated teacher trajectories, validate it, then start a job.")

    def reload_choices(self) -> None:
        tiers = TierRepository(self.ws).list() if self.ws else []
        top = teacher_of(tiers)
        for combo in (self.ds_tier, self.endpoint_tier, self.use_tier):
            current = combo.currentData()
            combo.clear()
            by_no = {t.tier: t for t in tiers}
            numbers = sorted({1, 2, 3} | set(by_no)) if combo is self.use_tier else sorted(by_no)
            for no in numbers:  # a fine-tuned model may also go into a tier not defined yet
                combo.addItem(f"Tier {no} — {by_no[no].model}" if no in by_no else f"Tier {no} (new)", no)
            default = current if current is not None else (top.tier if top and combo is not self.use_tier else
                                                           min((t.tier for t in tiers), default=None))
            combo.setCurrentIndex(max(0, combo.findData(default)))
        self.ds_category.clear()
        self.ds_category.addItem("All categories", None)
        for name, n in (TaskRepository(self.ws).categories() if self.ws else []):
            self.ds_category.addItem(f"{name} ({n})", name)
        self._update_deprecation()

    def is_local(self) -> bool:
        return self.backend.currentData() == "local"

    def _backend_changed(self) -> None:
        b = self._backends.get(self.backend.currentData(), {})
        local = self.is_local()
        self.remote_box.setVisible(not local)
        self.local_box.setVisible(local)
        self.backend_note.setText(b.get("message", ""))
        self.backend_note.setStyleSheet("" if b.get("available", True) else WARN_STYLE)
        self._update_deprecation()
        self._show_report()  # the cost line differs between backends
        self._update_start()

    def choose_model_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Base model folder (Hugging Face format)",
                                                self.local_model.text() or str(Path.home()))
        if name:
            self.local_model.setText(name)
            if not (Path(name) / "config.json").is_file():
                self._say(f"{name} has no config.json: choose a Hugging Face model folder (config.json, tokenizer "
                          "files, weights).", error=True)

    def _update_deprecation(self) -> None:
        from cascade_studio.services.finetune.backend import openai_deprecation

        if self.is_local():
            self.deprecation.hide()
            return

        tier = next((t for t in (TierRepository(self.ws).list() if self.ws else [])
                     if t.tier == self.endpoint_tier.currentData()), None)
        text = openai_deprecation(tier.base_url, self.base_model.currentText(), dt.date.today()) if tier else None
        self.deprecation.setText(f"⚠ {text}" if text else "")
        self.deprecation.setVisible(bool(text))

    # -- dataset -------------------------------------------------------------------------------
    def build_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Write the training file", "train.jsonl", "JSONL (*.jsonl)")
        if name:
            self.build(Path(name))

    def build(self, path: Path) -> None:
        from cascade_studio.services import datasets as dsvc

        if self.ws is None:
            return
        tier = next((t for t in TierRepository(self.ws).list() if t.tier == self.ds_tier.currentData()), None)
        f = dsvc.DatasetFilters(
            tier=self.ds_tier.currentData(), accepted_only=self.ds_accepted.isChecked(),
            category=self.ds_category.currentData(), min_confidence=self.ds_min_conf.value() or None,
            confidence_method=tier.confidence_method.value if tier else "mean_token_prob",
            strategy=self.ds_strategy.currentData(), system_prompt=self.ds_system.text().strip() or None,
            validation_share=self.ds_share.value())
        try:
            built = dsvc.build_dataset(self.ws, path, f, self.ds_format.currentData())
        except (ValueError, OSError) as exc:
            self._say(f"No dataset written: {exc}", error=True)
            return
        self.dataset_path, self.validation_path, self.dataset_id = built.path, built.validation_path, built.id
        self._say(f"Dataset {built.id}: {built.examples} training and {built.validation_examples} validation examples "
                  f"from {len(built.trajectory_ids)} trajectories" +
                  (f" ({built.duplicates_dropped} duplicates dropped)" if built.duplicates_dropped else "") + "." +
                  (f" The teacher's logprobs are beside it ({built.teacher_logprobs.name}) for the local trainer's "
                   "soft labels." if built.teacher_logprobs else ""))
        if self.ds_format.currentData() == "openai":
            self.validate(built.path)

    def validate_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Validate a training file", "", "JSONL (*.jsonl)")
        if name:
            self.dataset_path = Path(name)
            found = DatasetRepository(self.ws).find_by_path(self.dataset_path) if self.ws else None
            self.dataset_id = found[0] if found else None  # a file built earlier keeps its lineage
            # its own validation split, never the one of a dataset built before
            self.validation_path = Path(found[1]) if found and found[1] else None
            self.validate(Path(name))

    def validate(self, path: Path) -> None:
        from cascade_studio.services import datasets as dsvc

        try:
            r = dsvc.validate_file(path, self.base_model.currentText(), self.ws.path if self.ws else None)
        except ValueError as exc:
            self._say(str(exc), error=True)
            return
        self._report = (path, r)
        self._show_report()
        self._update_start()

    def _show_report(self) -> None:
        """The last validation, worded for the chosen backend (the file is not read again)."""
        if self._report is None:
            return
        path, r = self._report
        parts = [f"<b>{html.escape(path.name)}</b>: {r.examples} examples, "
                 f"<span style='color:{'#a4262c' if r.errors else '#0b5a08'}'>{len(r.errors)} errors</span>, "
                 f"{len(r.warnings)} warnings."]
        for e in r.errors[:12]:
            parts.append(f"<br>line {e['line']}: {html.escape(e['kind'])} {html.escape(e.get('detail', ''))}")
        for w in r.warnings:
            parts.append(f"<br>warning: {html.escape(w['kind'])} ({w.get('examples', '')})")
        t = r.tokens_per_example
        if t:
            parts.append(f"<br>Tokens per example: {t['min']}–{t['max']} (mean {t['mean']:.0f}); "
                         f"{r.over_limit} over {r.token_limit:,}.")
        if self.is_local():
            parts.append(f"<br>{r.n_epochs} epochs by default → {r.billed_tokens:,} tokens to train on this machine "
                         "(no per-token price).")
        else:
            cost = "" if r.estimated_cost_usd is None else f", about <b>${r.estimated_cost_usd:,.2f}</b>"
            parts.append(f"<br>{r.n_epochs} epochs by default → {r.billed_tokens:,} billed tokens{cost}.")
        self.ds_report.setHtml("".join(parts))

    def _update_start(self) -> None:
        """Start needs a usable backend and a dataset without errors (when one was validated)."""
        available = self._backends.get(self.backend.currentData(), {}).get("available", True)
        self.start_button.setEnabled(available and (self._report is None or self._report[1].ok))

    # -- jobs ----------------------------------------------------------------------------------
    def start_job(self) -> None:
        from cascade_studio.services.finetune import tracker
        from cascade_studio.services.finetune.backend import JobSpec

        if self.ws is None or self.dataset_path is None or self._busy is not None:
            if self.dataset_path is None:
                self._say("Build or choose a dataset first.", error=True)
            return
        local = self.is_local()
        options = {}
        if local:
            backend = self._backends["local"]
            if not backend["available"]:
                self._say(backend["message"], error=True)
                return
            if not self.local_model.text().strip():
                self._say("Choose the base model folder first (a Hugging Face model on this disk).", error=True)
                return
            options = {"method": self.method.currentData(), "alpha": self.alpha.value(),
                       "temperature": self.temperature.value(), "mass": self.mass.currentData(),
                       "device": self.device.currentData()}
        base = self.local_model.text().strip() if local else self.base_model.currentText().strip()
        spec = JobSpec(base, self.dataset_path, self.validation_path, n_epochs=self.epochs.value() or "auto",
                       suffix=self.suffix.text().strip() or None, options=options)
        self._say(f"Starting the local trainer on {self.dataset_path.name}…" if local else
                  f"Uploading {self.dataset_path.name} and starting the job…")
        self.start_button.setEnabled(False)
        self._busy = asyncio.ensure_future(tracker.start_job(self.ws, spec, self.endpoint_tier.currentData(),
                                                             self.secrets, dataset_id=self.dataset_id,
                                                             backend_name="local" if local else "openai"))
        self._busy.add_done_callback(self._started)

    def _started(self, task) -> None:
        self._busy = None
        self._update_start()
        if task.cancelled():
            self._say("The job start was cancelled.", error=True)
            return
        if task.exception() is not None:
            from cascade_studio.services.clients import describe_error

            self._say(f"The job did not start: {describe_error(task.exception())[1]}", error=True)
            return
        state, warning = task.result()
        self._say(f"Started {state.id} on {state.base_model}." + (f" {warning}" if warning else ""))
        self.refresh_jobs(select=state.id)

    def _poll(self) -> None:
        from cascade_studio.services.finetune import tracker

        if self.ws is None or (self._poll_task is not None and not self._poll_task.done()):
            return
        unfinished = tracker.JobStore(self.ws).unfinished()
        if not unfinished:
            return

        async def refresh_all() -> None:
            for job in unfinished:
                try:
                    await tracker.refresh(self.ws, job["id"], self.secrets)
                except Exception as exc:  # noqa: BLE001 - shown, polling goes on with backoff
                    log.warning("Refreshing %s failed: %s", job["id"], exc)

        try:
            self._poll_task = asyncio.ensure_future(refresh_all())
        except RuntimeError:
            return  # no running loop (tests without qasync)
        self._poll_task.add_done_callback(lambda _t: self.refresh_jobs())

    def refresh_jobs(self, select: str | None = None) -> None:
        from cascade_studio.services.finetune import tracker

        jobs = tracker.JobStore(self.ws).list() if self.ws else []
        current = select or self.selected_job_id()
        self.jobs.setRowCount(len(jobs))
        for r, j in enumerate(jobs):
            created = dt.datetime.fromisoformat(j["created_at"])
            end = dt.datetime.fromisoformat(j["finished_at"]) if j["finished_at"] else dt.datetime.now(dt.UTC)
            elapsed = int((end - created).total_seconds())
            base = Path(j["base_model"]).name if j["backend"] == "local" else j["base_model"]
            values = [j["id"], j["status"], base, f"{elapsed // 60}:{elapsed % 60:02d}",
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
        if self.ws is None or job_id is None:
            return
        store = tracker.JobStore(self.ws)
        job = store.get(job_id)
        if job is None:
            return
        eta = ""
        if job["estimated_finish"] and job["status"] in ("queued", "running"):
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
        self.job_status.setText(f"<b>{html.escape(job['id'])}</b> · {job['backend'] or 'openai'} · {job['status']}"
                                f"{eta} · {html.escape(', '.join(f'{k}={v}' for k, v in hp.items()))}{err}{where}")
        self.job_status.setOpenExternalLinks(True)
        self.job_status.setStyleSheet(ERROR_STYLE if job["error"] else "")
        events = store.events(job_id)
        self.events.setHtml("<br>".join(
            f"<span style='color:#888'>{dt.datetime.fromtimestamp(e['created_at']).strftime('%H:%M:%S')}</span> "
            f"{'<b>' if e['level'] != 'info' else ''}{html.escape(e['message'])}{'</b>' if e['level'] != 'info' else ''}"
            for e in events[-300:]))
        self.events.verticalScrollBar().setValue(self.events.verticalScrollBar().maximum())
        metrics = store.metrics(job_id)
        for key, curve in self.curves.items():
            pts = [(m["step"], m[key]) for m in metrics if m.get(key) is not None]
            curve.setData([p[0] for p in pts], [p[1] for p in pts])
        running = job["status"] in ("validating_files", "queued", "running")
        self.cancel_button.setEnabled(running)
        self.pause_button.setEnabled(job["status"] == "running")
        self.resume_button.setEnabled(job["status"] == "running")
        self.use_button.setEnabled(job["status"] == "succeeded")

    def control(self, action: str) -> None:
        from cascade_studio.services.finetune import tracker

        job_id = self.selected_job_id()
        if self.ws is None or job_id is None:
            return
        task = asyncio.ensure_future(tracker.control(self.ws, job_id, action, self.secrets))

        def done(t) -> None:
            if t.exception() is not None:
                from cascade_studio.services.clients import describe_error

                self._say(f"{action.capitalize()} failed: {describe_error(t.exception())[1]}", error=True)
            else:
                self._say(f"{job_id}: {action} requested ({t.result().status}).")
            self.refresh_jobs(select=job_id)

        task.add_done_callback(done)

    def use_as_tier(self) -> None:
        from cascade_studio.services import catalog as catalog_svc
        from cascade_studio.services.finetune.tracker import use_as_tier
        from cascade_studio.services.tier_service import TierServiceError

        job_id = self.selected_job_id()
        if self.ws is None or job_id is None:
            return
        try:
            tier = use_as_tier(self.ws, job_id, self.use_tier.currentData())
        except (TierServiceError, ValueError) as exc:
            self._say(str(exc), error=True)
            return
        catalog = catalog_svc.load_for_workspace(self.ws.path)
        from cascade_studio.services.finetune.tracker import JobStore

        job = JobStore(self.ws).get(job_id)
        if job and job["backend"] == "local":
            serve = (job["hyperparameters"].get("serve") or [{}])[0]
            self._say(f"Tier {tier.tier} now uses {tier.model} at {tier.base_url}. Start the server first: "
                      f"{' && '.join(serve.get('commands', []))} (other servers: SERVE.md; edit the tier's URL "
                      "on the Tiers page if you use one).")
        else:
            self._say(f"Tier {tier.tier} now uses {tier.model} (${tier.input_price} in / ${tier.output_price} out "
                      "per 1M).")
        window = self.window()
        if hasattr(window, "tiers_page"):  # show the new model on the Tiers page at once
            window.tiers_page.set_workspace(self.ws, catalog)

    def _say(self, text: str, error: bool = False) -> None:
        show_status(self.status, text, error)
