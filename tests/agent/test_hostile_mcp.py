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
