"""Hostile MCP servers are described in words, not as "ExceptionGroup: unhandled errors" (issue 33)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from cascade_studio.services.agent.environments import (
    EnvironmentError_,
    EnvironmentSpec,
    list_tools,
    try_call,
)
from cascade_studio.services.secrets import SecretStore

HERE = Path(__file__).resolve().parent


def _spec(*args: str) -> EnvironmentSpec:
    return EnvironmentSpec(name="hostile", kind="stdio", command=sys.executable, args=list(args), timeout_s=5)


def test_a_server_that_exits_at_start_is_said_so(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint('boom: no config file', file=sys.stderr)\nsys.exit(1)\n")
    with pytest.raises(EnvironmentError_) as caught:
        asyncio.run(list_tools(_spec(str(script)), SecretStore(environ={})))
    message = str(caught.value)
    assert "the server exited with code 1 before listing its tools" in message and "boom: no config file" in message
    assert "ExceptionGroup" not in message


def test_a_tool_list_that_never_ends_is_said_so():
    with pytest.raises(EnvironmentError_) as caught:
        asyncio.run(list_tools(_spec(str(HERE / "paging_server.py")), SecretStore(environ={})))
    message = str(caught.value)
    assert "tool list goes on past 100 pages" in message and "ExceptionGroup" not in message


def test_a_tool_list_of_several_pages_is_read_whole():
    tools = asyncio.run(list_tools(_spec(str(HERE / "paging_server.py"), "3"), SecretStore(environ={})))
    assert [t["function"]["name"] for t in tools] == ["t0", "t1", "t2"]


def test_a_tool_result_over_the_limit_is_said_so_not_timed_out(monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_MAX_TOOL_RESULT_MB", "1")
    spec = _spec(str(HERE / "big_result_server.py"), str(3 * 1024 * 1024))
    result = asyncio.run(try_call(spec, SecretStore(environ={}), "big", {}))
    assert result.error and "result is larger than 1 MB (at least 3 MB); it was not read" in result.error
    assert "timed out" not in result.error
    small = asyncio.run(try_call(_spec(str(HERE / "big_result_server.py"), "1000"), SecretStore(environ={}), "big", {}))
    assert small.error is None and small.content == "x" * 1000


def test_a_command_that_is_not_there_is_said_so(tmp_path):
    spec = EnvironmentSpec(name="gone", kind="stdio", command="no-such-mcp-server-xyz", args=[])
    with pytest.raises(EnvironmentError_) as caught:
        asyncio.run(list_tools(spec, SecretStore(environ={})))
    assert "'no-such-mcp-server-xyz' was not found" in str(caught.value)


@pytest.mark.parametrize("mode", ["json", "sse", "gzip"])
def test_a_tool_result_over_the_limit_over_http_is_said_so(monkeypatch, mode):
    """The same limit as over stdio: a JSON answer is refused while read (a compressed one once
    inflated), an event stream by the SDK's per-event limit; a result under the limit comes whole."""
    import subprocess

    from tests.ports import free_port, wait_listening

    monkeypatch.setenv("CASCADE_STUDIO_MAX_TOOL_RESULT_MB", "1")

    def serve(size: int):
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(HERE / "big_result_http_server.py"), str(port), str(size), mode],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port)
        spec = EnvironmentSpec(name="hostile-http", kind="http", url=f"http://127.0.0.1:{port}/mcp", timeout_s=20)
        return proc, spec

    proc, spec = serve(3 * 1024 * 1024)
    try:
        result = asyncio.run(try_call(spec, SecretStore(environ={}), "big", {}))
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.error and "timed out" not in result.error, result.error
    # (an event is refused as soon as it passes the limit: "at least 1.06 MB" of it was seen)
    assert "the tool's result is larger than 1 MB (at least" in result.error and "it was not read" in result.error
    proc, spec = serve(1000)
    try:
        small = asyncio.run(try_call(spec, SecretStore(environ={}), "big", {}))
    finally:
        proc.terminate()
        proc.wait(10)
    assert small.error is None and small.content == "x" * 1000


def test_an_event_stream_passes_whole_events_on_and_cuts_only_the_one_too_large():
    """Events split across chunks, boundaries spanning two chunks and \\r\\n line ends come through
    byte for byte; only an event past the limit is cut, with the request's error as the last event."""
    import json as _json

    import httpx2

    from cascade_studio.services.agent.mcp_http import _BoundedEvents

    class Chunks(httpx2.AsyncByteStream):
        def __init__(self, chunks):
            self.chunks = chunks

        async def __aiter__(self):
            for c in self.chunks:
                yield c

    async def read(chunks, limit, request_id=7):
        request = httpx2.Request("POST", "http://127.0.0.1/mcp", content=_json.dumps({"id": request_id}).encode())
        return b"".join([c async for c in _BoundedEvents(Chunks(chunks), request, limit)])

    events = b"data: a\n\n" + b"data: " + b"b" * 50 + b"\r\n\r\n" + b"data: c\n\n"
    for size in (1, 2, 3, 7, 64):
        chunks = [events[i:i + size] for i in range(0, len(events), size)]
        assert asyncio.run(read(chunks, limit=100)) == events
    many = b"data: a\n\n" * 50  # many small events in one chunk: each is within the limit, all pass
    assert asyncio.run(read([many], limit=20)) == many
    # an event of 28 bytes over two chunks, the first without any boundary: cut at a limit of 26
    cut = asyncio.run(read([b"data: " + b"x" * 10, b"y" * 10 + b"\n\n"], limit=26))
    assert b"y" * 10 not in cut and b"larger than" in cut
    assert asyncio.run(read([b"data: " + b"x" * 10, b"y" * 10 + b"\n\n"], limit=28)) == b"data: " + b"x" * 10 + b"y" * 10 + b"\n\n"
    out = asyncio.run(read([b"data: small\n\n", b"data: " + b"x" * 300, b"x" * 300 + b"\n\n"], limit=200))
    assert out.startswith(b"data: small\n\n") and b"x" * 300 not in out
    error = _json.loads(out.split(b"data: ")[-1])
    assert error["id"] == 7 and "larger than" in error["error"]["message"]
