"""POST /v1/chat/completions: request checks, the simulated answer, usage, logprobs and latency."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request

from cascade_studio.sandbox import judging
from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.routes.common import (
    ApiError,
    Handler,
    JSONResponse,
    expect,
    expect_metadata,
    maybe_fault,
    read_json,
    request_id_headers,
)
from cascade_studio.sandbox.tokens import count_message_tokens

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox

ANSWER_CACHE = 512  # simulated answers kept for repeated requests (~30 KB each with logprobs)
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _check_message(m: Any, i: int) -> None:
    """The fields of messages[i] that the simulator and the token count read."""
    if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m["role"] not in ROLES:
        raise ApiError(400, f"Invalid value for 'messages[{i}].role': expected one of system, developer, "
                       "user, assistant, tool.", param=f"messages[{i}].role", code="invalid_value")
    content = m.get("content")
    if content is not None and not isinstance(content, str):
        for j, part in enumerate(expect(content, "array", "messages[{}].content", i)):
            expect(part, "object", "messages[{}].content[{}]", i, j, optional=False)
            if "text" in part:
                expect(part["text"], "string", "messages[{}].content[{}].text", i, j, optional=False)
    expect(m.get("name"), "string", "messages[{}].name", i)
    expect(m.get("tool_call_id"), "string", "messages[{}].tool_call_id", i)
    for j, call in enumerate(expect(m.get("tool_calls"), "array", "messages[{}].tool_calls", i) or []):
        expect(call, "object", "messages[{}].tool_calls[{}]", i, j, optional=False)
        fn = expect(call.get("function", {}), "object", "messages[{}].tool_calls[{}].function", i, j, optional=False)
        expect(fn.get("name"), "string", "messages[{}].tool_calls[{}].function.name", i, j)
        expect(fn.get("arguments"), "string", "messages[{}].tool_calls[{}].function.arguments", i, j)


def _check_schema(schema: dict[str, Any], param: str) -> None:
    """The parts of a JSON schema the simulator reads to fill in arguments."""
    kind = schema.get("type")
    if not isinstance(kind, str):
        for j, item in enumerate(expect(kind, "array", "{}.type", param) or []):
            expect(item, "string", "{}.type[{}]", param, j, optional=False)
    expect(schema.get("enum"), "array", "{}.enum", param)
    for j, item in enumerate(expect(schema.get("required"), "array", "{}.required", param) or []):
        expect(item, "string", "{}.required[{}]", param, j, optional=False)
    items = expect(schema.get("items"), "object", "{}.items", param)
    if items is not None:
        _check_schema(items, param + ".items")
    for name, prop in (expect(schema.get("properties"), "object", "{}.properties", param) or {}).items():
        if isinstance(prop, dict):
            _check_schema(prop, f"{param}.properties.{name}")


def _tool_names(tools: Any) -> set[str]:
    names: set[str] = set()
    if tools is None:
        return names
    if not isinstance(tools, list):
        raise ApiError(400, "Invalid 'tools': expected an array.", param="tools")
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            raise ApiError(400, f"Invalid 'tools[{i}]': expected {{\"type\": \"function\", \"function\": "
                           "{\"name\": ...}}.", param=f"tools[{i}]", code="invalid_value")
        names.add(expect(fn["name"], "string", "tools[{}].function.name", i))
        expect(fn.get("description"), "string", "tools[{}].function.description", i)
        params = expect(fn.get("parameters"), "object", "tools[{}].function.parameters", i)
        if params is not None:
            _check_schema(params, f"tools[{i}].function.parameters")
    return names


def _check_tool_choice(choice: Any, names: set[str]) -> None:
    if isinstance(choice, dict):
        fn = expect(choice.get("function"), "object", "tool_choice.function") or {}
        name = expect(fn.get("name"), "string", "tool_choice.function.name")
        if name not in names:
            raise ApiError(400, f"Invalid value for 'tool_choice': function '{name}' is not in 'tools'.",
                           param="tool_choice", code="invalid_value")
    elif choice not in (None, "none", "auto", "required"):
        raise ApiError(400, "Invalid value for 'tool_choice': expected none, auto, required or a function.",
                       param="tool_choice", code="invalid_value")


def _check_top_logprobs(body: dict[str, Any]) -> None:
    top = body.get("top_logprobs")
    if top is None:
        return
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
        above = isinstance(top, int) and top > 20
        raise ApiError(400, f"Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, "
                       f"but got {top} instead." if above else
                       "Invalid 'top_logprobs': expected an integer between 0 and 20.",
                       param="top_logprobs", code="integer_above_max_value" if above else "invalid_value")
    if not body.get("logprobs"):
        raise ApiError(400, "Invalid value for 'top_logprobs': 'logprobs' must be set to true when using "
                       "top_logprobs.", param="top_logprobs", code="invalid_value")


class ChatRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._prefix_cache: set[str] = set()
        self._answers: OrderedDict[bytes, tuple[sim.Generation, str, int, bytes | None, tuple[int, int]]] = OrderedDict()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("/v1/chat/completions", "POST", self.chat_completions)]

    def validate_chat(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not model:
            raise ApiError(400, "you must provide a model parameter", param="model")
        expect(model, "string", "model")
        messages = body.get("messages")
        if messages is None:
            raise ApiError(400, "Missing required parameter: 'messages'.", param="messages",
                           code="missing_required_parameter")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                           param="messages", code="empty_array")
        for i, m in enumerate(messages):
            _check_message(m, i)
        n = body.get("n", 1)
        if n not in (1, None):
            raise ApiError(400, "The sandbox supports n=1 only.", param="n", code="invalid_value")
        for flag in ("stream", "logprobs", "store", "parallel_tool_calls"):
            expect(body.get(flag), "boolean", flag)
        if body.get("stream"):
            raise ApiError(400, "The sandbox does not support streaming; send stream=false.", param="stream",
                           code="unsupported_value")
        _check_top_logprobs(body)
        _check_tool_choice(body.get("tool_choice"), _tool_names(body.get("tools")))
        expect_metadata(body.get("metadata"))
        if not sim.is_known_chat_model(model, set(self.sandbox.fine_tuned)) and not judging.is_judge_model(model):
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")

    def _simulate(self, body: dict[str, Any], seed: int) -> tuple[sim.Generation, str, int, bytes | None, tuple[int, int]]:
        """(the generation, its prompt prefix's id and tokens, its logprobs' JSON, its usage counts) of
        a valid request: a function of the request alone, so a repeated request (a benchmark's, a
        test's) is answered from the cache, and needs no checks again (no model is ever removed)."""
        try:
            key: bytes | None = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            key = None
        if key is not None and isinstance(body.get("model"), str) and judging.is_judge_model(body["model"]):
            key = None  # a judge's verdict follows the sandbox's current error rate, and each one is logged: never cached
        done = self._answers.get(key) if key is not None else None
        if done is not None:
            self._answers.move_to_end(key)
            return done
        self.validate_chat(body)
        if judging.is_judge_model(body["model"]):
            text = judging.judge_answer(body, seed=seed, default_error_rate=self.sandbox.config.judge_error_rate)
            self.sandbox.judge_log.append({"model": body["model"], "prompt": sim._last_user_text(body["messages"]),
                                           "structured": "response_format" in body})
            gen = sim.Generation(text, [], [sim.Segment(text, "high")], 0, "stop")
        else:
            gen = sim.generate_chat(body, seed=seed)
        prefix = hashlib.sha1(json.dumps([body["model"], body["messages"][:-1], body.get("tools")],
                                         sort_keys=True).encode()).hexdigest()
        prefix_tokens = count_message_tokens(body["messages"][:-1], body.get("tools"))
        content = None
        if body.get("logprobs"):
            rng = sim.rng_for(seed + 1, body["model"], body["messages"])
            content = sim.token_logprobs_json(gen.segments, sim.profile_for(body["model"]), rng,
                                              int(body.get("top_logprobs") or 0))
        done = (gen, prefix, prefix_tokens, content, sim.usage_counts(body, gen))
        if key is not None:
            self._answers[key] = done
            if len(self._answers) > ANSWER_CACHE:
                self._answers.popitem(last=False)
        return done

    def complete(self, body: dict[str, Any], *, logprobs_json: bool = False) -> tuple[dict[str, Any], float]:
        """A chat completion and its simulated latency in seconds (before scaling). With `logprobs_json`
        the logprobs' content is already JSON (an `orjson.Fragment`: only orjson can send it, with the
        same bytes), which saves the list of dicts that would only be encoded again."""
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        seed = self.sandbox.config.seed
        gen, prefix, prefix_tokens, content, counts = self._simulate(body, seed)
        profile = sim.profile_for(body["model"])
        cached = (prefix_tokens // 128) * 128 if prefix in self._prefix_cache and prefix_tokens >= 1024 else 0
        self._prefix_cache.add(prefix)
        usage = sim.chat_usage(body, gen, cached, counts)
        logprobs = None
        if content is not None:
            logprobs = {"content": orjson.Fragment(content) if logprobs_json else orjson.loads(content),
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
            "system_fingerprint": "fp_sandbox_" + hashlib.sha1(f"{body['model']}{seed}".encode()).hexdigest()[:8],
        }
        if body.get("store") and isinstance(body.get("metadata"), dict):
            response["metadata"] = body["metadata"]
        jitter = 0.8 + 0.4 * random.random()  # as random as the id it was once seeded with, 10x cheaper
        latency = (profile.base_ms + profile.ms_per_token * usage["completion_tokens"]) / 1000 * jitter
        return response, latency

    async def chat_completions(self, request: Request) -> Any:
        sandbox = self.sandbox
        body = await read_json(request, sandbox.config.max_json_depth)
        dropped = await maybe_fault(sandbox.config.faults, sandbox.fault_rng)
        if dropped is not None:
            return dropped
        started = time.perf_counter()
        response, latency = self.complete(body, logprobs_json=True)
        delay = latency * sandbox.config.latency_scale
        if delay > 0:
            await asyncio.sleep(delay)
        ms = int((time.perf_counter() - started) * 1000)
        return JSONResponse(response, headers={**request_id_headers(), "openai-processing-ms": str(ms)})
