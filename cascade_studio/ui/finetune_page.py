"""Fine-tuning page: build and validate a dataset (DatasetPanel), start a job (JobStartPanel),
follow it live and put the result in a tier (JobsPanel). The page holds what the panels share:
the workspace, the chosen dataset and the status line."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QVBoxLayout, QWidget

from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.finetune_dataset import DatasetPanel
from cascade_studio.ui.finetune_jobs import JobsPanel
from cascade_studio.ui.finetune_start import FINE_TUNABLE, JobStartPanel
from cascade_studio.ui.page import Page, scrolled, splitter
from cascade_studio.ui.prompt_distill_panel import PromptDistillPanel

log = logging.getLogger(__name__)
__all__ = ["FINE_TUNABLE", "FineTunePage"]


class FineTunePage(Page):
    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__("ftStatus", parent)
        self.secrets = secrets
        self.dataset_path: Path | None = None
        self.dataset_id: int | None = None  # the workspace's record of dataset_path, when it has one
        self.validation_path: Path | None = None
        self._tiers_seen: list[dict] | None = None  # the tier set the choices show
        self.dataset = DatasetPanel(self)
        self.launcher = JobStartPanel(self)
        self.jobs_panel = JobsPanel(self)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.dataset)
        ll.addWidget(self.launcher)
        self.prompt_panel = PromptDistillPanel(self)  # issue 31: prompt distillation, the third way
        ll.addWidget(self.prompt_panel)
        ll.addStretch(1)
        # a long choice ("Preference pairs (DPO) ...") would size its combo, and the column, to its text:
        # the list shows it whole; the closed box needs only a readable start
        for combo in left.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        # the dataset, job and prompt-distillation panels scroll at the smallest size instead of squeezing their rows
        column = scrolled(left)
        column.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # a narrow window: scroll, never cut
        layout.addWidget(splitter(Qt.Orientation.Horizontal, [column, self.jobs_panel], [430, 800]), 1)
        self._expose_panels()
        # another process (the CLI) may change the tiers: no event reaches this one, so look now and then
        self.jobs_panel.poll_timer.timeout.connect(self.check_tiers)
        from cascade_studio.ui.wheel_guard import guard_wheel

        guard_wheel(self)  # scrolling past the settings never edits one

    def _expose_panels(self) -> None:
        """The panels' main parts under the page's names (tests and tools/screenshot.py use them)."""
        d, s, j = self.dataset, self.launcher, self.jobs_panel
        self.build, self.validate, self.ds_report = d.build, d.validate, d.ds_report
        self.backend, self.backend_note, self.base_model, self.start_button = (s.backend, s.backend_note,
                                                                               s.base_model, s.start_button)
        self.local_box, self.remote_box, self.deprecation = s.local_box, s.remote_box, s.deprecation
        self.local_model, self.method, self.alpha, self.epochs, self.suffix = (s.local_model, s.method, s.alpha,
                                                                               s.epochs, s.suffix)
        self.jobs, self.curves, self.events, self.job_status = j.jobs, j.curves, j.events, j.job_status
        self.use_tier, self.use_button, self.show_job, self.poll = j.use_tier, j.use_button, j.show_job, j.poll

    # -- workspace -----------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        if ws is not self.ws:
            self.dataset_id = None  # a dataset id names a record of the previous workspace
            self.calls.cancel("poll")
            self.jobs_panel.cancel_evaluation()
        self.ws = ws
        self.reload_choices()
        self.jobs_panel.refresh_jobs()
        self.jobs_panel.follow(ws is not None)
        self.say("Build a dataset from curated teacher trajectories, validate it, then start a job.")

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.ws is not None:
            self.dataset.reload_recorded()  # `dataset build` may have added one
        self.check_tiers()

    def check_tiers(self) -> None:
        """Follow a change of the tiers made elsewhere (`tiers set`, `finetune use`, another window)."""
        if self.ws is not None and [t.to_json() for t in self.tiers()] != self._tiers_seen:
            self.reload_choices()

    def reload_choices(self) -> None:
        self._tiers_seen = [t.to_json() for t in self.tiers()]
        self.dataset.reload_choices()
        self.launcher.reload_choices()
        self.prompt_panel.reload_choices()
        self.jobs_panel.reload_choices()

    # -- what the panels ask of each other (ui/finetune_host.py) -------------------------------
    def is_local(self) -> bool:
        return self.launcher.is_local()

    def is_together(self) -> bool:
        return self.launcher.is_together()

    def backend_name(self) -> str:
        return self.launcher.backend.currentData() or "openai"

    def objective(self) -> str:
        return self.launcher.objective()

    def base_model_name(self) -> str:
        return self.launcher.base_model.currentText()

    def dataset_ok(self) -> bool:
        return self.dataset.ok()

    def backend_changed(self) -> None:
        self.dataset.show_report()

    def dataset_checked(self) -> None:
        self.launcher.update_start()

    def job_started(self, job_id: str) -> None:
        self.jobs_panel.refresh_jobs(select=job_id)
