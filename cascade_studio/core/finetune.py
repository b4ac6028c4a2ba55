"""Fine-tune jobs as data: what to train (JobSpec), where a job stands (JobState), what it
reported (JobEvent), which statuses are final, and where the teacher's logprobs sit beside a
training file. Shared by the backends, the job store, the GUI and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# A job in one of these statuses never changes again (OpenAI's names; the local trainer uses them too).
FINISHED_JOB_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def is_finished(status: str) -> bool:
    return status in FINISHED_JOB_STATUSES


_PAUSED = ("fine-tuning job paused", "paused")
_RESUMED = ("fine-tuning job resumed", "resumed")


def shown_status(status: str, event_messages: list[str]) -> str:
    """The status to show: "paused" for a job that is running (or queued) and whose latest
    pause/resume event is a pause. OpenAI's status enum has no "paused"; the pause shows only as
    an event, for remote and local jobs alike."""
    if status not in ("running", "queued"):
        return status
    for message in reversed(event_messages):
        text = message.strip().lower()
        if text.startswith(_RESUMED):
            return status
        if text.startswith(_PAUSED):
            return "paused"
    return status


def teacher_logprobs_path(training_file: Path) -> Path:
    """Where the teacher's logprobs for a training file go: STEM.logprobs.jsonl beside it, one line
    per example, in order (written by the dataset builder, read by the local trainer)."""
    training_file = Path(training_file)
    return training_file.with_name(training_file.stem + ".logprobs.jsonl")


@dataclass
class JobSpec:
    base_model: str
    training_file: Path
    validation_file: Path | None = None
    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific (local: method, alpha, temperature…)


@dataclass
class JobState:
    id: str
    status: str
    base_model: str
    training_file: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    estimated_finish: int | None = None
    created_at: int | None = None
    finished_at: int | None = None

    @property
    def done(self) -> bool:
        return is_finished(self.status)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobEvent:
    id: str
    created_at: int
    level: str
    type: str
    message: str
    data: dict[str, Any] | None = None
