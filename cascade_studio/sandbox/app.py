"""The sandbox's HTTP API (Starlette): the shared state and the routes of each API area, assembled
behind one guard (API key, request count, body limit). Shapes and status codes follow the official
OpenAI spec; the areas live in `cascade_studio.sandbox.routes`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from cascade_studio.sandbox.faults import FaultSpec
from cascade_studio.sandbox.routes.batches import BatchRoutes
from cascade_studio.sandbox.routes.chat import ROLES, ChatRoutes
from cascade_studio.sandbox.routes.common import (
    ApiError,
    DroppedResponse,
    Handler,
    JSONResponse,
    api_error_response,
    bearer_key,
    bounded,
    check_auth,
    paginate,
    render_json,
    request_id_headers,
    server_error_response,
)
from cascade_studio.sandbox.routes.embeddings import EmbeddingRoutes
from cascade_studio.sandbox.routes.files import FileRoutes
from cascade_studio.sandbox.routes.fine_tuning import FineTuningRoutes
from cascade_studio.sandbox.routes.models import MODEL_CREATED, ModelRoutes
from cascade_studio.sandbox.routes.together import TogetherRoutes
from cascade_studio.sandbox.state import Batch, FineTuneJob, StoredFile, load_fine_tuned, save_fine_tuned

log = logging.getLogger(__name__)
__all__ = ["ROLES", "MODEL_CREATED", "ApiError", "DroppedResponse", "JSONResponse", "Sandbox", "SandboxConfig",
           "paginate"]


@dataclass
class SandboxConfig:
    seed: int = 0
    latency_scale: float = 1.0
    job_seconds: float = 6.0
    faults: FaultSpec = field(default_factory=FaultSpec)
    api_keys: set[str] | None = None  # None: any non-empty key is accepted
    max_body_bytes: int = 32 * 1024 * 1024  # larger request bodies get 413, unread
    max_json_depth: int = 64  # JSON nested deeper gets 400
    judge_error_rate: float = 0.1  # the share of wrong verdicts of the judge model `judge-sim` (issue 30)
    data_dir: Path | None = None  # where fine-tuned models are remembered across restarts (None: memory only)


class Sandbox:
    """State shared by the API areas, and the Starlette app that serves them. One per server."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, FineTuneJob] = {}
        self.batches: dict[str, Batch] = {}
        self.fine_tuned: dict[str, str] = load_fine_tuned(self.config.data_dir)  # model id -> base model
        self.fault_rng = random.Random(self.config.seed)
        self.request_count = 0
        self.judge_log: list[dict[str, object]] = []  # every judge model request (model, prompt, structured)
        self.model_routes = ModelRoutes(self)
        self.chat_routes = ChatRoutes(self)
        self.embedding_routes = EmbeddingRoutes(self)
        self.file_routes = FileRoutes(self)
        self.fine_tuning_routes = FineTuningRoutes(self)
        self.batch_routes = BatchRoutes(self)
        self.together_routes = TogetherRoutes(self)  # Together AI's fine-tuning API (its own paths)
        areas = (self.model_routes, self.chat_routes, self.embedding_routes, self.file_routes,
                 self.fine_tuning_routes, self.batch_routes, self.together_routes)
        routes = [Route(path, self._guard(handler), methods=[method])
                  for area in areas for path, method, handler in area.routes()]
        self.starlette = Starlette(routes=routes, exception_handlers={ApiError: api_error_response,
                                                                      Exception: server_error_response})
        self.app = ChatFastPath(self)  # chat completions without Starlette's per-request objects; the rest as is

    def remember_fine_tuned(self, model: str, base: str) -> None:
        """A job's model can be used from now on, and after a restart on the same data folder."""
        self.fine_tuned[model] = base
        try:
            save_fine_tuned(self.config.data_dir, self.fine_tuned)
        except OSError as exc:  # the model still works until the sandbox stops
            log.warning("Cannot remember %s in %s: %s", model, self.config.data_dir, exc)

    def _guard(self, handler: Handler):
        config = self.config

        async def endpoint(request: Request) -> Response:
            self.request_count += 1
            check_auth(request, config.api_keys)
            if request.method == "POST":
                request = bounded(request, config.max_body_bytes)
            try:
                result = await handler(request)
            except ClientDisconnect:  # the client went away before its request was read: nobody to answer
                log.debug("Client went away during %s %s", request.method, request.url.path)
                return Response(status_code=499)  # never sent (uvicorn drops it): ends the request quietly
            if isinstance(result, Response):
                return result
            return JSONResponse(result, headers=request_id_headers())

        return endpoint


class ChatFastPath:
    """The ASGI app the sandbox serves: `POST /v1/chat/completions` answered straight from ASGI
    messages (no Request, routing or Response objects: ~35% more requests a second, so a benchmark's
    sandbox is not its bottleneck), everything else by the Starlette app. Only the plain case is
    taken here: a request with a bearer key, a body within the limit, valid JSON that is not nested
    deep, no faults configured and no error. Anything else, including every error, goes to the
    Starlette route with the body already read, so every refusal is the one place's answer."""

    PATH = "/v1/chat/completions"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        sandbox = self.sandbox
        config = sandbox.config
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST" \
                or config.faults.active or not _plain_headers(scope, config):
            await sandbox.starlette(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                log.debug("Client went away during POST %s", self.PATH)  # as the route says it
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > config.max_body_bytes:  # refused there, from what was read (nothing more is)
                break
            if not message.get("more_body"):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        answer = self._answer(raw) if size <= config.max_body_bytes else None
        if answer is None:
            await sandbox.starlette(scope, _replay(raw, size > config.max_body_bytes, receive), send)
            return
        response, latency, started = answer
        sandbox.request_count += 1
        delay = latency * config.latency_scale
        if delay > 0:
            await asyncio.sleep(delay)
        ms = int((time.perf_counter() - started) * 1000)
        body = render_json(response)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"),
            (b"x-request-id", request_id_headers()["x-request-id"].encode()),
            (b"openai-processing-ms", str(ms).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, raw: bytes) -> tuple[dict, float, float] | None:
        """(the completion, its simulated latency, when it started), or None: the Starlette route answers."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or raw.count(b"[") + raw.count(b"{") > self.sandbox.config.max_json_depth:
            return None  # (a body that could nest too deep is checked there)
        started = time.perf_counter()
        try:
            response, latency = self.sandbox.chat_routes.complete(body, logprobs_json=True)
        except Exception:  # noqa: BLE001 - an ApiError (or a bug): said by the Starlette route, in its words
            return None
        return response, latency, started


def _plain_headers(scope, config: SandboxConfig) -> bool:  # noqa: ANN001 - an ASGI scope
    """A bearer key (accepted by `config`) and a well-formed Content-Length within the limit, if any."""
    key = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            key = bearer_key(value.decode("latin-1"))
        elif name == b"content-length" and (not value.isdigit() or int(value) > config.max_body_bytes):
            return False  # refused there before a byte of the body is read
    return bool(key) and (config.api_keys is None or key in config.api_keys)


def _replay(raw: bytes, more: bool, receive):  # noqa: ANN001, ANN202 - ASGI
    """A receive that gives the body already read once, then the client's own messages."""
    sent = [False]

    async def replayed():  # noqa: ANN202
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": raw, "more_body": more}
        return await receive()

    return replayed
