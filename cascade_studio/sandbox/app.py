"""The sandbox's HTTP API (Starlette): the shared state and the routes of each API area, assembled
behind one guard (API key, request count, body limit). Shapes and status codes follow the official
OpenAI spec; the areas live in `cascade_studio.sandbox.routes`."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

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
    bounded,
    check_auth,
    paginate,
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
        self.app = Starlette(routes=routes, exception_handlers={ApiError: api_error_response,
                                                                Exception: server_error_response})

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
