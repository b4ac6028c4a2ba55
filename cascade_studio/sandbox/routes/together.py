"""Together AI's fine-tuning API (its published OpenAPI description): `/v1/files/upload` and
`/v1/fine-tunes...`, with simulated jobs that follow the clock like the OpenAI-style ones. The paths
do not meet OpenAI's (`/v1/files`, `/v1/fine_tuning/jobs`), so one sandbox answers both; a
finished job's model answers chat requests under its output name, as Together serves it.

Shapes follow the spec's schemas (FileResponse, FinetuneResponse[Truncated], FineTuneEvent,
FineTuneCheckpoint, FineTuneModelLimits, the metrics and estimate-price answers); errors use
Together's ErrorData envelope, which is OpenAI's."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from cascade_studio.sandbox.routes.common import ApiError, Handler, read_json
from cascade_studio.sandbox.state import StoredFile

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox

ORG = "sandbox-user"
# model -> (parameters, supports full training, supports tools): what /fine-tunes/models/limits says
MODELS = {
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference": (8_000_000_000, True, True),
    "Qwen/Qwen2.5-7B-Instruct": (7_600_000_000, True, False),
    "meta-llama/Llama-3.2-1B-Instruct": (1_200_000_000, True, True),
    "meta-llama/Llama-3.3-70B-Instruct-Reference": (70_000_000_000, False, True),
}
# USD per 1M training tokens (LoRA SFT, full SFT), by size; DPO costs 2.5x (Together's published list)
PRICES = ((16e9, 0.48, 0.54), (69e9, 1.50, 1.65), (1e12, 2.90, 3.20))
USER_LIMIT = 500.0


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TogetherJob:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    created_at: float
    job_seconds: float
    examples: int
    tokens: int
    n_epochs: int
    batch_size: int
    learning_rate: float
    n_evals: int
    n_checkpoints: int
    training_type: dict[str, Any]
    training_method: dict[str, Any]
    suffix: str | None
    seed: int | None
    from_checkpoint: str | None
    output_name: str
    cancel_requested_at: float | None = None
    cancel_seen: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return max(1, self.n_epochs * math.ceil(self.examples / max(1, self.batch_size)))

    def elapsed(self, now: float) -> float:
        return max(0.0, (self.cancel_requested_at or now) - self.created_at) / self.job_seconds

    def status(self, now: float) -> str:
        if self.cancel_requested_at is not None:
            return "cancelled" if self.cancel_seen else "cancel_requested"
        t = self.elapsed(now)
        return ("pending" if t < 0.05 else "queued" if t < 0.15 else "running" if t < 0.9
                else "uploading" if t < 1.0 else "completed")

    def step_at(self, now: float) -> int:
        return max(0, min(self.total_steps, int((self.elapsed(now) - 0.15) / 0.75 * self.total_steps)))

    def loss(self, step: int, eval_: bool = False) -> float:
        rng = random.Random(f"{self.id}|{step}|{eval_}")
        base = 0.3 + 1.8 * math.exp(-4.0 * step / self.total_steps)
        return round(max(0.01, base * (1.07 if eval_ else 1.0) + rng.gauss(0, 0.04)), 5)


class TogetherRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.jobs: dict[str, TogetherJob] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("/v1/files/upload", "POST", self.upload),
            ("/v1/fine-tunes", "POST", self.create),
            ("/v1/fine-tunes", "GET", self.list_jobs),
            ("/v1/fine-tunes/estimate-price", "POST", self.estimate_price),
            ("/v1/fine-tunes/models/supported", "GET", self.supported),
            ("/v1/fine-tunes/models/limits", "GET", self.limits),
            ("/v1/fine-tunes/{id}", "GET", self.retrieve),
            ("/v1/fine-tunes/{id}/events", "GET", self.list_events),
            ("/v1/fine-tunes/{id}/checkpoints", "GET", self.checkpoints),
            ("/v1/fine-tunes/{id}/metrics", "GET", self.metrics),
            ("/v1/fine-tunes/{id}/cancel", "POST", self.cancel),
        ]

    # -- files -----------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Any:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(400, "Upload the file as multipart/form-data (purpose, file_name, file).")
        try:
            form = await request.form()
        except HTTPException as exc:
            raise ApiError(400, f"Could not parse the multipart form: {exc.detail}", param="file") from None
        purpose, name, upload = form.get("purpose"), form.get("file_name"), form.get("file")
        if purpose not in ("fine-tune", "eval", "eval-sample", "eval-output", "eval-summary", "batch-generated",
                           "batch-api"):
            raise ApiError(400, f"Invalid purpose {purpose!r}.", param="purpose")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "Missing required field 'file_name'.", param="file_name")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Missing required field 'file'.", param="file")
        file_type = form.get("file_type") or "jsonl"
        if file_type not in ("jsonl", "csv", "parquet"):
            raise ApiError(400, f"Invalid file_type {file_type!r}.", param="file_type")
        content = await upload.read()
        f = StoredFile(f"file-{uuid.uuid4()}", name, str(purpose), content, int(time.time()))
        self.sandbox.files[f.id] = f
        return {"id": f.id, "object": "file", "created_at": f.created_at, "filename": name, "bytes": len(content),
                "purpose": purpose, "FileType": file_type, "Processed": True}

    def _examples(self, file_id: Any, param: str) -> tuple[int, int]:
        f = self.sandbox.files.get(file_id) if isinstance(file_id, str) else None
        if f is None:
            raise ApiError(400, f"File {file_id} not found.", param=param)
        examples, chars = 0, 0
        for raw in f.content.splitlines():
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                raise ApiError(400, f"{f.filename} is not JSONL.", param=param) from None
            if not isinstance(row, dict) or not ({"messages"} <= set(row) or {"input", "preferred_output"} <= set(row)
                                                 or "text" in row or "prompt" in row):
                raise ApiError(400, f"{f.filename}: a line in no dataset format Together reads.", param=param)
            if "parallel_tool_calls" in row:
                raise ApiError(400, f'{f.filename}: found extra column "parallel_tool_calls".', param=param)
            examples += 1
            chars += len(raw)
        return examples, max(1, chars // 4)

    # -- jobs ------------------------------------------------------------------------------------
    def _body(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if model not in MODELS:
            raise ApiError(400, f"Model {model!r} is not supported for fine-tuning.", param="model")
        method = body.get("training_method") or {"method": "sft", "train_on_inputs": "auto"}
        if not isinstance(method, dict) or method.get("method") not in ("sft", "dpo"):
            raise ApiError(400, "training_method.method must be 'sft' or 'dpo'.", param="training_method")
        kind = body.get("training_type") or {"type": "Lora", "lora_r": 8, "lora_alpha": 16}
        if not isinstance(kind, dict) or kind.get("type") not in ("Lora", "Full"):
            raise ApiError(400, "training_type.type must be 'Lora' or 'Full'.", param="training_type")
        if kind["type"] == "Full" and not MODELS[model][1]:
            raise ApiError(400, f"{model} does not support full fine-tuning.", param="training_type")
        n_epochs = body.get("n_epochs", 1)
        if not isinstance(n_epochs, int) or not 1 <= n_epochs <= 20:
            raise ApiError(400, "n_epochs must be an integer 1-20.", param="n_epochs")
        return {"model": model, "method": method, "kind": kind, "n_epochs": n_epochs}

    def _price(self, model: str, kind: dict[str, Any], method: dict[str, Any], tokens: float) -> float:
        size = MODELS[model][0]
        per_m = next(p[1] if kind["type"] == "Lora" else p[2] for p in PRICES if size <= p[0])
        return round(tokens / 1e6 * per_m * (2.5 if method["method"] == "dpo" else 1.0), 6)

    async def estimate_price(self, request: Request) -> Any:
        body = await read_json(request, self.sandbox.config.max_json_depth)
        if body.get("model") not in MODELS:
            raise ApiError(400, "Specify a supported model.", param="model")
        b = self._body(body)
        examples, tokens = self._examples(body.get("training_file"), "training_file")
        eval_tokens = self._examples(body["validation_file"], "validation_file")[1] if body.get("validation_file") else 0
        train = tokens * b["n_epochs"]
        price = self._price(b["model"], b["kind"], b["method"], train + eval_tokens * body.get("n_evals", 0))
        return {"estimated_total_price": price, "allowed_to_proceed": price <= USER_LIMIT, "user_limit": USER_LIMIT,
                "estimated_train_token_count": train, "estimated_eval_token_count": eval_tokens * body.get("n_evals", 0)}

    async def create(self, request: Request) -> Any:
        body = await read_json(request, self.sandbox.config.max_json_depth)
        for name in ("training_file", "model"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ApiError(400, f"Missing required field '{name}'.", param=name)
        b = self._body(body)
        examples, tokens = self._examples(body["training_file"], "training_file")
        if body.get("validation_file"):
            self._examples(body["validation_file"], "validation_file")
        batch = body.get("batch_size", "max")
        job_id = f"ft-{uuid.uuid4()}"
        suffix = body.get("suffix")
        stem = b["model"].split("/")[-1]
        job = TogetherJob(
            id=job_id, model=b["model"], training_file=body["training_file"],
            validation_file=body.get("validation_file"), created_at=time.time(),
            job_seconds=max(0.05, self.sandbox.config.job_seconds), examples=examples, tokens=tokens,
            n_epochs=b["n_epochs"], batch_size=batch if isinstance(batch, int) else 8,
            learning_rate=float(body.get("learning_rate", 1e-5)), n_evals=int(body.get("n_evals", 0)),
            n_checkpoints=int(body.get("n_checkpoints", 1)), training_type=b["kind"], training_method=b["method"],
            suffix=suffix, seed=body.get("random_seed"), from_checkpoint=body.get("from_checkpoint"),
            output_name=f"{ORG}/{stem}-{suffix + '-' if suffix else ''}{job_id[3:11]}")
        self.jobs[job.id] = job
        self._advance(job)
        return self._truncated(job)

    def _job(self, request: Request) -> TogetherJob:
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            raise ApiError(404, f"Fine-tune job {request.path_params['id']} not found.", param="id")
        self._advance(job)
        return job

    def _event(self, job: TogetherJob, at: float, type_: str, message: str, level: str = "info",
               step: int = 0, **extra: Any) -> None:
        job.events.append({"object": "fine-tune-event", "created_at": _iso(at), "level": level, "message": message,
                           "type": type_, "param_count": MODELS[job.model][0], "token_count": job.tokens,
                           "total_steps": job.total_steps, "wandb_url": "", "step": step,
                           "checkpoint_path": extra.get("checkpoint_path", ""), "model_path": extra.get("model_path", ""),
                           "training_offset": 0, "hash": f"{job.id}-{len(job.events):04d}"})

    def _checkpoint_steps(self, job: TogetherJob) -> list[int]:
        n = max(1, job.n_checkpoints)
        return sorted({max(1, round(job.total_steps * (i + 1) / n)) for i in range(n)})

    def _advance(self, job: TogetherJob) -> None:
        """Append the events that have come due."""
        now = time.time()
        done = {e["type"] + str(e["step"]) for e in job.events}

        def once(type_: str, message: str, at: float, step: int = 0, **extra: Any) -> None:
            if type_ + str(step) not in done:
                self._event(job, at, type_, message, step=step, **extra)
                done.add(type_ + str(step))

        once("job_pending", f"Fine-tune job {job.id} created", job.created_at)
        status = job.status(now)
        if status in ("cancel_requested", "cancelled"):
            once("cancel_requested", "Cancel requested", job.cancel_requested_at or now)
            if status == "cancelled":
                once("job_stopped", "Job stopped", now)
            return
        if status == "pending":
            return
        once("training_data_downloading", "Training data downloading", job.created_at + 0.05 * job.job_seconds)
        if status == "queued":
            return
        once("training_start", "Training started", job.created_at + 0.15 * job.job_seconds)
        step = job.step_at(now)
        for s in self._checkpoint_steps(job):
            if s <= step and s < job.total_steps:
                once("checkpoint_save", f"Checkpoint saved at step {s}", now, step=s,
                     checkpoint_path=f"s3://sandbox/{job.id}/checkpoint-{s}")
        if status in ("uploading", "completed"):
            once("training_complete", "Training completed", now, step=job.total_steps)
            once("model_uploading", "Uploading the model", now)
        if status == "completed":
            once("model_upload_complete", f"Model uploaded: {job.output_name}", now,
                 model_path=f"s3://sandbox/{job.id}/model")
            once("job_complete", f"Fine-tuning job {job.id} completed. Model: {job.output_name}", now)
            if job.output_name not in self.sandbox.fine_tuned:
                self.sandbox.remember_fine_tuned(job.output_name, job.model)

    def _truncated(self, job: TogetherJob) -> dict[str, Any]:
        now = time.time()
        out = {"id": job.id, "status": job.status(now), "created_at": _iso(job.created_at), "updated_at": _iso(now),
               "user_id": ORG, "owner_address": ORG, "token_count": job.tokens * job.n_epochs, "events": [],
               "training_file": job.training_file, "model": job.model, "model_output_name": job.output_name,
               "n_epochs": job.n_epochs, "n_evals": job.n_evals, "n_checkpoints": job.n_checkpoints,
               "batch_size": job.batch_size, "learning_rate": job.learning_rate, "training_type": job.training_type,
               "training_method": job.training_method}
        if job.seed is not None:  # the spec's `nullable` is OpenAPI 3.0's: a 3.1 reader takes no null here
            out["random_seed"] = job.seed
        if job.validation_file:
            out["validation_file"] = job.validation_file
        if job.suffix:
            out["suffix"] = job.suffix
        if job.from_checkpoint:
            out["from_checkpoint"] = job.from_checkpoint
        return out

    def _full(self, job: TogetherJob) -> dict[str, Any]:
        out = self._truncated(job)
        for key in ("user_id", "owner_address", "suffix", "random_seed"):
            out.pop(key, None)
        now = time.time()
        remaining = max(0, int((1.0 - job.elapsed(now)) * job.job_seconds))
        out.update(events=job.events, model_output_path=f"s3://sandbox/{job.id}/model",
                   trainingfile_numlines=job.examples, epochs_completed=min(job.n_epochs, int(
                       job.step_at(now) / job.total_steps * job.n_epochs)), queue_depth=0,
                   progress={"estimate_available": out["status"] in ("queued", "running"),
                             "seconds_remaining": remaining})
        if out["status"] == "running":
            out["started_at"] = _iso(job.created_at + 0.15 * job.job_seconds)
        return out

    async def retrieve(self, request: Request) -> Any:
        return self._full(self._job(request))

    async def list_jobs(self, request: Request) -> Any:
        for job in self.jobs.values():
            self._advance(job)
        return {"data": [self._truncated(j) for j in sorted(self.jobs.values(), key=lambda j: j.created_at)]}

    async def list_events(self, request: Request) -> Any:
        return {"data": self._job(request).events}

    async def checkpoints(self, request: Request) -> Any:
        job = self._job(request)
        step = job.step_at(time.time())
        data = [{"step": s, "created_at": _iso(time.time()), "path": f"s3://sandbox/{job.id}/checkpoint-{s}",
                 "checkpoint_type": "Intermediate"} for s in self._checkpoint_steps(job) if s <= step and s < job.total_steps]
        if job.status(time.time()) == "completed":
            data.append({"step": job.total_steps, "created_at": _iso(time.time()), "path": f"s3://sandbox/{job.id}/model",
                         "checkpoint_type": "Final Merged" if job.training_type["type"] == "Full" else "Final Adapter"})
        return {"data": data}

    async def metrics(self, request: Request) -> Any:
        job = self._job(request)
        last = job.step_at(time.time())
        rows: list[dict[str, float]] = [{"train/loss": job.loss(s), "train/learning_rate": job.learning_rate,
                                         "train/global_step": s} for s in range(1, last + 1)]
        if job.validation_file and job.n_evals:
            every = max(1, job.total_steps // job.n_evals)
            rows += [{"eval/loss": job.loss(s, True), "train/global_step": s}
                     for s in range(every, last + 1, every)]
        rows.sort(key=lambda r: r["train/global_step"])
        return {"metrics": rows}

    async def cancel(self, request: Request) -> Any:
        job = self._job(request)
        if job.status(time.time()) in ("completed", "cancelled", "error"):
            raise ApiError(400, f"Job {job.id} has already finished.", param="id")
        job.cancel_requested_at = time.time()
        self._advance(job)
        out = self._truncated(job)  # cancel_requested in this answer; cancelled from the next read on
        job.cancel_seen = True
        return out

    # -- models ----------------------------------------------------------------------------------
    async def supported(self, request: Request) -> Any:
        return {"models": sorted(MODELS)}

    async def limits(self, request: Request) -> Any:
        from starlette.responses import JSONResponse

        model = request.query_params.get("model_name")
        if model not in MODELS:
            return JSONResponse({"message": f"Model {model} is not available for fine-tuning."}, status_code=404)
        params, full, tools = MODELS[model]
        out: dict[str, Any] = {
            "model_name": model, "max_num_epochs": 20, "max_num_evals": 100, "max_learning_rate": 1.0,
            "min_learning_rate": 1e-8, "supports_vision": False, "supports_tools": tools, "supports_reasoning": False,
            "merge_output_lora": False,
            "lora_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8, "max_rank": 64,
                              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"]}}
        if full:
            out["full_training"] = {"max_batch_size": 16, "max_batch_size_dpo": 8, "min_batch_size": 8}
        return out
