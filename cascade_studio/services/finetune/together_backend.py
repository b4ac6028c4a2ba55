"""Together AI's fine-tuning API as a FineTuneBackend, request for request as its published OpenAPI
description says (shared/together-openapi/openapi.yaml): files (`POST /files/upload`), fine-tunes
(create, retrieve, list, events, checkpoints, cancel, estimate-price, metrics) and a model's limits.

Where the `together` SDK and the spec differ, this follows the spec: the SDK's newer upload path
(`POST /files` and then `POST /files/{id}/preprocess`) is not in it, so files go up with
`POST /files/upload` (multipart: purpose, file_name, file_type, file), which is.

The key is a Together key (SecretStore.together_key): sent only to Together's https host, or to a
server on this machine given explicitly as the API root (a test server); redirects are not followed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2

from cascade_studio.core.errors import UserError
from cascade_studio.core.finetune import JobEvent, JobSpec, JobState
from cascade_studio.core.tiers import (
    TOGETHER_BASE_URL,
    TOGETHER_KEY_ENV,
    is_together_url,
    normalized_endpoint,
)
from cascade_studio.core.together_format import TogetherRun, converted_lines
from cascade_studio.services.secrets import SecretStore

log = logging.getLogger(__name__)
NAME = "together"
# Together's job statuses (FinetuneJobStatus) -> the statuses this app keeps (OpenAI's names)
STATUSES = {"pending": "queued", "queued": "queued", "running": "running", "compressing": "running",
            "uploading": "running", "cancel_requested": "cancelling", "cancelled": "cancelled",
            "error": "failed", "completed": "succeeded"}
_LEVELS = {"info": "info", "warning": "warning", "error": "error", "legacy_info": "info",
           "legacy_iwarning": "warning", "legacy_ierror": "error"}
RETRIES = 2  # for reads only: a create or an upload is never repeated by accident
TIMEOUT_S = 60.0


class TogetherError(UserError):
    """Together (or the server given as its API root) refused a request or answered something else."""


class TogetherKeyError(TogetherError):
    """No key for this destination, or a destination a Together key may not be sent to."""


@dataclass(frozen=True)
class PriceEstimate:
    """`POST /fine-tunes/estimate-price`: the price in USD (None: not given), whether the account may go
    ahead, its credit limit, and the tokens it will train on."""

    price: Decimal | None
    allowed: bool | None
    user_limit: Decimal | None
    train_tokens: int | None
    eval_tokens: int | None

    def sentence(self) -> str:
        price = "an unknown price" if self.price is None else f"${self.price:,.2f}"
        tokens = "" if self.train_tokens is None else f" for {self.train_tokens:,} training tokens"
        limit = "" if self.user_limit is None else f" (your credit limit: ${self.user_limit:,.2f})"
        return f"Together estimates {price}{tokens}{limit}."


def _epoch(value: Any) -> int | None:
    """An ISO 8601 time (Together's) as Unix seconds; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    return Decimal(str(value)) if isinstance(value, int | float) and not isinstance(value, bool) else None


def serving_note(job: dict[str, Any]) -> str:
    """What must exist before requests to a Together job's model work: a full fine-tune (or a merged
    LoRA) is served from a dedicated endpoint only; a LoRA adapter runs serverless where its base model
    supports serverless LoRA, else on a dedicated endpoint too."""
    hp = job.get("hyperparameters") or {}
    model = job.get("fine_tuned_model") or hp.get("output_name") or "the model"
    if hp.get("training_type") == "full" or hp.get("merged_lora"):
        kind = "a full fine-tune" if hp.get("training_type") == "full" else "a LoRA merged into its base (a full model)"
        return (f"{model} is {kind}: Together serves it only from a dedicated endpoint. Create one first "
                f"(Together's dashboard, or POST /v1/endpoints with model={model}); until it is running, requests "
                "to the tier fail.")
    return (f"{model} is a LoRA adapter: Together runs it serverless when its base model supports serverless LoRA "
            "inference; if requests answer 'model not found' or 'not available', create a dedicated endpoint for it "
            "first (Together's dashboard, or POST /v1/endpoints).")


class TogetherFineTuneBackend:
    name = NAME

    def __init__(self, base_url: str | None, secrets: SecretStore, options: dict[str, Any] | None = None) -> None:
        self.base_url = (base_url or TOGETHER_BASE_URL).strip().rstrip("/")
        self.options = options or {}
        source = secrets.together_key(self.base_url)
        if source.source == "refused":
            raise TogetherKeyError(f"{source.reason} No request was sent.")
        if not source.found:
            hint = f" or export {TOGETHER_KEY_ENV}" if is_together_url(self.base_url) else ""
            raise TogetherKeyError(f"No Together API key for {self.base_url}: run `cascade-studio keys set "
                                   f"{normalized_endpoint(self.base_url)}`{hint}. No request was sent.")
        from cascade_studio.services.clients import http_client

        self._http = http_client(self.base_url)
        self._headers = {"Authorization": f"Bearer {source.key}", "Accept": "application/json"}

    def deprecation_notice(self, today: dt.date | None = None) -> str | None:
        return None

    # -- HTTP ------------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                    files: Any = None, retry: bool | None = None, allow: tuple[int, ...] = ()) -> Any:
        """One request; the answer's JSON. Reads are retried on 429/5xx/connection errors (twice,
        backing off); writes never are. A status in `allow` returns None instead of raising."""
        url = f"{self.base_url}{path}"
        attempts = 1 + (RETRIES if (retry if retry is not None else method == "GET") else 0)
        for attempt in range(attempts):
            try:
                response = await self._http.request(method, url, json=json, params=params, files=files,
                                                    headers=self._headers, timeout=TIMEOUT_S)
            except httpx2.HTTPError as exc:
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.5 * 2 ** attempt)
                    continue
                raise TogetherError(f"{method} {url} failed: {type(exc).__name__}: {exc or 'no answer'}. "
                                    "Check the network and the API root.") from None
            if response.status_code in (429, 500, 502, 503, 504) and attempt + 1 < attempts:
                await asyncio.sleep(0.5 * 2 ** attempt)
                continue
            if response.is_redirect:
                raise TogetherError(f"{method} {url} answered with a redirect to {response.headers.get('location')}; "
                                    "redirects are not followed (the key goes only where you sent it). Use that "
                                    "address as the API root if you trust it.")
            if response.status_code in allow:
                return None
            if response.status_code >= 400:
                raise TogetherError(self._describe(method, url, response))
            try:
                return response.json()
            except ValueError:
                raise TogetherError(f"{method} {url} answered {response.status_code} with something that is not "
                                    "JSON. Check that the API root is Together's.") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _describe(method: str, url: str, response: httpx2.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        message = ""
        if isinstance(body, dict):
            err = body.get("error")
            message = (err.get("message") if isinstance(err, dict) else err) or body.get("message") or ""
        fix = {401: " Check the Together key (`cascade-studio keys set URL` or TOGETHER_API_KEY).",
               403: " The key may not use this model or feature.",
               404: " Check the id or the model name.",
               429: " Too many requests or out of credit; try again later."}.get(response.status_code, "")
        return f"Together answered {response.status_code} to {method} {url}: {str(message)[:400] or 'no message'}.{fix}"

    # -- before a job ----------------------------------------------------------------------------
    async def model_limits(self, model: str) -> dict[str, Any]:
        """`GET /fine-tunes/models/limits`; a model Together does not fine-tune is refused in words,
        with the models it does (`GET /fine-tunes/models/supported`)."""
        limits = await self._call("GET", "/fine-tunes/models/limits", params={"model_name": model}, allow=(404,))
        if limits is None:
            supported = await self.supported_models()
            near = [m for m in supported if model.split("/")[-1].lower()[:8] in m.lower()][:5] or supported[:5]
            raise TogetherError(f"{model} is not a model Together fine-tunes. Some that it does: {', '.join(near)}"
                                f"{' …' if len(supported) > len(near) else ''} (all: `cascade-studio finetune models "
                                "--backend together`).")
        if not isinstance(limits, dict) or not isinstance(limits.get("model_name"), str):
            raise TogetherError(f"GET {self.base_url}/fine-tunes/models/limits answered without the model's limits "
                                "(no model_name). Check that the API root is Together's. Nothing was uploaded.")
        return limits

    async def supported_models(self) -> list[str]:
        body = await self._call("GET", "/fine-tunes/models/supported")
        models = body.get("models") if isinstance(body, dict) else None
        return [m for m in models if isinstance(m, str)] if isinstance(models, list) else []

    async def upload(self, path: Path) -> str:
        """The file in Together's format (an OpenAI-format file is converted on the way: no rebuild)."""
        path = Path(path)
        with open(path, "rb") as fh:
            content, changed = converted_lines(fh)
        if changed:
            log.info("Converted %d lines of %s to Together's format for the upload", changed, path.name)
        name = path.name if path.suffix == ".jsonl" else path.stem + ".jsonl"
        body = await self._call("POST", "/files/upload", files=[
            ("purpose", (None, "fine-tune")), ("file_name", (None, name)), ("file_type", (None, "jsonl")),
            ("file", (name, content, "application/octet-stream"))])
        file_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise TogetherError(f"POST {self.base_url}/files/upload accepted {path.name} but its answer has no file "
                                "id. Nothing was started.")
        return file_id

    def run(self, spec: JobSpec) -> TogetherRun:
        opts = {**self.options, **spec.options}
        return TogetherRun(
            training_type=opts.get("training_type", "lora"), method=opts.get("training_method", "sft"),
            n_epochs=spec.n_epochs if isinstance(spec.n_epochs, int) else None,
            batch_size=spec.batch_size if isinstance(spec.batch_size, int) else None,
            learning_rate=opts.get("learning_rate"), lora_rank=opts.get("lora_rank"),
            n_evals=opts.get("n_evals"))

    def _job_body(self, spec: JobSpec, training_file_id: str, validation_file_id: str | None,
                  *, for_estimate: bool = False) -> dict[str, Any]:
        opts = {**self.options, **spec.options}
        run = self.run(spec)
        if spec.learning_rate_multiplier != "auto":
            raise TogetherError("Together takes an absolute learning rate (--learning-rate), not a multiplier.")
        method: dict[str, Any] = ({"method": "dpo", "dpo_beta": float(opts.get("dpo_beta", 0.1))}
                                  if run.method == "dpo" else {"method": "sft", "train_on_inputs": False})
        if run.training_type == "full":
            training_type: dict[str, Any] = {"type": "Full"}
        else:
            rank = run.lora_rank or 16
            training_type = {"type": "Lora", "lora_r": rank, "lora_alpha": int(opts.get("lora_alpha") or rank * 2)}
        body: dict[str, Any] = {"training_file": training_file_id, "model": spec.base_model,
                                "training_method": method, "training_type": training_type}
        if validation_file_id:
            body["validation_file"] = validation_file_id
        if run.n_epochs is not None:
            body["n_epochs"] = run.n_epochs
        if opts.get("from_checkpoint"):
            body["from_checkpoint"] = str(opts["from_checkpoint"])
        if run.n_evals and validation_file_id:
            body["n_evals"] = int(run.n_evals)
        if for_estimate:
            return body
        if run.batch_size is not None:
            body["batch_size"] = run.batch_size
        if run.learning_rate is not None:
            body["learning_rate"] = float(run.learning_rate)
        if opts.get("n_checkpoints"):
            body["n_checkpoints"] = int(opts["n_checkpoints"])
        if spec.suffix:
            body["suffix"] = spec.suffix
        if spec.seed is not None:
            body["random_seed"] = spec.seed
        return body

    async def estimate_price(self, spec: JobSpec, training_file_id: str,
                             validation_file_id: str | None) -> PriceEstimate:
        body = await self._call("POST", "/fine-tunes/estimate-price", retry=True,  # a quote: safe to ask again
                                json=self._job_body(spec, training_file_id, validation_file_id, for_estimate=True))
        body = body if isinstance(body, dict) else {}
        allowed = body.get("allowed_to_proceed")
        tokens = [body.get(k) for k in ("estimated_train_token_count", "estimated_eval_token_count")]
        return PriceEstimate(_decimal(body.get("estimated_total_price")), allowed if isinstance(allowed, bool) else None,
                             _decimal(body.get("user_limit")),
                             *(int(t) if isinstance(t, int | float) and not isinstance(t, bool) else None for t in tokens))

    # -- the job ---------------------------------------------------------------------------------
    async def start(self, spec: JobSpec, training_file_id: str, validation_file_id: str | None) -> JobState:
        body = self._job_body(spec, training_file_id, validation_file_id)
        job = await self._call("POST", "/fine-tunes", json=body)
        state = self._state(job, "POST /fine-tunes", training_file_id)
        state.base_model = state.base_model or spec.base_model  # the spec's answer may leave `model` out
        state.hyperparameters = {**self._chosen(body), **state.hyperparameters}
        if {**self.options, **spec.options}.get("merge_output_lora"):
            state.hyperparameters["merged_lora"] = True  # the model's limits say its LoRA output is merged
        return state

    @staticmethod
    def _chosen(body: dict[str, Any]) -> dict[str, Any]:
        """The job's settings as this app shows them (the training type and method by name)."""
        tt, tm = body.get("training_type") or {}, body.get("training_method") or {}
        out = {"training_type": "full" if tt.get("type") == "Full" else "lora", "training_method": tm.get("method")}
        for key in ("n_epochs", "batch_size", "learning_rate", "n_evals", "from_checkpoint"):
            if key in body:
                out[key] = body[key]
        if tt.get("lora_r"):
            out["lora_rank"] = tt["lora_r"]
        return out

    def _state(self, job: Any, endpoint: str, training_file: str | None = None) -> JobState:
        if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not job["id"] \
                or job.get("status") not in STATUSES:
            raise TogetherError(f"{endpoint} at {self.base_url} answered with something that is not a Together "
                                "fine-tune job (no id, or a status outside Together's list). Nothing was saved.")
        status = STATUSES[job["status"]]
        hp: dict[str, Any] = {"together_status": job["status"]}
        for key in ("n_epochs", "batch_size", "learning_rate", "n_evals", "n_checkpoints", "from_checkpoint"):
            if job.get(key) is not None:
                hp[key] = job[key]
        tt, tm = job.get("training_type"), job.get("training_method")
        if isinstance(tt, dict) and tt.get("type"):
            hp["training_type"] = "full" if tt["type"] == "Full" else "lora"
            if tt.get("lora_r"):
                hp["lora_rank"] = tt["lora_r"]
        if isinstance(tm, dict) and tm.get("method"):
            hp["training_method"] = tm["method"]
        if isinstance(job.get("model_output_name"), str):
            hp["output_name"] = job["model_output_name"]
        error = None
        if status == "failed":
            messages = [e.get("message") for e in job.get("events") or []
                        if isinstance(e, dict) and (e.get("level") in ("error", "legacy_ierror")
                                                    or e.get("type") == "job_error")]
            error = {"code": "job_error", "param": None,
                     "message": str(messages[-1]) if messages and messages[-1] else "Together reports that the job failed"}
        progress = job.get("progress")
        eta = None
        if status in ("queued", "running") and isinstance(progress, dict) and progress.get("estimate_available") \
                and isinstance(progress.get("seconds_remaining"), int):
            eta = int(time.time()) + progress["seconds_remaining"]
        finished = _epoch(job.get("updated_at")) if status in ("succeeded", "failed", "cancelled") else None
        return JobState(id=job["id"], status=status, base_model=str(job.get("model") or ""),
                        training_file=str(job.get("training_file") or training_file or ""),
                        fine_tuned_model=hp.get("output_name") if status == "succeeded" else None,
                        trained_tokens=job.get("token_count") if type(job.get("token_count")) is int else None,
                        error=error, hyperparameters=hp, estimated_finish=eta,
                        created_at=_epoch(job.get("created_at")), finished_at=finished)

    async def status(self, job_id: str) -> JobState:
        return self._state(await self._call("GET", f"/fine-tunes/{job_id}"), f"GET /fine-tunes/{job_id}")

    async def list_jobs(self) -> list[JobState]:
        body = await self._call("GET", "/fine-tunes")
        return [self._state(j, "GET /fine-tunes") for j in (body or {}).get("data") or []]

    async def events(self, job_id: str, known: set[str]) -> list[JobEvent]:
        """New events, oldest first: Together's job events (they carry no id: one is made of the
        event's hash, or of its time, type, step and message), then the loss curve's points
        (`GET /fine-tunes/{id}/metrics`) as "metrics" events, one per logged step."""
        body = await self._call("GET", f"/fine-tunes/{job_id}/events")
        out: list[JobEvent] = []
        seen: set[str] = set()
        for e in (body or {}).get("data") or []:
            if not isinstance(e, dict):
                continue
            basis = e.get("hash") or f"{e.get('created_at')}|{e.get('type')}|{e.get('step')}|{e.get('message')}"
            event_id = f"{job_id}:{hashlib.sha1(str(basis).encode()).hexdigest()[:16]}"
            n = 1
            while event_id in seen:  # the same event twice in one answer: kept apart, in order
                event_id = f"{event_id.split('#')[0]}#{n}"
                n += 1
            seen.add(event_id)
            if event_id in known:
                continue
            level = _LEVELS.get(str(e.get("level") or "info"), "info")
            if e.get("type") == "job_error":
                level = "error"
            out.append(JobEvent(event_id, _epoch(e.get("created_at")) or int(time.time()), level, "message",
                                str(e.get("message") or e.get("type") or ""),
                                {k: e[k] for k in ("type", "step", "checkpoint_path", "model_path") if e.get(k)} or None))
        out.extend(e for e in await self._metric_events(job_id) if e.id not in known)
        return out

    async def _metric_events(self, job_id: str) -> list[JobEvent]:
        body = await self._call("GET", f"/fine-tunes/{job_id}/metrics", allow=(400, 404))
        out = []
        now = int(time.time())
        for m in (body or {}).get("metrics") or []:
            if not isinstance(m, dict) or not isinstance(m.get("train/global_step"), int | float):
                continue
            step = int(m["train/global_step"])
            data: dict[str, Any] = {"step": step}
            for key, name in (("train/loss", "train_loss"), ("eval/loss", "valid_loss"),
                              ("train/learning_rate", "learning_rate"), ("train/epoch", "epoch")):
                if isinstance(m.get(key), int | float):
                    data[name] = m[key]
            if len(data) == 1:
                continue
            part = "eval" if "valid_loss" in data and "train_loss" not in data else "train"
            text = (f"Step {step}: validation loss={data['valid_loss']:.4f}" if part == "eval" else
                    f"Step {step}: training loss={data['train_loss']:.4f}" if "train_loss" in data else f"Step {step}")
            out.append(JobEvent(f"{job_id}:metrics:{step:08d}:{part}", now, "info", "metrics", text, data))
        return out

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        body = await self._call("GET", f"/fine-tunes/{job_id}/checkpoints")
        return [{"step_number": c.get("step"), "path": c.get("path"), "checkpoint_type": c.get("checkpoint_type"),
                 "created_at": _epoch(c.get("created_at")),
                 "from_checkpoint": f"{job_id}:{c.get('step')}" if c.get("step") is not None else job_id}
                for c in (body or {}).get("data") or [] if isinstance(c, dict)]

    async def cancel(self, job_id: str) -> JobState:
        return self._state(await self._call("POST", f"/fine-tunes/{job_id}/cancel"), f"POST /fine-tunes/{job_id}/cancel")

    async def pause(self, job_id: str) -> JobState:
        raise TogetherError("Together's fine-tuning API cannot pause a job: let it run, or cancel it (training done so "
                            "far is billed).")

    async def resume(self, job_id: str) -> JobState:
        return await self.pause(job_id)

    async def close(self) -> None:
        await self._http.aclose()
