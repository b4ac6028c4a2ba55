"""GET /v1/models and /v1/models/{model}: the simulated models and the fine-tuned ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.judging import BABBLE, JUDGE_PREFIX
from cascade_studio.sandbox.routes.common import ApiError, Handler
from cascade_studio.sandbox.state import ORG

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox

MODEL_CREATED = 1715367049
JUDGE_MODELS = [JUDGE_PREFIX, f"{JUDGE_PREFIX}-0", f"{JUDGE_PREFIX}-20", BABBLE]  # judge-sim-NN: any NN% wrong


class ModelRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("/v1/models", "GET", self.list_models), ("/v1/models/{model:path}", "GET", self.get_model)]

    def all_models(self) -> list[dict[str, Any]]:
        out = [{"id": m, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}
               for m in [*sim.CHAT_MODELS, *sim.EMBEDDING_MODELS, *JUDGE_MODELS]]
        out += [{"id": m, "object": "model", "created": MODEL_CREATED, "owned_by": ORG}
                for m in self.sandbox.fine_tuned]
        return out

    async def list_models(self, request: Request) -> dict[str, Any]:
        return {"object": "list", "data": self.all_models()}

    async def get_model(self, request: Request) -> dict[str, Any]:
        model = request.path_params["model"]
        for m in self.all_models():
            if m["id"] == model:
                return m
        raise ApiError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
