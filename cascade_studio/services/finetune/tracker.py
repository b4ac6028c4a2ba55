"""The poller that keeps fine-tune jobs current (backoff; resumes after a restart because every
unfinished job is in the workspace: store.jobs.JobStore, re-exported here)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
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


def backends(day: dt.date | None = None) -> list[dict[str, Any]]:
    """The backends this app knows: whether each can be used here, whether it can start a job today
    (`day`, default backend.today()), the date it stops taking jobs when it has one, and why."""
    from cascade_studio.services.finetune import local_backend
    from cascade_studio.services.finetune.backend import OPENAI_FT_CUTOFF, openai_takes_jobs, today

    day = day or today()
    local = local_backend.availability()
    cutoff = OPENAI_FT_CUTOFF.isoformat()
    if openai_takes_jobs(day):
        left = (OPENAI_FT_CUTOFF - day).days
        openai_msg = (f"api.openai.com takes new fine-tuning jobs until {cutoff} ({left} day{'s' if left != 1 else ''} "
                      "left); after that use Together or the local trainer. Other OpenAI-compatible endpoints are "
                      "not affected.")
    else:
        openai_msg = (f"api.openai.com stopped taking new fine-tuning jobs on {cutoff}: use Together or the local "
                      "trainer (the same dataset, no rebuild). Other OpenAI-compatible endpoints still work.")
    return [{"name": "openai", "label": "OpenAI-compatible endpoint (a tier's)", "available": True,
             "starts_jobs_today": openai_takes_jobs(day), "closes_on": cutoff, "message": openai_msg},
            {"name": "together", "label": "Together AI (LoRA or full, SFT or DPO)", "available": True,
             "starts_jobs_today": True, "closes_on": None,
             "message": "Sends the job to Together AI's fine-tuning API (https://api.together.xyz/v1) with a Together "
                        "key (`keys set https://api.together.xyz/v1` or TOGETHER_API_KEY); the price is estimated "
                        "before it starts."},
            {"name": "local", "label": "Local trainer (this machine)", "available": local.available,
             "starts_jobs_today": local.available, "closes_on": None, "message": local.message}]


def backends_line(day: dt.date | None = None) -> str:
    """One line for the page: per backend, whether it can start a job today."""
    from cascade_studio.services.finetune.backend import today

    day = day or today()
    parts = []
    for b in backends(day):
        name = {"openai": "OpenAI", "together": "Together", "local": "Local"}[b["name"]]
        if b["name"] == "openai":
            left = (dt.date.fromisoformat(b["closes_on"]) - day).days
            state = (f"until {b['closes_on']} ({left} days left)" if b["starts_jobs_today"]
                     else f"closed since {b['closes_on']}")
        else:
            state = "yes" if b["starts_jobs_today"] else "not installed"
        parts.append(f"{name}: {state}")
    return "Starts jobs today — " + " · ".join(parts)


def backend_for(ws: Workspace, tier_no: int | None, secrets: SecretStore) -> tuple[OpenAIFineTuneBackend, Tier]:
    tiers = TierRepository(ws).list()
    if not tiers:
        raise ValueError("define a tier first: its endpoint and key are where the job is sent")
    tier = next((t for t in tiers if t.tier == tier_no), None) if tier_no is not None else teacher_of(tiers)
    if tier is None:
        raise ValueError(f"no tier {tier_no}")
    return OpenAIFineTuneBackend(tier, secrets), tier


def backend_of_job(ws: Workspace, job: dict[str, Any], secrets: SecretStore) -> Any:
    if job["backend"] == "together":
        from cascade_studio.services.finetune.together_backend import TogetherFineTuneBackend

        return TogetherFineTuneBackend(job["base_url"], secrets)
    if job["backend"] == "local":
        from cascade_studio.services.finetune.local_backend import LocalFineTuneBackend

        return LocalFineTuneBackend(ws.path)
    return backend_for(ws, job["tier_endpoint"], secrets)[0]


class DatasetRefused(UserError):
    """The dataset must not go to the backend; nothing was uploaded or started."""


def local_options(training_type: str = "lora", objective: str = "sft", *, alpha: float = 0.5,
                  temperature: float = 2.0, mass: str = "drop", soft_labels: str = "auto", device: str = "auto",
                  lora_rank: int = 16, max_length: int = 2048, merge: bool = True, teacher_logprobs: str | None = None,
                  beta: float | None = None, devices: int = 1, nodes: int = 1, **optional: Any) -> dict[str, Any]:
    """The local trainer's options, the one place `finetune start --backend local` and the Fine-tuning
    page build them (the defaults are the CLI's). `training_type` lora or full, `objective` sft or dpo;
    `optional` (learning_rate, max_steps, checkpoint_every, resume_from, rdzv_endpoint) only when set.
    ValueError names a value out of range."""
    if not 0 <= alpha <= 1 or temperature <= 0:
        raise ValueError("--alpha is between 0 and 1, --temperature above 0")
    if devices < 1 or nodes < 1:
        raise ValueError("--devices and --nodes are at least 1")
    options: dict[str, Any] = {"method": training_type, "alpha": alpha, "temperature": temperature, "mass": mass,
                               "soft_labels": soft_labels, "device": device, "lora_rank": lora_rank,
                               "max_length": max_length, "merge": merge}
    if teacher_logprobs:
        if not Path(teacher_logprobs).is_file():
            raise ValueError(f"{teacher_logprobs} does not exist")
        options["teacher_logprobs"] = str(Path(teacher_logprobs).resolve())
    for key in ("learning_rate", "max_steps", "checkpoint_every", "resume_from", "rdzv_endpoint"):
        if optional.get(key) is not None:
            options[key] = optional[key]
    if objective == "dpo":
        options["objective"] = "dpo"
        if beta is not None:
            if beta <= 0:
                raise ValueError("--beta is above 0")
            options["dpo_beta"] = beta
    if devices > 1 or nodes > 1:
        options.update(devices=devices, nodes=nodes)
    return options


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
        why = backend_refusal(report, backend_name, spec.options.get("objective") or spec.options.get("method"))
        if why:
            raise DatasetRefused(f"Not started: the {label} file {Path(path).name}: {why}. Nothing was uploaded.")


def check_together_dataset(spec: JobSpec) -> dict[str, Any]:
    """The training (and validation) file by Together's rules, as it will be uploaded (an OpenAI-format
    file converted): refused with the first problems, before anything is uploaded. {label: report}."""
    from cascade_studio.core.together_format import check_lines, converted_lines

    reports = {}
    for label, path in (("training", spec.training_file), ("validation", spec.validation_file)):
        if path is None:
            continue
        try:
            with open(path, "rb") as fh:
                content, _ = converted_lines(fh)
        except OSError as exc:
            raise DatasetRefused(f"The {label} file cannot be read: {exc.strerror or exc}") from None
        report = check_lines(content.splitlines(), size=Path(path).stat().st_size)
        if not report.ok:
            raise DatasetRefused(f"Not started: the {label} file {Path(path).name} does not follow Together's rules: "
                                 f"{report.summary()}. Nothing was uploaded.")
        reports[label] = report
    return reports


@dataclass
class PreparedJob:
    """A Together job whose files are uploaded and whose price is known, waiting for a yes."""

    spec: JobSpec
    base_url: str
    training_file_id: str
    validation_file_id: str | None
    estimate: Any  # together_backend.PriceEstimate
    dataset_id: int | None = None


async def prepare_together(spec: JobSpec, secrets: SecretStore, base_url: str | None = None,
                           dataset_id: int | None = None) -> PreparedJob:
    """Everything before Together bills anything: the files checked by Together's rules, the model's
    limits (`models/limits`), the upload, and the price (`estimate-price`)."""
    from cascade_studio.core.together_format import limit_problems
    from cascade_studio.services.finetune.together_backend import TogetherError, TogetherFineTuneBackend

    reports = check_together_dataset(spec)
    backend = TogetherFineTuneBackend(base_url, secrets)
    try:
        limits = await backend.model_limits(spec.base_model)
        if limits.get("merge_output_lora") is True:
            spec.options["merge_output_lora"] = True  # served as a full model: a dedicated endpoint
        if spec.validation_file is not None and "n_evals" not in spec.options:
            most = limits.get("max_num_evals")
            spec.options["n_evals"] = min(5, most) if isinstance(most, int) else 5
        problems = [p for label, report in reports.items()
                    for p in limit_problems(limits, backend.run(spec), report if label == "training" else None)]
        if problems:
            raise DatasetRefused(f"Not started: {'; '.join(dict.fromkeys(problems))}. Nothing was uploaded.")
        train_id = await backend.upload(spec.training_file)
        valid_id = await backend.upload(spec.validation_file) if spec.validation_file else None
        estimate = await backend.estimate_price(spec, train_id, valid_id)
    finally:
        await backend.close()
    if estimate.allowed is False:
        raise TogetherError(f"Not started: {estimate.sentence()} Together does not allow this job on your account "
                            "(over its credit limit?). The files are uploaded; nothing is billed.")
    return PreparedJob(spec, backend.base_url, train_id, valid_id, estimate, dataset_id)


async def launch_together(ws: Workspace, prepared: PreparedJob, secrets: SecretStore) -> JobState:
    """Create the prepared job (this is what Together bills) and keep it in the workspace."""
    from cascade_studio.services.finetune.together_backend import TogetherFineTuneBackend

    backend = TogetherFineTuneBackend(prepared.base_url, secrets)
    try:
        state = await backend.start(prepared.spec, prepared.training_file_id, prepared.validation_file_id)
    finally:
        await backend.close()
    if prepared.estimate is not None and prepared.estimate.price is not None:
        state.hyperparameters["estimated_price_usd"] = str(prepared.estimate.price)
    JobStore(ws).save(state, backend="together", base_url=prepared.base_url, tier=None, dataset_id=prepared.dataset_id)
    events.publish(events.JOBS, ws)
    return state


class OverPrice(UserError):
    """Together's estimate is above the price the user allowed; nothing was started."""


async def start_job(ws: Workspace, spec: JobSpec, tier_no: int | None, secrets: SecretStore,
                    dataset_id: int | None = None, backend_name: str = "openai", *, base_url: str | None = None,
                    max_price: Decimal | None = None,
                    on_estimate: Callable[[Any], None] | None = None) -> tuple[JobState, str | None]:
    """Start a job on `backend_name`: "openai" (a tier's endpoint), "together" (`base_url`, default
    Together's API; refused when its estimate is above `max_price`) or "local"."""
    if backend_name == "together":
        prepared = await prepare_together(spec, secrets, base_url, dataset_id)
        if on_estimate is not None:
            on_estimate(prepared.estimate)
        price = prepared.estimate.price
        if max_price is not None and (price is None or price > max_price):
            raise OverPrice(f"Not started: {prepared.estimate.sentence()} That is above your limit of ${max_price:,.2f} "
                            "(--max-price). The files are uploaded; nothing is billed.")
        return await launch_together(ws, prepared, secrets), None
    if backend_name == "local":
        from cascade_studio.services.finetune.local_backend import LocalFineTuneBackend

        backend: Any = LocalFineTuneBackend(ws.path)
        base_url, endpoint_tier = "", None
    elif backend_name == "openai":
        from cascade_studio.core.tiers import is_openai_url
        from cascade_studio.services.finetune.backend import OPENAI_FT_CUTOFF, openai_takes_jobs, today

        backend, tier = backend_for(ws, tier_no, secrets)
        base_url, endpoint_tier = tier.base_url, tier.tier
        if is_openai_url(base_url) and not openai_takes_jobs(today()):
            await backend.close()
            raise UserError(f"Not started: OpenAI stopped taking new fine-tuning jobs on {OPENAI_FT_CUTOFF.isoformat()}. "
                            "Send the same dataset to Together (`--backend together`) or train it on this machine "
                            "(`--backend local`); no rebuild is needed.")
    else:
        raise ValueError(f"unknown backend {backend_name!r}: openai, together or local")
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


def _keep_chosen(job: dict[str, Any], state: JobState) -> None:
    """A Together job's settings as chosen and quoted at the start (the price estimate, the training
    type by name) are not in Together's later answers: keep them beside what Together says now."""
    if job["backend"] == "together":
        state.hyperparameters = {**job["hyperparameters"], **state.hyperparameters}


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
    _keep_chosen(job, state)
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
    _keep_chosen(job, state)
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
    if job["backend"] == "together":
        from cascade_studio.core.tiers import Provider

        # Together serves its fine-tunes at its OpenAI-compatible API, under the job's output name
        options.update(base_url=base_url or job["base_url"], provider=Provider.COMPATIBLE,
                       name=f"Fine-tuned {job['base_model'].split('/')[-1]} (Together)")
        base = job["base_model"]
        price = next((p for p in (catalog.lookup(f"together_ai/{base}"),
                                  catalog.lookup(f"together_ai/{base.removesuffix('-Reference')}"),
                                  catalog.lookup(base)) if p is not None), None)
        if price is None:
            raise ValueError(f"The price catalog does not know {base} on Together, so the tier's prices would be "
                             "wrong. Set the tier by hand: `cascade-studio tiers set N --model "
                             f"{job['fine_tuned_model']} --base-url {options['base_url']} --input-price X "
                             "--output-price Y` (USD per 1M tokens).")
    elif job["backend"] == "local":
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
