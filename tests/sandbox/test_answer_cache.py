"""The sandbox's answer cache: a repeated request gets, byte for byte, the answer a fresh sandbox
computes for it (bar the id and the clock), and the cache stays bounded."""

from __future__ import annotations

import orjson

from cascade_studio.sandbox.app import Sandbox
from cascade_studio.sandbox.routes import chat

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "logprobs": True, "top_logprobs": 3}


def _bytes(sandbox: Sandbox, body: dict) -> bytes:
    response, _ = sandbox.chat_routes.complete(body, logprobs_json=True)
    return orjson.dumps({**response, "id": "", "created": 0})


def test_a_cached_answer_is_the_computed_one(monkeypatch):
    warm = Sandbox()
    first = _bytes(warm, BODY)
    assert _bytes(warm, BODY) == first == _bytes(Sandbox(), BODY)
    assert len(warm.chat_routes._answers) == 1
    other = {**BODY, "top_logprobs": 2}
    assert _bytes(warm, other) == _bytes(Sandbox(), other) != first
    monkeypatch.setattr(chat, "ANSWER_CACHE", 3)
    for i in range(6):
        _bytes(warm, {**BODY, "messages": [{"role": "user", "content": f"weather in city {i}?"}]})
    assert len(warm.chat_routes._answers) == 3
