"""Issue 16's check: a teacher run against an MCP server nobody on this team wrote (mcp-server-time,
from PyPI, over stdio) completes episodes, and the stored steps are exactly what the server returned.

Skipped when mcp-server-time is not installed, unless CASCADE_STUDIO_REQUIRE_THIRD_PARTY_MCP=1 (CI
installs it and sets it), where it fails instead."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.agent.test_episodes import cli


def server_command() -> str:
    found = shutil.which("mcp-server-time") or str(Path(sys.executable).with_name("mcp-server-time"))
    if not Path(found).exists():
        message = "mcp-server-time is not installed (pip install mcp-server-time)"
        if os.environ.get("CASCADE_STUDIO_REQUIRE_THIRD_PARTY_MCP") == "1":
            pytest.fail(f"CASCADE_STUDIO_REQUIRE_THIRD_PARTY_MCP=1 but {message}", pytrace=False)
        pytest.skip(message)
    return found


def test_episodes_against_a_pypi_mcp_server(tmp_path, capsys, sandbox_thread):
    command = server_command()
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", sandbox_thread.base_url,
               "--provider", "sandbox")[0] == 0
    code, out, err = cli(capsys, ws, "env", "add", "time", "--stdio", f"{command} --local-timezone Europe/Paris")
    assert code == 0, err
    code, out, _ = cli(capsys, ws, "env", "tools", "time", "--json")
    names = {t["function"]["name"] for t in json.loads(out)}
    assert {"get_current_time", "convert_time"} <= names
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t1", "category": "time", "tools": [], "messages": [
        {"role": "user", "content": "What is the current time in timezone Asia/Tokyo?"}]}) + "\n")
    assert cli(capsys, ws, "tasks", "import", str(tasks), "--env", "time")[0] == 0
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0 and json.loads(out)["done"] == 1
    code, out, _ = cli(capsys, ws, "trajectories", "show", "1", "--json")
    shown = json.loads(out)
    assert shown["steps"] >= 2 and shown["end_reason"] == "answered"
    stored = shown["steps_detail"][0]["tool_results"][0]
    # the same call, made again directly with the official SDK, gives what was stored
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def direct():
        params = StdioServerParameters(command=command, args=["--local-timezone", "Europe/Paris"])
        with open(tmp_path / "stderr.txt", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                return await s.call_tool(stored["name"], stored["arguments"])


    reply = asyncio.run(direct())
    assert bool(reply.is_error) == stored["is_error"]
    if stored["is_error"]:  # an invalid zone: the error text is deterministic
        assert reply.content[0].text == stored["content"]
    else:  # the time moves on; the shape is the server's
        assert set(json.loads(reply.content[0].text)) == set(json.loads(stored["content"]))
