"""The sandbox's HTTP API (Starlette). Shapes and status codes follow the official OpenAI spec."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.faults import FaultSpec
from cascade_studio.sandbox.state import (
    ORG,
    Batch,
    FineTuneJob,
    StoredFile,
    metrics_csv,
    new_id,
    validate_training_file,
)
from cascade_studio.sandbox.tokens import count_message_tokens, count_tokens

MODEL_CREATED = 1715367049


class JSONResponse(_StarletteJSONResponse):
    """orjson: logprob-heavy bodies encode ~10x faster than with the json module."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass
class SandboxConfig:
    seed: int = 0
    latency_scale: float = 1.0
    job_seconds: float = 6.0
    faults: FaultSpec = field(default_factory=FaultSpec)
    api_keys: set[str] | None = None  # None: any non-empty key is accepted


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class DroppedResponse(Response):
    """Announce a body, send part of it, then stop: the client sees the connection drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"id": "chatcmpl-', "more_body": True})
        raise ConnectionResetError("sandbox: simulated dropped connection")


class Sandbox:
    """State and handlers. One instance per server."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, FineTuneJob] = {}
        self.batches: dict[str, Batch] = {}
        self.fine_tuned: dict[str, str] = {}  # model id -> base model
        self._fault_rng = random.Random(self.config.seed)
        self._prefix_cache: set[str] = set()
        self.request_count = 0
        self.app = Starlette(routes=self._routes(), exception_handlers={ApiError: self._api_error})

    # -- plumbing ------------------------------------------------------------------------
    @staticmethod
    async def _api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    def _routes(self) -> list[Route]:
        r = Route
        return [
            r("/v1/models", self._guard(self.list_models), methods=["GET"]),
            r("/v1/models/{model:path}", self._guard(self.get_model), methods=["GET"]),
            r("/v1/chat/completions", self._guard(self.chat_completions), methods=["POST"]),
            r("/v1/embeddings", self._guard(self.embeddings), methods=["POST"]),
            r("/v1/files", self._guard(self.upload_file), methods=["POST"]),
            r("/v1/files", self._guard(self.list_files), methods=["GET"]),
            r("/v1/files/{file_id}", self._guard(self.get_file), methods=["GET"]),
            r("/v1/files/{file_id}", self._guard(self.delete_file), methods=["DELETE"]),
            r("/v1/files/{file_id}/content", self._guard(self.file_content), methods=["GET"]),
            r("/v1/fine_tuning/jobs", self._guard(self.create_job), methods=["POST"]),
            r("/v1/fine_tuning/jobs", self._guard(self.list_jobs), methods=["GET"]),
            r("/v1/fine_tuning/jobs/{job_id}", self._guard(self.get_job), methods=["GET"]),
            r("/v1/fine_tuning/jobs/{job_id}/events", self._guard(self.job_events), methods=["GET"]),
            r("/v1/fine_tuning/jobs/{job_id}/checkpoints", self._guard(self.job_checkpoints), methods=["GET"]),
            r("/v1/fine_tuning/jobs/{job_id}/cancel", self._guard(self.cancel_job), methods=["POST"]),
            r("/v1/fine_tuning/jobs/{job_id}/pause", self._guard(self.pause_job), methods=["POST"]),
            r("/v1/fine_tuning/jobs/{job_id}/resume", self._guard(self.resume_job), methods=["POST"]),
            r("/v1/batches", self._guard(self.create_batch), methods=["POST"]),
            r("/v1/batches", self._guard(self.list_batches), methods=["GET"]),
            r("/v1/batches/{batch_id}", self._guard(self.get_batch), methods=["GET"]),
            r("/v1/batches/{batch_id}/cancel", self._guard(self.cancel_batch), methods=["POST"]),
        ]

    def _guard(self, handler):
        async def endpoint(request: Request) -> Response:
            self.request_count += 1
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not key:
                raise ApiError(401, "You didn't provide an API key. You need to provide your API key in an "
                               "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                               code=None)
            if self.config.api_keys is not None and key not in self.config.api_keys:
                raise ApiError(401, f"Incorrect API key provided: {key[:3]}***{key[-2:]}.", code="invalid_api_key")
            result = await handler(request)
            if isinstance(result, Response):
                return result
            return JSONResponse(result, headers={"x-request-id": "req_" + secrets.token_hex(8)})

        return endpoint

    async def _json(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                           "aren't using your HTTP library correctly.)") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    async def _maybe_fault(self) -> Response | None:
        fault = self.config.faults.pick(self._fault_rng)
        if fault is None:
            return None
        spec = self.config.faults
        if fault == "429":
            reset = f"{spec.retry_after_s:g}s"
            raise ApiError(429, "Rate limit reached for requests (simulated by the sandbox). Please try again in "
                           f"{spec.retry_after_s:g}s.", type_="requests", code="rate_limit_exceeded",
                           headers={"retry-after": f"{spec.retry_after_s:g}", "x-ratelimit-limit-requests": "500",
                                    "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset,
                                    "x-ratelimit-limit-tokens": "200000", "x-ratelimit-remaining-tokens": "0",
                                    "x-ratelimit-reset-tokens": reset})
        if fault == "500":
            raise ApiError(500, "The server had an error while processing your request (simulated). Sorry about that!",
                           type_="server_error")
        if fault == "503":
            raise ApiError(503, "The engine is currently overloaded (simulated), please try again later.",
                           type_="server_error", headers={"retry-after": f"{spec.retry_after_s:g}"})
        if fault == "slow":
            await asyncio.sleep(spec.slow_s)
            return None
        return DroppedResponse()

    # -- models --------------------------------------------------------------------------
    def _all_models(self) -> list[dict[str, Any]]:
        out = [{"id": m, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}
               for m in [*sim.CHAT_MODELS, *sim.EMBEDDING_MODELS]]
        out += [{"id": m, "object": "model", "created": MODEL_CREATED, "owned_by": ORG} for m in self.fine_tuned]
        return out

    async def list_models(self, request: Request) -> dict[str, Any]:
        return {"object": "list", "data": self._all_models()}

    async def get_model(self, request: Request) -> dict[str, Any]:
        model = request.path_params["model"]
        for m in self._all_models():
            if m["id"] == model:
                return m
        raise ApiError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")

    # -- chat ----------------------------------------------------------------------------
    def validate_chat(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not model or not isinstance(model, str):
            raise ApiError(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if messages is None:
            raise ApiError(400, "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                           param="messages", code="empty_array")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise ApiError(400, f"Invalid value for 'messages[{i}].role': expected one of system, developer, "
                               "user, assistant, tool.", param=f"messages[{i}].role", code="invalid_value")
        n = body.get("n", 1)
        if n not in (1, None):
            raise ApiError(400, "The sandbox supports n=1 only.", param="n", code="invalid_value")
        if body.get("stream"):
            raise ApiError(400, "The sandbox does not support streaming; send stream=false.", param="stream",
                           code="unsupported_value")
        top = body.get("top_logprobs")
        if top is not None:
            if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
                raise ApiError(400, f"Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, "
                               f"but got {top} instead." if isinstance(top, int) and top > 20 else
                               "Invalid 'top_logprobs': expected an integer between 0 and 20.",
                               param="top_logprobs", code="integer_above_max_value" if isinstance(top, int) and top > 20 else "invalid_value")
            if not body.get("logprobs"):
                raise ApiError(400, "Invalid value for 'top_logprobs': 'logprobs' must be set to true when using "
                               "top_logprobs.", param="top_logprobs", code="invalid_value")
        tools = body.get("tools")
        names = set()
        if tools is not None:
            if not isinstance(tools, list):
                raise ApiError(400, "Invalid 'tools': expected an array.", param="tools")
            for i, t in enumerate(tools):
                fn = t.get("function") if isinstance(t, dict) else None
                if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
                    raise ApiError(400, f"Invalid 'tools[{i}]': expected {{\"type\": \"function\", \"function\": "
                                   "{\"name\": ...}}.", param=f"tools[{i}]", code="invalid_value")
                names.add(fn["name"])
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name not in names:
                raise ApiError(400, f"Invalid value for 'tool_choice': function '{name}' is not in 'tools'.",
                               param="tool_choice", code="invalid_value")
        elif choice not in (None, "none", "auto", "required"):
            raise ApiError(400, "Invalid value for 'tool_choice': expected none, auto, required or a function.",
                           param="tool_choice", code="invalid_value")
        if not sim.is_known_chat_model(model, set(self.fine_tuned)):
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")

    def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """A chat completion and its simulated latency in seconds (before scaling)."""
        self.validate_chat(body)
        gen = sim.generate_chat(body, seed=self.config.seed)
        profile = sim.profile_for(body["model"])
        prefix = hashlib.sha1(json.dumps([body["model"], body["messages"][:-1], body.get("tools")],
                                         sort_keys=True).encode()).hexdigest()
        prefix_tokens = count_message_tokens(body["messages"][:-1], body.get("tools"))
        cached = (prefix_tokens // 128) * 128 if prefix in self._prefix_cache and prefix_tokens >= 1024 else 0
        self._prefix_cache.add(prefix)
        usage = sim.chat_usage(body, gen, cached)
        logprobs = None
        if body.get("logprobs"):
            rng = sim.rng_for(self.config.seed + 1, body["model"], body["messages"])
            logprobs = {"content": sim.token_logprobs(gen.segments, profile, rng, int(body.get("top_logprobs") or 0)),
                        "refusal": None}
        message: dict[str, Any] = {"role": "assistant", "content": gen.content, "refusal": None, "annotations": []}
        if gen.tool_calls:
            message["tool_calls"] = gen.tool_calls
        response = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": gen.finish_reason}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_sandbox_" + hashlib.sha1(f"{body['model']}{self.config.seed}".encode()).hexdigest()[:8],
        }
        if body.get("store") and isinstance(body.get("metadata"), dict):
            response["metadata"] = body["metadata"]
        jitter = 0.8 + 0.4 * random.Random(response["id"]).random()
        latency = (profile.base_ms + profile.ms_per_token * usage["completion_tokens"]) / 1000 * jitter
        return response, latency

    async def chat_completions(self, request: Request) -> Any:
        body = await self._json(request)
        dropped = await self._maybe_fault()
        if dropped is not None:
            return dropped
        started = time.perf_counter()
        response, latency = self.complete(body)
        delay = latency * self.config.latency_scale
        if delay > 0:
            await asyncio.sleep(delay)
        ms = int((time.perf_counter() - started) * 1000)
        return JSONResponse(response, headers={"x-request-id": "req_" + secrets.token_hex(8),
                                               "openai-processing-ms": str(ms)})

    # -- embeddings ----------------------------------------------------------------------
    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not model:
            raise ApiError(400, "you must provide a model parameter", param="model")
        if model not in sim.EMBEDDING_MODELS:
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")
        raw = body.get("input")
        if raw is None or raw == "" or raw == []:
            raise ApiError(400, "'input' is required and cannot be empty.", param="input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or len(inputs) > 2048:
            raise ApiError(400, "'input' must be a string or an array of at most 2048 strings.", param="input")
        texts = [x if isinstance(x, str) else " ".join(str(t) for t in (x if isinstance(x, list) else [x]))
                 for x in inputs]
        dims = body.get("dimensions") or sim.EMBEDDING_MODELS[model]
        if not isinstance(dims, int) or not 1 <= dims <= sim.EMBEDDING_MODELS[model]:
            raise ApiError(400, f"'dimensions' must be between 1 and {sim.EMBEDDING_MODELS[model]}.", param="dimensions")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise ApiError(400, "'encoding_format' must be float or base64.", param="encoding_format")
        data = []
        for i, text in enumerate(texts):
            vec = sim.embed(text, dims)
            data.append({"object": "embedding", "index": i, "embedding": sim.encode_base64(vec) if fmt == "base64" else vec})
        tokens = sum(count_tokens(t) for t in texts)
        return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def embeddings(self, request: Request) -> Any:
        body = await self._json(request)
        dropped = await self._maybe_fault()
        if dropped is not None:
            return dropped
        result = self.embed(body)
        delay = 0.02 * self.config.latency_scale
        if delay > 0:
            await asyncio.sleep(delay)
        return result

    # -- files ---------------------------------------------------------------------------
    def add_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        f = StoredFile(new_id("file"), filename, purpose, content, int(time.time()))
        self.files[f.id] = f
        return f

    async def upload_file(self, request: Request) -> Any:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "Files must be uploaded as multipart/form-data with fields 'file' and 'purpose'.")
        form = await request.form()
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose not in ("fine-tune", "batch", "assistants", "vision", "user_data", "evals"):
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}. Use 'fine-tune' or 'batch'.",
                           param="purpose", code="invalid_value")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        content = await upload.read()
        filename = upload.filename or "upload"
        if purpose in ("fine-tune", "batch") and not filename.endswith(".jsonl"):
            raise ApiError(400, f"Invalid file format for {purpose}: expected a .jsonl file, got {filename!r}.",
                           param="file", code="invalid_file_format")
        return self.add_file(filename, purpose, content).to_json()

    def _file(self, file_id: str) -> StoredFile:
        f = self.files.get(file_id)
        if f is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id", code=None)
        return f

    async def get_file(self, request: Request) -> Any:
        return self._file(request.path_params["file_id"]).to_json()

    async def file_content(self, request: Request) -> Any:
        f = self._file(request.path_params["file_id"])
        return Response(f.content, media_type="application/octet-stream")

    async def delete_file(self, request: Request) -> Any:
        f = self._file(request.path_params["file_id"])
        del self.files[f.id]
        return {"id": f.id, "object": "file", "deleted": True}

    async def list_files(self, request: Request) -> Any:
        q = request.query_params
        items = sorted(self.files.values(), key=lambda f: (f.created_at, f.id),
                       reverse=q.get("order", "desc") != "asc")
        if q.get("purpose"):
            items = [f for f in items if f.purpose == q["purpose"]]
        page, has_more = _paginate(items, q.get("after"), q.get("limit"), 10000, key=lambda f: f.id)
        data = [f.to_json() for f in page]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": has_more}

    # -- fine-tuning ---------------------------------------------------------------------
    async def create_job(self, request: Request) -> Any:
        body = await self._json(request)
        model = body.get("model")
        if not model:
            raise ApiError(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        base = model.split(":")[1] if model.startswith("ft:") else sim._dated_alias(model)
        if base not in sim.FINE_TUNABLE and model not in self.fine_tuned:
            raise ApiError(400, f"Model {model} is not available for fine-tuning or does not exist.", param="model",
                           code="model_not_available")
        tf = body.get("training_file")
        if not tf:
            raise ApiError(400, "Missing required parameter: 'training_file'.", param="training_file",
                           code="missing_required_parameter")
        training = self.files.get(tf)
        if training is None:
            raise ApiError(400, f"Invalid file ID: {tf}", param="training_file", code="invalid_file_id")
        if training.purpose != "fine-tune":
            raise ApiError(400, f"File {tf} has purpose {training.purpose!r}; fine-tuning needs purpose 'fine-tune'.",
                           param="training_file", code="invalid_file_purpose")
        vf = body.get("validation_file")
        if vf and vf not in self.files:
            raise ApiError(400, f"Invalid file ID: {vf}", param="validation_file", code="invalid_file_id")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise ApiError(400, "'suffix' must be a string of at most 64 characters.", param="suffix")
        method = body.get("method") or {"type": "supervised"}
        if not isinstance(method, dict) or method.get("type", "supervised") != "supervised":
            raise ApiError(400, "The sandbox supports method.type 'supervised' only.", param="method",
                           code="unsupported_value")
        hp = dict(body.get("hyperparameters") or {})
        hp.update(((method.get("supervised") or {}).get("hyperparameters")) or {})
        examples, tokens, error = validate_training_file(training.content)
        n_epochs = hp.get("n_epochs", "auto")
        if n_epochs == "auto":
            n_epochs = 3 if examples == 0 else max(1, min(10, math.ceil(100 / max(examples, 1))) if examples < 100 else 3)
        batch = hp.get("batch_size", "auto")
        if batch == "auto":
            batch = max(1, min(256, math.ceil(examples * 0.002)))
        lr = hp.get("learning_rate_multiplier", "auto")
        lr_value = 1.8 if lr == "auto" else float(lr)
        for name, value, lo, hi in (("n_epochs", n_epochs, 1, 50), ("batch_size", batch, 1, 256)):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ApiError(400, f"Invalid '{name}': expected 'auto' or an integer {lo}-{hi}.",
                               param=f"hyperparameters.{name}")
        if lr_value <= 0:
            raise ApiError(400, "Invalid 'learning_rate_multiplier': must be > 0.", param="hyperparameters.learning_rate_multiplier")
        seed = body.get("seed")
        job = FineTuneJob(
            id=new_id("ftjob"), model=model, training_file=tf, validation_file=vf, suffix=suffix,
            seed=int(seed) if isinstance(seed, int) else random.Random(tf).randint(0, 2**31 - 1),
            created_at=time.time(), job_seconds=max(0.05, self.config.job_seconds), n_epochs=n_epochs,
            batch_size=batch, lr_multiplier=lr_value, metadata=body.get("metadata"), examples=examples,
            tokens=tokens, validation_error=error,
            hyperparameters={"n_epochs": n_epochs, "batch_size": batch, "learning_rate_multiplier": lr_value},
        )
        self.jobs[job.id] = job
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
        if status == "succeeded" and job.fine_tuned_model is None:
            job.fine_tuned_model = f"ft:{job.model}:{ORG}:{job.suffix or ''}:{job.id[-8:]}"
            self.fine_tuned[job.fine_tuned_model] = job.model
            result = self.add_file("step_metrics.csv", "fine-tune-results", metrics_csv(job))
            job.result_file = result.id
            job.finished_at = now
            once(f"Checkpoint created at step {job.total_steps}", now)
            once(f"New fine-tuned model created: {job.fine_tuned_model}", now)
            once("The job has successfully completed", now)
        if status == "cancelled":
            job.finished_at = job.finished_at or job.cancelled_at
            once("Fine-tuning job cancelled", job.cancelled_at or now)

    def _job_json(self, job: FineTuneJob) -> dict[str, Any]:
        now = time.time()
        status = job.status(now)
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
            "finished_at": int(job.finished_at) if job.finished_at and status in ("succeeded", "failed", "cancelled") else None,
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
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            raise ApiError(404, f"Could not find fine-tuning job {request.path_params['job_id']}.", param="fine_tuning_job_id",
                           code="fine_tuning_job_not_found")
        self._advance(job)
        return job

    async def get_job(self, request: Request) -> Any:
        return self._job_json(self._job(request))

    async def list_jobs(self, request: Request) -> Any:
        q = request.query_params
        jobs = sorted(self.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        for j in jobs:
            self._advance(j)
        page, has_more = _paginate(jobs, q.get("after"), q.get("limit"), 20, key=lambda j: j.id)
        return {"object": "list", "data": [self._job_json(j) for j in page], "has_more": has_more}

    async def job_events(self, request: Request) -> Any:
        job = self._job(request)
        events = list(reversed(job.events))  # newest first, as OpenAI lists them
        page, has_more = _paginate(events, request.query_params.get("after"), request.query_params.get("limit"), 20,
                                   key=lambda e: e["id"])
        return {"object": "list", "data": page, "has_more": has_more}

    async def job_checkpoints(self, request: Request) -> Any:
        job = self._job(request)
        items = list(reversed(job.checkpoints))[:3] if job.status(time.time()) == "succeeded" else list(reversed(job.checkpoints))
        page, has_more = _paginate(items, request.query_params.get("after"), request.query_params.get("limit"), 10,
                                   key=lambda c: c["id"])
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": has_more}

    async def cancel_job(self, request: Request) -> Any:
        job = self._job(request)
        status = job.status(time.time())
        if status in ("succeeded", "failed", "cancelled"):
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

    # -- batches -------------------------------------------------------------------------
    async def create_batch(self, request: Request) -> Any:
        body = await self._json(request)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(name):
                raise ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        if body["endpoint"] not in ("/v1/chat/completions", "/v1/embeddings"):
            raise ApiError(400, "The sandbox supports batches for /v1/chat/completions and /v1/embeddings.",
                           param="endpoint", code="unsupported_value")
        if body["completion_window"] != "24h":
            raise ApiError(400, "Invalid 'completion_window': only '24h' is supported.", param="completion_window")
        f = self.files.get(body["input_file_id"])
        if f is None:
            raise ApiError(400, f"Invalid file ID: {body['input_file_id']}", param="input_file_id", code="invalid_file_id")
        if f.purpose != "batch":
            raise ApiError(400, f"File {f.id} has purpose {f.purpose!r}; batches need purpose 'batch'.",
                           param="input_file_id", code="invalid_file_purpose")
        batch = Batch(new_id("batch"), f.id, body["endpoint"], "24h", time.time(), max(0.05, self.config.job_seconds / 2),
                      body.get("metadata"))
        self._parse_batch_input(batch, f)
        self.batches[batch.id] = batch
        return self._batch_json(batch)

    def _parse_batch_input(self, batch: Batch, f: StoredFile) -> None:
        lines = [ln for ln in f.content.decode("utf-8", errors="replace").split("\n") if ln.strip()]
        batch.total = len(lines)
        ids = set()
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                batch.fail_reason = json.dumps({"code": "invalid_json_line", "line": number,
                                                "message": f"Line {number} is not valid JSON."})
                return
            if not isinstance(row, dict) or row.get("url") != batch.endpoint or row.get("method") != "POST":
                batch.fail_reason = json.dumps({"code": "invalid_request", "line": number,
                                                "message": f"Line {number}: each request needs method POST and url "
                                                           f"{batch.endpoint}."})
                return
            if row.get("custom_id") in ids:
                batch.fail_reason = json.dumps({"code": "duplicate_custom_id", "line": number,
                                                "message": f"Line {number}: custom_id {row.get('custom_id')!r} is repeated."})
                return
            ids.add(row.get("custom_id"))
            if batch.model is None and isinstance(row.get("body"), dict):
                batch.model = row["body"].get("model")

    def _batch_status(self, b: Batch, now: float) -> str:
        if b.fail_reason:
            return "failed"
        t = (now - b.created_at) / b.job_seconds
        if b.cancelled_at is not None:
            return "cancelled" if now - b.cancelled_at > 0.05 * b.job_seconds else "cancelling"
        if t < 0.1:
            return "validating"
        if t < 0.8:
            return "in_progress"
        if t < 1.0:
            return "finalizing"
        return "completed"

    def _run_batch(self, b: Batch) -> None:
        if b.finished:
            return
        b.finished = True
        f = self.files[b.input_file_id]
        out_lines, err_lines = [], []
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for line in f.content.decode("utf-8", errors="replace").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            req_id = "req_" + secrets.token_hex(8)
            try:
                if b.endpoint == "/v1/chat/completions":
                    result, _ = self.complete(row.get("body") or {})
                    usage["input_tokens"] += result["usage"]["prompt_tokens"]
                    usage["output_tokens"] += result["usage"]["completion_tokens"]
                else:
                    result = self.embed(row.get("body") or {})
                    usage["input_tokens"] += result["usage"]["prompt_tokens"]
                out_lines.append({"id": "batch_req_" + secrets.token_hex(8), "custom_id": row.get("custom_id"),
                                  "response": {"status_code": 200, "request_id": req_id, "body": result}, "error": None})
                b.completed += 1
            except ApiError as exc:
                err_lines.append({"id": "batch_req_" + secrets.token_hex(8), "custom_id": row.get("custom_id"),
                                  "response": {"status_code": exc.status, "request_id": req_id,
                                               "body": {"error": {"message": exc.message, "type": exc.type,
                                                                  "param": exc.param, "code": exc.code}}},
                                  "error": None})
                b.failed += 1
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        b.usage = usage
        if out_lines:
            b.output_file_id = self.add_file(f"{b.id}_output.jsonl", "batch_output",
                                             "\n".join(json.dumps(x) for x in out_lines).encode() + b"\n").id
        if err_lines:
            b.error_file_id = self.add_file(f"{b.id}_error.jsonl", "batch_output",
                                            "\n".join(json.dumps(x) for x in err_lines).encode() + b"\n").id

    def _batch_json(self, b: Batch) -> dict[str, Any]:
        now = time.time()
        status = self._batch_status(b, now)
        if status in ("finalizing", "completed"):
            self._run_batch(b)
        created = int(b.created_at)
        out: dict[str, Any] = {
            "id": b.id, "object": "batch", "endpoint": b.endpoint, "input_file_id": b.input_file_id,
            "completion_window": b.completion_window, "status": status, "created_at": created,
            "expires_at": created + 86400, "metadata": b.metadata,
            "request_counts": {"total": b.total, "completed": 0, "failed": 0},
        }
        if b.model:
            out["model"] = b.model
        if status == "failed":
            err = json.loads(b.fail_reason or "{}")
            out["errors"] = {"object": "list", "data": [{"code": err.get("code"), "message": err.get("message"),
                                                         "param": "input_file_id", "line": err.get("line")}]}
            out["failed_at"] = created
            return out
        if status != "validating":
            out["in_progress_at"] = int(b.created_at + 0.1 * b.job_seconds)
        if status == "in_progress":
            frac = (now - b.created_at) / b.job_seconds
            out["request_counts"]["completed"] = min(b.total, int(b.total * (frac - 0.1) / 0.7))
        if status in ("finalizing", "completed"):
            out["request_counts"] = {"total": b.total, "completed": b.completed, "failed": b.failed}
            out["finalizing_at"] = int(b.created_at + 0.8 * b.job_seconds)
        if status == "completed":
            out["completed_at"] = int(b.created_at + b.job_seconds)
            if b.output_file_id:
                out["output_file_id"] = b.output_file_id
            if b.error_file_id:
                out["error_file_id"] = b.error_file_id
            if b.usage:
                out["usage"] = {"input_tokens": b.usage["input_tokens"], "output_tokens": b.usage["output_tokens"],
                                "total_tokens": b.usage["total_tokens"],
                                "input_tokens_details": {"cached_tokens": 0},
                                "output_tokens_details": {"reasoning_tokens": 0}}
        if status in ("cancelling", "cancelled"):
            out["cancelling_at"] = int(b.cancelled_at or now)
            if status == "cancelled":
                out["cancelled_at"] = int(b.cancelled_at or now)
        return out

    def _batch(self, request: Request) -> Batch:
        b = self.batches.get(request.path_params["batch_id"])
        if b is None:
            raise ApiError(404, f"No batch found with id '{request.path_params['batch_id']}'.", param="batch_id")
        return b

    async def get_batch(self, request: Request) -> Any:
        return self._batch_json(self._batch(request))

    async def list_batches(self, request: Request) -> Any:
        items = sorted(self.batches.values(), key=lambda b: (b.created_at, b.id), reverse=True)
        page, has_more = _paginate(items, request.query_params.get("after"), request.query_params.get("limit"), 20,
                                   key=lambda b: b.id)
        data = [self._batch_json(b) for b in page]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": has_more}

    async def cancel_batch(self, request: Request) -> Any:
        b = self._batch(request)
        status = self._batch_status(b, time.time())
        if status not in ("validating", "in_progress"):
            raise ApiError(409, f"Cannot cancel a batch with status '{status}'.", code="invalid_state")
        b.cancelled_at = time.time()
        return self._batch_json(b)


def _paginate(items: list, after: str | None, limit: str | None, default: int, key) -> tuple[list, bool]:
    try:
        size = int(limit) if limit is not None else default
    except ValueError:
        raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
    if size < 1:
        raise ApiError(400, "Invalid 'limit': must be at least 1.", param="limit")
    start = 0
    if after:
        ids = [key(x) for x in items]
        if after in ids:
            start = ids.index(after) + 1
    page = items[start:start + size]
    return page, start + size < len(items)
