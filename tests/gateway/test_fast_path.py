"""The gateway's fast path (its own pooled client, the answer decoded only as far as the decision
needs, the tier's bytes passed through) answers byte for byte as the openai SDK's path with whole
decoding, decides the same and logs the same; and its client keeps the whole-request bounds."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx2
import orjson
import pytest

from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.decode import decision_view
from cascade_studio.gateway.server import GatewayServer
from tests.gateway.helpers import ASK, WEATHER_TOOL, tiers_at, write


@pytest.fixture
def fixed_sandbox(monkeypatch):
    """The sandbox's answers without their random id and clock, so two paths can be compared."""
    from cascade_studio.sandbox.routes import chat

    monkeypatch.setattr(chat, "secrets", SimpleNamespace(token_hex=lambda n: "ab" * n))
    monkeypatch.setattr(chat, "time", SimpleNamespace(time=lambda: 1_760_000_000.0, perf_counter=time.perf_counter))


BFCL = Path(__file__).resolve().parents[2] / "cascade_studio" / "resources" / "bfcl" / "BFCL_v4_simple_python.json"


def _bfcl_bodies(n: int) -> list[dict]:
    """Client requests with real tools (BFCL's, in OpenAI's schema)."""
    out = []
    for line in BFCL.read_text().splitlines()[:n]:
        task = json.loads(line)
        tools = []
        for fn in task["function"]:
            fn = json.loads(json.dumps(fn).replace('"dict"', '"object"').replace('"float"', '"number"')
                            .replace('"tuple"', '"array"').replace('"any"', '"string"'))
            fn["name"] = fn["name"].replace(".", "_")
            tools.append({"type": "function", "function": fn})
        out.append({"model": "cascade", "messages": task["question"][0], "tools": tools})
    return out


def _requests() -> list[dict]:
    out = []
    for i, body in enumerate(_bfcl_bodies(8)):
        out.append(body)
        out.append({**body, "logprobs": True, "top_logprobs": 2})
        if i < 2:
            out.append({**body, "stream": True, "stream_options": {"include_usage": True}})
            out.append({**body, "stream": True, "logprobs": True})
    out.append({"model": "cascade", "messages": ASK, "tools": [WEATHER_TOOL], "metadata": {"category": "weather"}})
    out.append({"model": "cascade", "messages": ASK})
    return out


def _log(folder) -> list[dict]:
    records = [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]
    for r in records:
        r.pop("id"), r.pop("time"), r.pop("latency_ms")
        for a in r["attempts"]:
            a.pop("latency_ms")
    return records


async def _answers(tmp_path, sandbox, fast: bool) -> tuple[list, list]:
    policy = write(tmp_path / f"p{fast}.json", tiers_at(sandbox.base_url, sandbox.base_url, sandbox.base_url))
    logs = tmp_path / f"logs{fast}"
    out = []
    async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(logs), log_content="full"), fast=fast) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as client:
            for body in _requests():
                r = await client.post("/chat/completions", content=orjson.dumps(body))
                headers = {k: v for k, v in r.headers.items() if k.startswith("x-cascade") or k == "content-type"}
                out.append((r.status_code, headers, r.content))
    return out, _log(logs)


async def test_fast_path_answers_decides_and_logs_as_the_sdk_path(tmp_path, sandbox, fixed_sandbox):
    fast, fast_log = await _answers(tmp_path, sandbox, fast=True)
    slow, slow_log = await _answers(tmp_path, sandbox, fast=False)
    assert len(fast) == len(_requests())
    for (fs, fh, fb), (ss, sh, sb) in zip(fast, slow, strict=True):
        assert fs == ss == 200
        assert fh == sh  # the decision: tier, confidence, tiers tried, cost
        assert fb == sb  # the body, byte for byte (streams included)
    assert fast_log == slow_log
    assert {h["x-cascade-tiers-tried"] for _, h, _ in fast} >= {"1", "1,2"}  # some escalated


def test_decision_view_keeps_what_the_decision_reads_and_gives_way_on_odd_shapes():
    answer = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                      "logprobs": {"content": [{"token": "hi", "logprob": -0.5, "bytes": [104, 105],
                                                                "top_logprobs": [{"token": "hi", "logprob": -0.5}]}],
                                                   "refusal": None},
                                      "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    view = decision_view(orjson.dumps(answer))
    assert view["choices"][0]["logprobs"] == {"content": [{"token": "hi", "logprob": -0.5}]}
    assert {k: v for k, v in view.items() if k != "choices"} == {k: v for k, v in answer.items() if k != "choices"}
    for odd in ({"choices": [{"logprobs": {"content": [{"logprob": True, "token": "a"}]}}]},
                {"choices": [{"logprobs": {"content": [{"logprob": -1.0}]}}]},
                {"choices": "none"}, [1, 2]):
        assert decision_view(orjson.dumps(odd)) is None
    assert decision_view(b"<html>") is None


class _Trickle:
    """Sends a 200 head, then a byte every 0.2 s (a server that never finishes), or one huge body."""

    def __init__(self, huge: int = 0) -> None:
        self.huge = huge

    async def __aenter__(self):
        async def handle(reader, writer):
            try:
                await reader.readuntil(b"\r\n\r\n")
                if self.huge:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                                 % self.huge + b" " * self.huge)
                    await writer.drain()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n")
                for _ in range(200):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.2)
            except ConnectionError:
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


async def test_fast_client_bounds_the_whole_request_and_the_answer_size(tmp_path, sandbox, monkeypatch):
    async with _Trickle() as slow_server:
        tiers = tiers_at(slow_server.base_url, sandbox.base_url, timeout_s=0.6)
        policy = write(tmp_path / "p.json", tiers)
        async with GatewayServer(GatewayConfig(policy, port=0, max_tries=1)) as gw:
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as client:
                t0 = time.monotonic()
                r = await client.post("/chat/completions", json={"model": "c", "messages": ASK})
        assert r.status_code == 200 and r.headers["x-cascade-tiers-tried"] == "1,2"
        assert time.monotonic() - t0 < 5  # not the 40 s the trickle would take
    monkeypatch.setenv("CASCADE_STUDIO_MAX_ANSWER_MB", "0.0625")  # 64 KB: the services' cap, read by the fast path
    async with _Trickle(huge=200 * 1024) as big:
        policy = write(tmp_path / "p2.json", tiers_at(big.base_url, sandbox.base_url))
        async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(tmp_path / "logs"))) as gw:
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as client:
                r = await client.post("/chat/completions", json={"model": "c", "messages": ASK})
        assert r.status_code == 200 and r.headers["x-cascade-tiers-tried"] == "1,2"
    (record,) = _log(tmp_path / "logs")
    assert "0 MB limit" in record["attempts"][0]["error"] or "limit" in record["attempts"][0]["error"]


async def test_fast_and_sdk_paths_describe_a_refused_connection_alike(tmp_path, sandbox):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    errors = []
    for fast in (True, False):
        policy = write(tmp_path / f"p{fast}.json", tiers_at(dead, sandbox.base_url))
        logs = tmp_path / f"logs{fast}"
        async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(logs), max_tries=1), fast=fast) as gw:
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as client:
                r = await client.post("/chat/completions", json={"model": "c", "messages": ASK})
        assert r.status_code == 200
        errors.append(_log(logs)[0]["attempts"][0]["error"])
    assert errors[0] == errors[1] and "refused" in errors[0].lower()


async def test_fast_client_reads_a_compressed_answer(tmp_path):
    import gzip

    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4.1-nano",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is sunny."},
                           "finish_reason": "stop", "logprobs": None}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
    body = gzip.compress(orjson.dumps(answer))

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                             b"content-length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    policy = write(tmp_path / "p.json", tiers_at(url, threshold=0.0))
    async with GatewayServer(GatewayConfig(policy, port=0)) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as client:
            r = await client.post("/chat/completions", json={"model": "c", "messages": ASK})
    server.close()
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Paris is sunny."


async def test_fast_path_sends_plain_http_only_to_a_name_that_resolves_to_this_machine(tmp_path, sandbox, monkeypatch):
    """Issue 33 on the fast path: `*.localhost` is checked when connecting, not assumed; a name that
    resolves elsewhere is never connected to (the key would go there), and the cascade escalates."""
    from cascade_studio.services import loopback

    port = sandbox.base_url.split(":")[2].split("/")[0]
    real = loopback._getaddrinfo
    monkeypatch.setattr(loopback, "_getaddrinfo", lambda host, p: ["10.11.12.13"] if host == "evil.localhost"
                        else ["127.0.0.1"] if host == "good.localhost" else real(host, p))
    for name, tried in (("good.localhost", "1"), ("evil.localhost", "1,2")):
        tiers = tiers_at(f"http://{name}:{port}/v1", sandbox.base_url, threshold=0.0)  # tier 1 keeps what it gets
        logs = tmp_path / f"logs-{name}"
        policy = write(tmp_path / f"{name}.json", tiers)
        async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(logs), max_tries=1)) as gw:
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as client:
                r = await client.post("/chat/completions", json={"model": "c", "messages": ASK})
        assert r.status_code == 200 and r.headers["x-cascade-tiers-tried"] == tried, name
        if name == "evil.localhost":
            assert "not this machine" in _log(logs)[0]["attempts"][0]["error"]
