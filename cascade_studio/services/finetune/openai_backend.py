"""OpenAI's fine-tuning API, or any endpoint that implements the same API (files with
purpose=fine-tune, fine_tuning.jobs with method=supervised)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cascade_studio.core.tiers import Tier
from cascade_studio.services.clients import make_async_client
from cascade_studio.services.finetune.backend import JobEvent, JobSpec, JobState, openai_deprecation
from cascade_studio.services.secrets import SecretStore


def _state(job: Any) -> JobState:
    error = None
    if getattr(job, "error", None) is not None and getattr(job.error, "code", None):
        error = {"code": job.error.code, "message": job.error.message, "param": job.error.param}
    hp = job.hyperparameters.model_dump() if getattr(job, "hyperparameters", None) is not None else {}
    return JobState(id=job.id, status=job.status, base_model=job.model, training_file=job.training_file,
                    fine_tuned_model=job.fine_tuned_model, trained_tokens=job.trained_tokens, error=error,
                    hyperparameters=hp, estimated_finish=getattr(job, "estimated_finish", None),
                    created_at=job.created_at, finished_at=job.finished_at)


class OpenAIFineTuneBackend:
    name = "openai"

    def __init__(self, tier: Tier, secrets: SecretStore) -> None:
        self.tier = tier
        self.client = make_async_client(tier, secrets, max_retries=3)

    def deprecation_notice(self, today: dt.date | None = None) -> str | None:
        return openai_deprecation(self.tier.base_url, self.tier.model, today or dt.date.today())

    async def upload(self, path: Path) -> str:
        with open(path, "rb") as fh:
            f = await self.client.files.create(file=(Path(path).name, fh.read()), purpose="fine-tune")
        return f.id

    async def start(self, spec: JobSpec, training_file_id: str, validation_file_id: str | None) -> JobState:
        hp = {k: v for k, v in (("n_epochs", spec.n_epochs), ("batch_size", spec.batch_size),
                                ("learning_rate_multiplier", spec.learning_rate_multiplier)) if v != "auto"}
        kwargs: dict[str, Any] = {"model": spec.base_model, "training_file": training_file_id,
                                  "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}
        if validation_file_id:
            kwargs["validation_file"] = validation_file_id
        if spec.suffix:
            kwargs["suffix"] = spec.suffix
        if spec.seed is not None:
            kwargs["seed"] = spec.seed
        if spec.metadata:
            kwargs["metadata"] = spec.metadata
        return _state(await self.client.fine_tuning.jobs.create(**kwargs))

    async def status(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.retrieve(job_id))

    async def events(self, job_id: str, known: set[str]) -> list[JobEvent]:
        """New events, oldest first. Events come newest first; stop at the first one already known."""
        out: list[JobEvent] = []
        async for e in self.client.fine_tuning.jobs.list_events(job_id, limit=100):
            if e.id in known:
                break
            out.append(JobEvent(e.id, e.created_at, e.level, getattr(e, "type", None) or "message", e.message,
                                getattr(e, "data", None)))
        return list(reversed(out))

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        page = await self.client.fine_tuning.jobs.checkpoints.list(job_id)
        return [c.model_dump() for c in page.data]

    async def cancel(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.cancel(job_id))

    async def pause(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.pause(job_id))

    async def resume(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.resume(job_id))

    async def close(self) -> None:
        await self.client.close()
