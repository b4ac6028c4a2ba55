"""OpenAI's fine-tuning API, or any endpoint that implements the same API (files with
purpose=fine-tune, fine_tuning.jobs with method=supervised)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import Tier
from cascade_studio.services.clients import make_async_client
from cascade_studio.services.finetune import backend as _backend
from cascade_studio.services.finetune.backend import JobEvent, JobSpec, JobState, openai_deprecation
from cascade_studio.services.secrets import SecretStore

log = logging.getLogger(__name__)

MAX_EVENT_PAGES = 100  # per poll (10,000 events): a server whose pages never end cannot keep a poll going


class UnexpectedAnswer(UserError):
    """The endpoint answered 200 with something that is not what OpenAI's fine-tuning API returns."""


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a half-built model of an odd answer
        return None


def _state(job: Any, endpoint: str) -> JobState:
    """The job as this app keeps it; a job the endpoint describes without the fields every job has
    is refused in words (naming the endpoint) rather than stored half-empty."""
    problems = [f"{name} (a non-empty string)" for name in ("id", "status", "model", "training_file")
                if not isinstance(_field(job, name), str) or not _field(job, name)]
    problems += [f"{name} (a whole number)" for name in ("created_at", "finished_at", "trained_tokens", "estimated_finish")
                 if _field(job, name) is not None and (type(_field(job, name)) is not int)]
    if _field(job, "fine_tuned_model") is not None and not isinstance(_field(job, "fine_tuned_model"), str):
        problems.append("fine_tuned_model (a string or null)")
    if problems:
        raise UnexpectedAnswer(f"{endpoint} answered with something that is not a fine-tuning job: missing or "
                               f"wrong {', '.join(problems)}. Nothing was saved. Check that the tier's endpoint "
                               "implements OpenAI's fine-tuning API.")
    error = None
    raw_error = _field(job, "error")
    if raw_error is not None and _field(raw_error, "code"):
        error = {"code": str(_field(raw_error, "code")), "message": str(_field(raw_error, "message") or ""),
                 "param": _field(raw_error, "param")}
    hp_obj = _field(job, "hyperparameters")
    hp = hp_obj.model_dump() if hasattr(hp_obj, "model_dump") else (hp_obj if isinstance(hp_obj, dict) else {})
    return JobState(id=job.id, status=job.status, base_model=job.model, training_file=job.training_file,
                    fine_tuned_model=job.fine_tuned_model, trained_tokens=_field(job, "trained_tokens"), error=error,
                    hyperparameters=hp, estimated_finish=_field(job, "estimated_finish"),
                    created_at=_field(job, "created_at"), finished_at=_field(job, "finished_at"))


def _event(e: Any) -> JobEvent | None:
    """One event as stored, or None for one without an id (logged and skipped: it cannot be told apart)."""
    event_id = _field(e, "id")
    if not isinstance(event_id, str) or not event_id:
        return None
    created = _field(e, "created_at")
    data = _field(e, "data")
    return JobEvent(event_id, created if type(created) is int else 0, str(_field(e, "level") or "info"),
                    str(_field(e, "type") or "message"), str(_field(e, "message") or ""),
                    data if isinstance(data, dict) else None)


class OpenAIFineTuneBackend:
    name = "openai"

    def __init__(self, tier: Tier, secrets: SecretStore) -> None:
        self.tier = tier
        self.client = make_async_client(tier, secrets, max_retries=3)

    def deprecation_notice(self, today: dt.date | None = None) -> str | None:
        return openai_deprecation(self.tier.base_url, self.tier.model, today or _backend.today())

    def _endpoint(self, method: str, path: str) -> str:
        return f"{method} {self.tier.base_url.rstrip('/')}{path}"

    async def upload(self, path: Path) -> str:
        with open(path, "rb") as fh:
            content = fh.read()
        # The whole-request timeout gives our own body time for its size (bounded_http.UPLOAD_BYTES_PER_S).
        f = await self.client.files.create(file=(Path(path).name, content), purpose="fine-tune")
        file_id = _field(f, "id")
        if not isinstance(file_id, str) or not file_id:
            raise UnexpectedAnswer(f"{self._endpoint('POST', '/files')} accepted {Path(path).name} but its answer "
                                   "has no file id. Nothing was started. Check that the tier's endpoint implements "
                                   "OpenAI's files API.")
        return file_id

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
        job = await self.client.fine_tuning.jobs.create(**kwargs)
        return _state(job, self._endpoint("POST", "/fine_tuning/jobs"))

    async def status(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.retrieve(job_id),
                      self._endpoint("GET", f"/fine_tuning/jobs/{job_id}"))

    async def events(self, job_id: str, known: set[str]) -> list[JobEvent]:
        """New events, oldest first. Events come newest first; stop at the first one already known,
        at an id seen before in this poll (a server whose pages repeat, or always say has_more), or
        after MAX_EVENT_PAGES pages; the next poll carries on from what is stored."""
        out: list[JobEvent] = []
        seen: set[str] = set()
        after: str | None = None
        for _ in range(MAX_EVENT_PAGES):
            page = await self.client.fine_tuning.jobs.list_events(job_id, limit=100,
                                                                  **({"after": after} if after else {}))
            items = list(_field(page, "data") or [])
            for item in items:
                event = _event(item)
                if event is None:
                    log.warning("Fine-tune job %s: skipped an event without an id from %s", job_id, self.tier.base_url)
                    continue
                if event.id in known or event.id in seen:
                    return list(reversed(out))
                seen.add(event.id)
                out.append(event)
            last_id = _field(items[-1], "id") if items else None
            if _field(page, "has_more") is not True or not isinstance(last_id, str) or not last_id:
                break
            after = last_id
        else:
            log.warning("Fine-tune job %s: stopped reading events after %d pages from %s", job_id,
                        MAX_EVENT_PAGES, self.tier.base_url)
        return list(reversed(out))

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        page = await self.client.fine_tuning.jobs.checkpoints.list(job_id)
        return [c.model_dump() for c in page.data]

    async def cancel(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.cancel(job_id),
                      self._endpoint("POST", f"/fine_tuning/jobs/{job_id}/cancel"))

    async def pause(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.pause(job_id),
                      self._endpoint("POST", f"/fine_tuning/jobs/{job_id}/pause"))

    async def resume(self, job_id: str) -> JobState:
        return _state(await self.client.fine_tuning.jobs.resume(job_id),
                      self._endpoint("POST", f"/fine_tuning/jobs/{job_id}/resume"))

    async def close(self) -> None:
        await self.client.close()
