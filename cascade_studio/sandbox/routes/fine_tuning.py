"""/v1/fine_tuning/jobs: simulated jobs whose progress, events and checkpoints follow the clock."""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.routes.common import (
    ApiError,
    Handler,
    expect,
    expect_metadata,
    id_page,
    invalid_type,
    paginate,
    read_json,
)
from cascade_studio.sandbox.state import ORG, FineTuneJob, metrics_csv, new_id, validate_training_file

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox

FINAL = ("succeeded", "failed", "cancelled")


def _required_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not value:
        raise ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    return expect(value, "string", name)


def _hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    """`hyperparameters` overlaid with `method.supervised.hyperparameters`, as given."""
    method = body.get("method") or {"type": "supervised"}
    if not isinstance(method, dict) or method.get("type", "supervised") != "supervised":
        raise ApiError(400, "The sandbox supports method.type 'supervised' only.", param="method",
                       code="unsupported_value")
    hp = dict(expect(body.get("hyperparameters"), "object", "hyperparameters") or {})
    supervised = expect(method.get("supervised"), "object", "method.supervised") or {}
    hp.update(expect(supervised.get("hyperparameters"), "object", "method.supervised.hyperparameters") or {})
    return hp


def _resolve(hp: dict[str, Any], examples: int) -> tuple[int, int, float]:
    """(epochs, batch size, learning-rate multiplier) with "auto" replaced as OpenAI does."""
    n_epochs = hp.get("n_epochs", "auto")
    if n_epochs == "auto":
        n_epochs = 3 if examples == 0 else max(1, min(10, math.ceil(100 / max(examples, 1))) if examples < 100 else 3)
    batch = hp.get("batch_size", "auto")
    if batch == "auto":
        batch = max(1, min(256, math.ceil(examples * 0.002)))
    lr = hp.get("learning_rate_multiplier", "auto")
    try:
        lr_value = 1.8 if lr == "auto" else float(lr)
    except (TypeError, ValueError):
        raise invalid_type("hyperparameters.learning_rate_multiplier", "'auto' or a number", lr) from None
    for name, value, lo, hi in (("n_epochs", n_epochs, 1, 50), ("batch_size", batch, 1, 256)):
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ApiError(400, f"Invalid '{name}': expected 'auto' or an integer {lo}-{hi}.",
                           param=f"hyperparameters.{name}")
    if not lr_value > 0 or not math.isfinite(lr_value):
        raise ApiError(400, "Invalid 'learning_rate_multiplier': must be > 0.",
                       param="hyperparameters.learning_rate_multiplier")
    return n_epochs, batch, lr_value


class FineTuningRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[tuple[str, str, Handler]]:
        base = "/v1/fine_tuning/jobs"
        return [
            (base, "POST", self.create_job),
            (base, "GET", self.list_jobs),
            (base + "/{job_id}", "GET", self.get_job),
            (base + "/{job_id}/events", "GET", self.job_events),
            (base + "/{job_id}/checkpoints", "GET", self.job_checkpoints),
            (base + "/{job_id}/cancel", "POST", self.cancel_job),
            (base + "/{job_id}/pause", "POST", self.pause_job),
            (base + "/{job_id}/resume", "POST", self.resume_job),
        ]

    async def create_job(self, request: Request) -> Any:
        sandbox = self.sandbox
        body = await read_json(request, sandbox.config.max_json_depth)
        model = _required_string(body, "model")
        base = model.split(":")[1] if model.startswith("ft:") else sim._dated_alias(model)
        if base not in sim.FINE_TUNABLE and model not in sandbox.fine_tuned:
            raise ApiError(400, f"Model {model} is not available for fine-tuning or does not exist.", param="model",
                           code="model_not_available")
        tf = _required_string(body, "training_file")
        training = sandbox.files.get(tf)
        if training is None:
            raise ApiError(400, f"Invalid file ID: {tf}", param="training_file", code="invalid_file_id")
        if training.purpose != "fine-tune":
            raise ApiError(400, f"File {tf} has purpose {training.purpose!r}; fine-tuning needs purpose 'fine-tune'.",
                           param="training_file", code="invalid_file_purpose")
        vf = expect(body.get("validation_file"), "string", "validation_file")
        if vf and vf not in sandbox.files:
            raise ApiError(400, f"Invalid file ID: {vf}", param="validation_file", code="invalid_file_id")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise ApiError(400, "'suffix' must be a string of at most 64 characters.", param="suffix")
        hp = _hyperparameters(body)
        seed = expect(body.get("seed"), "integer", "seed")
        expect_metadata(body.get("metadata"))
        examples, tokens, error = validate_training_file(training.content)
        n_epochs, batch, lr_value = _resolve(hp, examples)
        job = FineTuneJob(
            id=new_id("ftjob"), model=model, training_file=tf, validation_file=vf, suffix=suffix,
            seed=int(seed) if isinstance(seed, int) else random.Random(tf).randint(0, 2**31 - 1),
            created_at=time.time(), job_seconds=max(0.05, sandbox.config.job_seconds), n_epochs=n_epochs,
            batch_size=batch, lr_multiplier=lr_value, metadata=body.get("metadata"), examples=examples,
            tokens=tokens, validation_error=error,
            hyperparameters={"n_epochs": n_epochs, "batch_size": batch, "learning_rate_multiplier": lr_value},
        )
        sandbox.jobs[job.id] = job
        self._advance(job)
        return self._job_json(job)

    def _event(self, job: FineTuneJob, at: float, message: str, level: str = "info", type_: str = "message",
               data: dict[str, Any] | None = None) -> None:
        job.events.append({"object": "fine_tuning.job.event", "id": f"ftevent-{job.id[6:14]}{len(job.events):05d}",
                           "created_at": int(at), "level": level, "message": message, "type": type_,
                           "data": data or {}})

    def _advance(self, job: FineTuneJob) -> None:
        """Append the events that have become due, and finish the job when its time comes."""
        now = time.time()
        status = job.status(now)
        if not job.events:
            self._event(job, job.created_at, f"Created fine-tuning job: {job.id}")
            self._event(job, job.created_at, f"Validating training file: {job.training_file}")
        emitted = {e["message"] for e in job.events if e["type"] == "message"}

        def once(message: str, at: float, level: str = "info") -> None:
            if message not in emitted:
                self._event(job, at, message, level)
                emitted.add(message)

        phase = job.phase(now)
        if phase == "failed":
            once(f"Training file {job.training_file} failed validation: {job.validation_error}", now, "error")
            job.finished_at = job.finished_at or now
            return
        if phase in ("queued", "running", "succeeded"):
            once("Files validated, moving job to queued state", job.time_of(job.VALIDATE))
        if phase in ("running", "succeeded"):
            once("Fine-tuning job started", job.time_of(job.VALIDATE + job.QUEUE))
        self._emit_steps(job, now)
        if status == "succeeded" and job.fine_tuned_model is None:
            job.fine_tuned_model = f"ft:{job.model}:{ORG}:{job.suffix or ''}:{job.id[-8:]}"
            self.sandbox.remember_fine_tuned(job.fine_tuned_model, job.model)
            result = self.sandbox.file_routes.add_file("step_metrics.csv", "fine-tune-results", metrics_csv(job))
            job.result_file = result.id
            job.finished_at = now
            once(f"Checkpoint created at step {job.total_steps}", now)
            once(f"New fine-tuned model created: {job.fine_tuned_model}", now)
            once("The job has successfully completed", now)
        if status == "cancelled":
            job.finished_at = job.finished_at or job.cancelled_at
            once("Fine-tuning job cancelled", job.cancelled_at or now)

    def _emit_steps(self, job: FineTuneJob, now: float) -> None:
        """A metrics event for each step done since the last poll, a checkpoint at each epoch's end."""
        done_steps = {e["data"]["step"] for e in job.events if e["type"] == "metrics"}
        last = job.step_at(now)
        steps_per_epoch = max(1, job.total_steps // job.n_epochs)
        for step in range(1, last + 1):
            if step in done_steps:
                continue
            m = job.metrics(step)
            text = f"Step {step}/{job.total_steps}: training loss={m['train_loss']:.4f}"
            if "valid_loss" in m:
                text += f", validation loss={m['valid_loss']:.4f}"
            self._event(job, time.time(), text, type_="metrics", data=m)
            if step % steps_per_epoch == 0 or step == job.total_steps:
                ckpt_model = f"ft:{job.model}:{ORG}:{job.suffix or ''}:{job.id[-8:]}:ckpt-step-{step}"
                job.checkpoints.append({
                    "object": "fine_tuning.job.checkpoint", "id": f"ftckpt_{job.id[-8:]}{step:06d}",
                    "created_at": int(time.time()), "fine_tuned_model_checkpoint": ckpt_model,
                    "fine_tuning_job_id": job.id, "step_number": step,
                    "metrics": {k: v for k, v in m.items() if k in ("step", "train_loss", "train_mean_token_accuracy",
                                                                    "valid_loss", "valid_mean_token_accuracy")},
                })

    def _job_json(self, job: FineTuneJob) -> dict[str, Any]:
        now = time.time()
        status = job.status(now)
        if status == "succeeded" and job.fine_tuned_model is None:  # finished since _advance looked
            self._advance(job)
        error = None
        if status == "failed":
            error = {"code": "invalid_training_file", "message": job.validation_error, "param": "training_file"}
        estimated = None
        if status in ("queued", "running") and job.paused_since is None:
            remaining = job.job_seconds - job.active_elapsed(now)
            estimated = int(now + max(0.0, remaining))
        hp = job.hyperparameters
        return {
            "object": "fine_tuning.job", "id": job.id, "model": job.model, "created_at": int(job.created_at),
            "finished_at": int(job.finished_at) if job.finished_at and status in FINAL else None,
            "fine_tuned_model": job.fine_tuned_model if status == "succeeded" else None,
            "organization_id": ORG, "result_files": [job.result_file] if job.result_file else [],
            "status": status, "validation_file": job.validation_file, "training_file": job.training_file,
            "hyperparameters": hp,
            "trained_tokens": job.tokens * job.n_epochs if status == "succeeded" else None,
            "error": error, "seed": job.seed, "estimated_finish": estimated, "integrations": [],
            "user_provided_suffix": job.suffix,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
            "metadata": job.metadata,
        }

    def _job(self, request: Request) -> FineTuneJob:
        job = self.sandbox.jobs.get(request.path_params["job_id"])
        if job is None:
            raise ApiError(404, f"Could not find fine-tuning job {request.path_params['job_id']}.",
                           param="fine_tuning_job_id", code="fine_tuning_job_not_found")
        self._advance(job)
        return job

    async def get_job(self, request: Request) -> Any:
        return self._job_json(self._job(request))

    async def list_jobs(self, request: Request) -> Any:
        q = request.query_params
        jobs = sorted(self.sandbox.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        for j in jobs:
            self._advance(j)
        page, has_more = paginate(jobs, q.get("after"), q.get("limit"), 20, key=lambda j: j.id)
        return {"object": "list", "data": [self._job_json(j) for j in page], "has_more": has_more}

    async def job_events(self, request: Request) -> Any:
        job = self._job(request)
        events = list(reversed(job.events))  # newest first, as OpenAI lists them
        page, has_more = paginate(events, request.query_params.get("after"), request.query_params.get("limit"), 20,
                                  key=lambda e: e["id"])
        return {"object": "list", "data": page, "has_more": has_more}

    async def job_checkpoints(self, request: Request) -> Any:
        job = self._job(request)
        items = list(reversed(job.checkpoints))
        if job.status(time.time()) == "succeeded":
            items = items[:3]
        page, has_more = paginate(items, request.query_params.get("after"), request.query_params.get("limit"), 10,
                                  key=lambda c: c["id"])
        return id_page(page, has_more)

    async def cancel_job(self, request: Request) -> Any:
        job = self._job(request)
        status = job.status(time.time())
        if status in FINAL:
            raise ApiError(400, f"Job {job.id} has already {status} and cannot be cancelled.", code="invalid_state")
        if job.paused_since is not None:
            job.paused_total += time.time() - job.paused_since
            job.paused_since = None
        job.cancelled_at = time.time()
        self._advance(job)
        return self._job_json(job)

    async def pause_job(self, request: Request) -> Any:
        job = self._job(request)
        if job.status(time.time()) != "running" or job.paused_since is not None:
            raise ApiError(400, f"Job {job.id} is not running and cannot be paused.", code="invalid_state")
        job.paused_since = time.time()
        self._event(job, time.time(), "Fine-tuning job paused")
        return self._job_json(job)

    async def resume_job(self, request: Request) -> Any:
        job = self._job(request)
        if job.paused_since is None:
            raise ApiError(400, f"Job {job.id} is not paused.", code="invalid_state")
        job.paused_total += time.time() - job.paused_since
        job.paused_since = None
        self._event(job, time.time(), "Fine-tuning job resumed")
        return self._job_json(job)
