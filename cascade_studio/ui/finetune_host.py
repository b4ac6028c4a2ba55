"""What the Fine-tuning page's panels (dataset, job start, jobs) need of their page: a narrow
interface, so the panels do not import the page (ui/finetune_page.py builds them) and one panel asks
another only through the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from PySide6.QtWidgets import QComboBox

from cascade_studio.core.tiers import Tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import Calls


class FineTuneHost(Protocol):
    ws: Workspace | None
    secrets: SecretStore
    calls: Calls
    dataset_path: Path | None  # the training file chosen (built, validated or recorded)
    dataset_id: int | None  # the workspace's record of dataset_path, when it has one
    validation_path: Path | None

    def say(self, text: str, error: bool = False) -> None: ...
    def tiers(self) -> list[Tier]: ...
    def tier(self, number: int | None) -> Tier | None: ...
    def category_items(self, all_label: str = ...) -> list[tuple[str, Any]]: ...
    @staticmethod
    def fill(combo: QComboBox, items: list[tuple[str, Any]], default: Any = None) -> None: ...

    # what one panel asks of another
    def is_local(self) -> bool: ...  # the job trains on this machine (the start panel's backend)
    def is_together(self) -> bool: ...  # the job goes to Together AI (the start panel's backend)
    def backend_name(self) -> str: ...  # "openai", "together" or "local" (the start panel's backend)
    def objective(self) -> str: ...  # "sft" or "dpo": how the chosen backend's job trains
    def base_model_name(self) -> str: ...  # the remote base model chosen (the dataset is validated for it)
    def dataset_ok(self) -> bool: ...  # no validation yet, or one without errors
    def backend_changed(self) -> None: ...  # the dataset panel words its report for the backend
    def dataset_checked(self) -> None: ...  # a validation ended: Start follows it
    def job_started(self, job_id: str) -> None: ...  # the jobs panel shows it
