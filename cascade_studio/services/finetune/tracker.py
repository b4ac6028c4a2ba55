"""The poller that keeps fine-tune jobs current (backoff; resumes after a restart because every
unfinished job is in the workspace: store.jobs.JobStore, re-exported here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascade_studio.core.datasets import backend_refusal
from cascade_studio.core.errors import UserError
from cascade_studio.core.finetune import JobEvent, JobSpec, JobState
from cascade_studio.core.tiers import Tier, teacher_of
from cascade_studio.services import events
from cascade_studio.services.finetune.openai_backend import OpenAIFineTuneBackend
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


def backends() -> list[dict[str, Any]]:
    """The backends this app knows, with whether each can be used here and why not."""
    from cascade_studio.services.finetune import local_backend

    local = local_backend.availability()
    return [{"name": "openai", "label": "OpenAI-compatible endpoint (a tier's)", "available": True,
             "message": "Sends the job to the fine-tuning API of a tier's endpoint."},
            {"name": "local", "label": "Local trainer (this machine)", "available": local.available,
             "message": local.message}]


def backend_for(ws: Workspace, tier_no: int | None, secrets: SecretStore) -> tuple[OpenAIFineTuneBackend, Tier]:
    tiers = TierRepository(ws).list()
    if not tiers:
        raise ValueError("define a tier first: its endpoint and key are where the job is sent")
    tier = next((t for t in tiers if t.tier == tier_no), None) if tier_no is not None else teacher_of(tiers)
    if tier is None:
        raise ValueError(f"no tier {tier_no}")
    return OpenAIFineTuneBackend(tier, secrets), tier


def backend_of_job(ws: Workspace, job: dict[str, Any], secrets: SecretStore) -> Any:
    if job["backend"] == "local":
        from cascade_studio.services.finetune.local_backend import LocalFineTuneBackend

        return LocalFineTuneBackend(ws.path)
    return backend_for(ws, job["tier_endpoint"], secrets)[0]


class DatasetRefused(UserError):
    """The dataset must not go to the backend; nothing was uploaded or started."""


def check_dataset(spec: JobSpec, backend_name: str, workspace_dir: Path | None = None) -> None:
    """Validate the training (and validation) file as the backend will read it, before anything is
    uploaded or started: a file the validator rejects is refused with the reason."""
    from cascade_studio.services.datasets import validate_file

    model = spec.base_model if backend_name == "openai" else "gpt-4o-mini"  # local: token counts are indicative
    for label, path in (("training", spec.training_file), ("validation", spec.validation_file)):
        if path is None:
            continue
        try:
            report = validate_file(Path(path), model, workspace_dir)
        except ValueError as exc:
            raise DatasetRefused(f"The {label} file cannot be used: {exc}") from None
        if label == "validation" or backend_name == "local":  # OpenAI's 10-example minimum is for its training files
            report.errors = [e for e in report.errors if e["kind"] != "too_few_examples"]
            report.error_counts.pop("too_few_examples", None)
        why = backend_refusal(report, backend_name)
        if why:
            raise DatasetRefused(f"Not started: the {label} file {Path(path).name}: {why}. Nothing was uploaded.")


async def start_job(ws: Workspace, spec: JobSpec, tier_no: int | None, secrets: SecretStore,
                    dataset_id: int | None = None, backend_name: str = "openai") -> tuple[JobState, str | None]:
    if backend_name == "local":
        from cascade_studio.services.finetune.local_backend import LocalFineTuneBackend

        backend: Any = LocalFineTuneBackend(ws.path)
        base_url, endpoint_tier = "", None
    elif backend_name == "openai":
        backend, tier = backend_for(ws, tier_no, secrets)
        base_url, endpoint_tier = tier.base_url, tier.tier
    else:
        raise ValueError(f"unknown backend {backend_name!r}: openai or local")
    try:
        if backend_name == "local":
            from cascade_studio.services.finetune.local_backend import availability

            avail = availability()
            if not avail.available:
                raise ValueError(avail.message)  # first: installing the extra is the first fix
        check_dataset(spec, backend_name, ws.path)
        warning = backend.deprecation_notice()
        train_id = await backend.upload(spec.training_file)
        valid_id = await backend.upload(spec.validation_file) if spec.validation_file else None
        state = await backend.start(spec, train_id, valid_id)
        JobStore(ws).save(state, backend=backend.name, base_url=base_url, tier=endpoint_tier, dataset_id=dataset_id)
        events.publish(events.JOBS, ws)
        return state, warning
    finally:
        await backend.close()


async def refresh(ws: Workspace, job_id: str, secrets: SecretStore) -> tuple[JobState, list[JobEvent]]:
    store = JobStore(ws)
    job = store.get(job_id)
    if job is None:
        raise ValueError(f"no fine-tune job {job_id} in this workspace; see `finetune list`")
    backend = backend_of_job(ws, job, secrets)
    try:
        state = await backend.status(job_id)
        new = await backend.events(job_id, store.event_ids(job_id))
    finally:
        await backend.close()
    store.save(state)
    store.add_events(job_id, new)
    return state, new


async def control(ws: Workspace, job_id: str, action: str, secrets: SecretStore) -> JobState:
    job = JobStore(ws).get(job_id)
    if job is None:
        raise ValueError(f"no fine-tune job {job_id} in this workspace")
    backend = backend_of_job(ws, job, secrets)
    try:
        state = await getattr(backend, action)(job_id)
    finally:
        await backend.close()
    JobStore(ws).save(state)
    events.publish(events.JOBS, ws)
    return state


async def watch(ws: Workspace, job_id: str, secrets: SecretStore, *, on_event: Callable[[JobEvent], None] | None = None,
                on_state: Callable[[JobState], None] | None = None, poll_s: float = 2.0, max_poll_s: float = 30.0,
                stop: asyncio.Event | None = None) -> JobState:
    """Poll until the job ends, with backoff when nothing changes."""
    delay = poll_s
    last_status = None
    while True:
        state, new = await refresh(ws, job_id, secrets)
        for e in new:
            if on_event:
                on_event(e)
        if on_state:
            on_state(state)
        if state.done or (stop is not None and stop.is_set()):
            return state
        delay = poll_s if (new or state.status != last_status) else min(max_poll_s, delay * 1.5)
        last_status = state.status
        await asyncio.sleep(delay)


class TeacherTierRefused(UserError):
    """A student's model would take the teacher's place (the highest tier): refused unless asked for
    in so many words (`replace_teacher`; the GUI's typed confirmation, `finetune use --replace-teacher`)."""


def teacher_taken(ws: Workspace, tier_no: int) -> Tier | None:
    """The teacher a model put in tier `tier_no` would replace or push down (tier `tier_no` is the
    teacher's, or a new tier above it), else None."""
    teacher = teacher_of(TierRepository(ws).list())
    return teacher if teacher is not None and tier_no >= teacher.tier else None


def use_as_tier(ws: Workspace, job_id: str, tier_no: int, base_url: str | None = None, *,
                replace_teacher: bool = False) -> Tier:
    """Put a succeeded job's model in tier `tier_no`, on the endpoint the job ran on (a local job's:
    the server it is served by, vLLM's address unless `base_url` says otherwise), with the catalog's
    fine-tuned prices where it knows them (a local model: no per-token price; edit it to your
    hardware's cost). The teacher's tier (or a new tier above it) only with `replace_teacher`; the
    tier set before is kept in the tier history (`tiers undo`)."""
    from cascade_studio.services import catalog as catalog_svc
    from cascade_studio.services.tier_service import set_tier

    teacher = teacher_taken(ws, tier_no)
    if teacher is not None and not replace_teacher:
        where = "replace the teacher" if tier_no == teacher.tier else f"become the teacher above tier {teacher.tier}"
        raise TeacherTierRefused(
            f"tier {tier_no} is the teacher's place: the fine-tuned model would {where} ({teacher.model}); "
            "put it in a lower tier, or confirm that the teacher is to be replaced (--replace-teacher)")
    return set_tier(ws, catalog_svc.load_for_workspace(ws.path), tier_no, **_job_tier_options(ws, job_id, base_url))


def candidate_tier(ws: Workspace, job_id: str, tier_no: int, base_url: str | None = None) -> tuple[Tier, list[Tier]]:
    """What `use_as_tier` would make of tier `tier_no`, and the tier set then, not saved: the model
    can be evaluated before it takes the tier."""
    from cascade_studio.services import catalog as catalog_svc
    from cascade_studio.services.tier_service import planned_tier

    return planned_tier(ws, catalog_svc.load_for_workspace(ws.path), tier_no, **_job_tier_options(ws, job_id, base_url))


def _job_tier_options(ws: Workspace, job_id: str, base_url: str | None) -> dict[str, Any]:
    from cascade_studio.services import catalog as catalog_svc

    job = JobStore(ws).get(job_id)
    if job is None or job["status"] != "succeeded" or not job["fine_tuned_model"]:
        raise ValueError(f"job {job_id} has not succeeded (yet); see `finetune status {job_id}`")
    catalog = catalog_svc.load_for_workspace(ws.path)
    source = TierRepository(ws).get(job["tier_endpoint"]) if job["tier_endpoint"] else None
    price = catalog.lookup("ft:" + job["base_model"])
    options: dict[str, Any] = {"model": job["fine_tuned_model"], "name": f"Fine-tuned {job['base_model']}"}
    if job["backend"] == "local":
        from cascade_studio.core.serving import VLLM_PORT
        from cascade_studio.core.tiers import Provider

        options.update(base_url=base_url or f"http://localhost:{VLLM_PORT}/v1", provider=Provider.COMPATIBLE,
                       name=f"Distilled {Path(job['base_model']).name}", input_price=Decimal(0), output_price=Decimal(0),
                       cached_price=Decimal(0))
        price = None
    elif base_url:
        options.update(base_url=base_url)
    elif source is not None:
        options.update(base_url=source.base_url, provider=source.provider)
    if price is not None:
        options.update(input_price=price.input_per_m, output_price=price.output_per_m,
                       cached_price=price.cached_input_per_m)
    return options
