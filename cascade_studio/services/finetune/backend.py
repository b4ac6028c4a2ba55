"""The fine-tune backend interface: remote APIs (openai_backend) and the local trainer (local_backend)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cascade_studio.core.tiers import is_openai_url

TERMINAL = {"succeeded", "failed", "cancelled"}
OPENAI_FT_CUTOFF = dt.date(2027, 1, 6)
OPENAI_4O_RETIREMENT = dt.date(2027, 1, 14)


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
        return self.status in TERMINAL

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


class FineTuneBackend(Protocol):
    name: str

    def deprecation_notice(self, today: dt.date) -> str | None: ...

    async def upload(self, path: Path) -> str: ...

    async def start(self, spec: JobSpec, training_file_id: str, validation_file_id: str | None) -> JobState: ...

    async def status(self, job_id: str) -> JobState: ...

    async def events(self, job_id: str, known: set[str]) -> list[JobEvent]: ...

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]: ...

    async def cancel(self, job_id: str) -> JobState: ...

    async def pause(self, job_id: str) -> JobState: ...

    async def resume(self, job_id: str) -> JobState: ...

    async def close(self) -> None: ...


def openai_deprecation(base_url: str, model: str, today: dt.date) -> str | None:
    """A plain warning when the job would go to OpenAI itself."""
    if not is_openai_url(base_url):
        return None
    parts = []
    if today <= OPENAI_FT_CUTOFF:
        parts.append(f"OpenAI accepts no new fine-tuning jobs after {OPENAI_FT_CUTOFF.isoformat()} "
                     f"({(OPENAI_FT_CUTOFF - today).days} days from now).")
    else:
        parts.append(f"OpenAI stopped accepting new fine-tuning jobs on {OPENAI_FT_CUTOFF.isoformat()}; "
                     "use another backend.")
    base = model.split(":")[1] if model.startswith("ft:") else model
    if base.startswith(("gpt-4o-mini", "gpt-4o")):
        parts.append(f"{base} and its fine-tunes retire on {OPENAI_4O_RETIREMENT.isoformat()}.")
    return " ".join(parts)
