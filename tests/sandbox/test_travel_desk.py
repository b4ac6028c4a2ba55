"""The travel desk MCP server over real transports with the official mcp client: stdio (one desk
per process) and Streamable HTTP (one desk per Mcp-Session-Id); tool errors are isError results."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from bench import travel_desk_tasks
from cascade_studio.core.tasks import parse_native
from cascade_studio.sandbox import travel_data
from cascade_studio.sandbox.travel_desk import CHECK_TOOL, build_server, openai_tool

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"search_flights", "book_flight", "search_hotels", "book_hotel", "get_booking", "cancel_booking",
         "get_weather", CHECK_TOOL}


def stdio_params() -> StdioServerParameters:
    env = {"PYTHONPATH": str(ROOT)}
    return StdioServerParameters(command=sys.executable, args=["-m", "cascade_studio.sandbox.travel_desk"],
                                 env=env, cwd=str(ROOT))


def text(result) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


async def book_cheapest(client) -> str:
    found = json.loads(text(await client.call_tool(
        "search_flights", {"origin": "Lisbon", "destination": "Paris", "date": "2025-06-12"})))
    cheapest = min(found["flights"], key=lambda f: f["price"])
    booked = await client.call_tool("book_flight", {"flight_id": cheapest["flight_id"], "passenger": "Ana Silva"})
    assert not booked.is_error
    return json.loads(text(booked))["booking_id"]


def test_stdio_tools_errors_and_state_per_session():
    async def main():
        async with Client(stdio_params()) as client:
            listed = (await client.list_tools()).tools
            assert {t.name for t in listed} == TOOLS
            for tool in map(openai_tool, listed):
                fn = tool["function"]
                assert tool["type"] == "function" and fn["description"]
                assert fn["parameters"]["type"] == "object" and "properties" in fn["parameters"]
            book = next(openai_tool(t) for t in listed if t.name == "book_flight")["function"]["parameters"]
            assert set(book["required"]) == {"flight_id", "passenger"}

            bad = await client.call_tool("book_flight", {"flight_id": "FL-NOPE", "passenger": "Ana Silva"})
            assert bad.is_error and "Unknown flight id" in text(bad)
            bad = await client.call_tool("search_flights", {"origin": "Atlantis", "destination": "Paris",
                                                            "date": "2025-06-12"})
            assert bad.is_error and "Unknown city" in text(bad)

            booking_id = await book_cheapest(client)
            assert booking_id == "BK-1001"
            got = await client.call_tool("get_booking", {"booking_id": booking_id})
            assert not got.is_error and json.loads(text(got))["passenger"] == "Ana Silva"
            verdict = json.loads(text(await client.call_tool(CHECK_TOOL, {"bookings": [
                {"type": "flight", "passenger": "Ana Silva", "status": "active"}]})))
            assert verdict == {"passed": True, "reason": "state matches"}
        async with Client(stdio_params()) as fresh:  # a new process: a fresh desk
            missing = await fresh.call_tool("get_booking", {"booking_id": "BK-1001"})
            assert missing.is_error
            verdict = json.loads(text(await fresh.call_tool(CHECK_TOOL, {"bookings": []})))
            assert verdict["passed"]

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_url():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cascade_studio.sandbox.travel_desk", "--http", "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the travel desk did not start listening")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_streamable_http_desk_per_session(http_url):
    async def main():
        async with Client(http_url, mode="legacy") as a, Client(http_url, mode="legacy") as b:
            assert {t.name for t in (await a.list_tools()).tools} == TOOLS
            assert await book_cheapest(a) == "BK-1001"
            assert not (await a.call_tool("get_booking", {"booking_id": "BK-1001"})).is_error
            assert (await b.call_tool("get_booking", {"booking_id": "BK-1001"})).is_error
            cancelled = await b.call_tool("cancel_booking", {"booking_id": "BK-0902"})
            assert json.loads(text(cancelled))["status"] == "cancelled"
            again = await b.call_tool("cancel_booking", {"booking_id": "BK-0902"})
            assert again.is_error and "already cancelled" in text(again)
            assert json.loads(text(await a.call_tool("get_booking", {"booking_id": "BK-0902"})))["status"] == "active"
        async with Client(http_url) as stateless:  # protocol 2026-07-28: no session, the process's desk
            weather = await stateless.call_tool("get_weather", {"city": "Rome", "date": "2025-06-10"})
            assert json.loads(text(weather)) == travel_data.weather("ROM", "2025-06-10")

    asyncio.run(main())


def test_catalogue_is_deterministic_and_checked():
    assert travel_data.flights("Lisbon", "PAR", "2025-06-12") == travel_data.flights("LIS", "Paris", "2025-06-12")
    prices = [f["price"] for f in travel_data.flights("LIS", "PAR", "2025-06-12")]
    assert len(set(prices)) == len(prices)
    with pytest.raises(travel_data.DeskError, match="YYYY-MM-DD"):
        travel_data.flights("LIS", "PAR", "12/06/2025")
    desk = travel_data.TravelDesk()
    booking = desk.book_hotel("HT-PAR-2", "Ana Silva", 3, "2025-06-12")
    assert desk.check_state([{"type": "hotel", "hotel_id": "HT-PAR-2", "nights": 3}])["passed"]
    assert not desk.check_state([{"type": "hotel", "nights": 4}])["passed"]
    assert not desk.check_state([])["passed"]  # an unexpected booking fails
    desk.cancel_booking(booking["booking_id"])
    desk.cancel_booking("BK-0901")
    assert "BK-0901" in desk.check_state([{"booking_id": booking["booking_id"], "status": "cancelled"}])["reason"]
    desk.log("get_weather", {"city": "ROM", "date": "2025-06-10"})
    assert desk.check_state([{"booking_id": booking["booking_id"], "status": "cancelled"}, {"booking_id": "BK-0901"}],
                            [{"tool": "get_weather", "arguments": {"city": "ROM"}}])["passed"]


def test_demo_task_file_is_current_and_parses():
    path = ROOT / "cascade_studio" / "resources" / "demo" / "travel_desk_tasks.jsonl"
    assert path.read_text(encoding="utf-8") == travel_desk_tasks.render(), "run python bench/travel_desk_tasks.py"
    tasks = parse_native(path.read_text(encoding="utf-8"), str(path))
    assert len(tasks) >= 12 and len({t.category for t in tasks}) >= 3
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    tool_names = {t.name for t in asyncio.run(build_server().list_tools())}
    for row in rows:
        assert row["environment"] == "travel-desk" and 2 <= row["max_steps"] <= 10 and row["tools"] == []
        assert row["expected"]["check"]["tool"] == CHECK_TOOL in tool_names
