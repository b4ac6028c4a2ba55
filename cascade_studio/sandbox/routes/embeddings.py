"""POST /v1/embeddings: hashed bag-of-words vectors, float or base64."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.routes.common import ApiError, Handler, expect, maybe_fault, read_json
from cascade_studio.sandbox.tokens import count_tokens

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox


def _texts(raw: Any) -> list[str]:
    """The input as texts: a string, or an array of strings or token arrays."""
    if raw is None or raw == "" or raw == []:
        raise ApiError(400, "'input' is required and cannot be empty.", param="input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or len(inputs) > 2048:
        raise ApiError(400, "'input' must be a string or an array of at most 2048 strings.", param="input")
    texts = []
    for i, x in enumerate(inputs):
        if isinstance(x, str):
            texts.append(x)
        elif isinstance(x, list):
            texts.append(" ".join(str(t) for t in x))
        elif isinstance(x, int) and not isinstance(x, bool):
            texts.append(str(x))
        else:
            raise ApiError(400, f"Invalid type for 'input[{i}]': expected a string, a token or an array of tokens.",
                           param=f"input[{i}]", code="invalid_type")
    return texts


class EmbeddingRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("/v1/embeddings", "POST", self.embeddings)]

    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not model:
            raise ApiError(400, "you must provide a model parameter", param="model")
        if expect(model, "string", "model") not in sim.EMBEDDING_MODELS:
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")
        texts = _texts(body.get("input"))
        dims = body.get("dimensions") or sim.EMBEDDING_MODELS[model]
        if not isinstance(dims, int) or not 1 <= dims <= sim.EMBEDDING_MODELS[model]:
            raise ApiError(400, f"'dimensions' must be between 1 and {sim.EMBEDDING_MODELS[model]}.",
                           param="dimensions")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise ApiError(400, "'encoding_format' must be float or base64.", param="encoding_format")
        data = []
        for i, text in enumerate(texts):
            vec = sim.embed(text, dims)
            data.append({"object": "embedding", "index": i,
                         "embedding": sim.encode_base64(vec) if fmt == "base64" else vec})
        tokens = sum(count_tokens(t) for t in texts)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def embeddings(self, request: Request) -> Any:
        sandbox = self.sandbox
        body = await read_json(request, sandbox.config.max_json_depth)
        dropped = await maybe_fault(sandbox.config.faults, sandbox.fault_rng)
        if dropped is not None:
            return dropped
        result = self.embed(body)
        delay = 0.02 * sandbox.config.latency_scale
        if delay > 0:
            await asyncio.sleep(delay)
        return result
