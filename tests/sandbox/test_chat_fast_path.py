"""The sandbox's chat fast path (issue 32): `POST /v1/chat/completions` answered from ASGI messages
gives, byte for byte (bar the id, the clock and the request id), what the Starlette route gives; and
every request it does not take (errors, faults, odd headers, large or deep bodies) is the route's own
answer, the same status, headers and body."""

from __future__ import annotations

import asyncio
import json

import httpx2
import orjson
import pytest

from cascade_studio.sandbox.app import Sandbox, SandboxConfig
from cascade_studio.sandbox.faults import parse_faults

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
BODIES = [
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
     "tools": TOOLS, "logprobs": True, "top_logprobs": 3},
    {"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": "Say hello in French."}]},
    {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Name a prime above 100."}], "logprobs": True},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Note this"}], "store": True,
     "metadata": {"category": "x"}},
]
KEY = {"authorization": "Bearer sk-test"}


async def _post(app, content: bytes, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sandbox") as client:
        return await client.post("/v1/chat/completions", content=content, headers=headers)


def _both(content: bytes, headers: dict[str, str], config: SandboxConfig | None = None):
    fast, plain = Sandbox(config or SandboxConfig(latency_scale=0)), Sandbox(config or SandboxConfig(latency_scale=0))
    a = asyncio.run(_post(fast.app, content, headers))
    b = asyncio.run(_post(plain.starlette, content, headers))
    return (a, fast), (b, plain)


def _same_answer(a: httpx2.Response, b: httpx2.Response) -> None:
    assert a.status_code == b.status_code
    assert set(a.headers) == set(b.headers), (a.headers, b.headers)
    if a.status_code == 200:
        x, y = a.json(), b.json()
        for body in (x, y):
            body["id"], body["created"] = "", 0
        assert orjson.dumps(x) == orjson.dumps(y)
        assert a.headers["content-type"] == "application/json"
        assert a.headers["x-request-id"].startswith("req_") and a.headers["openai-processing-ms"].isdigit()
    else:
        assert a.content == b.content


@pytest.mark.parametrize("body", BODIES)
def test_the_fast_path_answers_as_the_route_does(body):
    (a, fast), (b, plain) = _both(json.dumps(body).encode(), {**KEY, "content-type": "application/json"})
    assert a.status_code == 200
    _same_answer(a, b)
    assert fast.request_count == plain.request_count == 1
    # and it was the fast path that answered: with the route gone it still does
    alone = Sandbox(SandboxConfig(latency_scale=0))

    async def gone(scope, receive, send):
        raise AssertionError("the Starlette route was asked")

    alone.starlette = gone
    assert asyncio.run(_post(alone.app, json.dumps(body).encode(), KEY)).status_code == 200


@pytest.mark.parametrize("content, headers", [
    (json.dumps(BODIES[0]).encode(), {}),  # no key
    (json.dumps(BODIES[0]).encode(), {"authorization": "Basic abc"}),
    (b"{not json", KEY),
    (b"[1, 2]", KEY),
    (json.dumps({**BODIES[0], "model": "no-such-model"}).encode(), KEY),
    (json.dumps({"model": "gpt-4o-mini", "messages": []}).encode(), KEY),
    (json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],
                 "deep": json.loads("[" * 100 + "]" * 100)}).encode(), KEY),
    (json.dumps(BODIES[0]).encode(), {**KEY, "content-length": "12x"}),
])
def test_what_the_fast_path_does_not_take_is_the_routes_answer(content, headers):
    (a, fast), (b, plain) = _both(content, headers)
    assert a.status_code >= 400
    _same_answer(a, b)
    assert fast.request_count == plain.request_count


def test_a_body_over_the_limit_a_wrong_key_and_faults_are_the_routes_answers():
    small = SandboxConfig(latency_scale=0, max_body_bytes=200)
    (a, _), (b, _) = _both(json.dumps(BODIES[0]).encode(), KEY, small)
    assert a.status_code == 413 and a.content == b.content
    keyed = SandboxConfig(latency_scale=0, api_keys={"sk-right"})
    (a, _), (b, _) = _both(json.dumps(BODIES[0]).encode(), KEY, keyed)
    assert a.status_code == 401 and a.content == b.content
    (a, _), _ = _both(json.dumps(BODIES[0]).encode(), {"authorization": "Bearer sk-right"}, keyed)
    assert a.status_code == 200
    faulty = SandboxConfig(latency_scale=0, faults=parse_faults("500=1.0"))
    (a, _), (b, _) = _both(json.dumps(BODIES[0]).encode(), KEY, faulty)
    assert a.status_code == 500 and a.content == b.content
