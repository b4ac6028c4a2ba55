"""The fine-tune backend interface: remote APIs (openai_backend) and the local trainer (local_backend)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Protocol

from cascade_studio.core.finetune import FINISHED_JOB_STATUSES, JobEvent, JobSpec, JobState
from cascade_studio.core.tiers import is_openai_url

TERMINAL = FINISHED_JOB_STATUSES  # re-exported: the home of this rule is core.finetune
OPENAI_FT_CUTOFF = dt.date(2027, 1, 6)
OPENAI_4O_RETIREMENT = dt.date(2027, 1, 14)


def today() -> dt.date:
    """The date the deadline rules are read against (tests replace this clock)."""
    return dt.date.today()


def openai_takes_jobs(day: dt.date) -> bool:
    """OpenAI takes new self-serve fine-tuning jobs up to and including OPENAI_FT_CUTOFF."""
    return day <= OPENAI_FT_CUTOFF


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
    if openai_takes_jobs(today):
        parts.append(f"OpenAI accepts no new fine-tuning jobs after {OPENAI_FT_CUTOFF.isoformat()} "
                     f"({(OPENAI_FT_CUTOFF - today).days} days from now).")
    else:
        parts.append(f"OpenAI stopped accepting new fine-tuning jobs on {OPENAI_FT_CUTOFF.isoformat()}; "
                     "use another backend.")
    base = model.split(":")[1] if model.startswith("ft:") else model
    if base.startswith(("gpt-4o-mini", "gpt-4o")):
        parts.append(f"{base} and its fine-tunes retire on {OPENAI_4O_RETIREMENT.isoformat()}.")
    return " ".join(parts)
