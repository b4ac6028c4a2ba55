"""The demo environment: a small travel desk served over MCP (the official `mcp` SDK's MCPServer).

    python -m cascade_studio.sandbox.travel_desk                      # stdio (default)
    python -m cascade_studio.sandbox.travel_desk --http --port 8931   # Streamable HTTP, 127.0.0.1/mcp

Tools: search_flights, book_flight, search_hotels, book_hotel, get_booking, cancel_booking,
get_weather, and `check_state`, the judge an episode's task names (the app hides it from the model).

State (bookings, the log of successful calls) belongs to one session:
- stdio: one client per server process, so each process is one fresh desk;
- Streamable HTTP with a session (a client in the handshake protocol, `Client(url, mode="legacy")`):
  one desk per `Mcp-Session-Id`, forgotten when the client ends the session;
- stateless HTTP requests (protocol 2026-07-28 has no session) share the process's desk.
A caller's mistake is an MCP tool error (isError) whose text says what to fix, never a crash.
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from cascade_studio.sandbox import travel_data as data
from cascade_studio.sandbox.travel_data import DeskError, TravelDesk

NAME = "travel-desk"
MAX_HTTP_SESSIONS = 512
CHECK_TOOL = "check_state"


class Desks:
    """The desks of one server, one per session key (oldest forgotten past MAX_HTTP_SESSIONS)."""

    def __init__(self) -> None:
        self.process = TravelDesk()
        self._by_session: OrderedDict[str, TravelDesk] = OrderedDict()

    def of(self, ctx: Context | None) -> TravelDesk:
        session_id = None
        try:
            headers = ctx.headers if ctx is not None else None
            session_id = headers.get("mcp-session-id") if headers else None
        except (AttributeError, LookupError, ValueError):  # no request context (called in-process)
            session_id = None
        if not session_id:
            return self.process
        desk = self._by_session.get(session_id)
        if desk is None:
            desk = self._by_session[session_id] = TravelDesk()
            while len(self._by_session) > MAX_HTTP_SESSIONS:
                self._by_session.popitem(last=False)
        self._by_session.move_to_end(session_id)
        return desk


def _run(desks: Desks, ctx: Context | None, tool: str, log_args: dict[str, Any], action) -> dict[str, Any]:
    desk = desks.of(ctx)
    try:
        result = action(desk)
    except DeskError as exc:
        raise ToolError(str(exc)) from None
    desk.log(tool, log_args)
    return result


def build_server() -> MCPServer:
    """A new travel desk server with its own desks (tests and benchmarks make one per episode)."""
    mcp = MCPServer(NAME, log_level="WARNING", instructions="A travel desk: search and book flights and hotels, look up and cancel "
                                       "bookings, check the weather. Dates are YYYY-MM-DD; cities by name.")
    desks = Desks()

    @mcp.tool()
    def search_flights(origin: str, destination: str, date: str, ctx: Context) -> dict[str, Any]:
        """Search flights from one city to another on a travel date (YYYY-MM-DD), before you book:
        lists each flight's flight_id, times and price, so you can pick the cheapest or earliest."""
        def act(_desk: TravelDesk) -> dict[str, Any]:
            found = data.flights(origin, destination, date)
            return {"flights": found, "count": len(found)}
        return _run(desks, ctx, "search_flights", _norm(origin=origin, destination=destination, date=date), act)

    @mcp.tool()
    def book_flight(flight_id: str, passenger: str, ctx: Context) -> dict[str, Any]:
        """Book a seat for a passenger (full name) on one flight_id; returns the booking_id and fare."""
        return _run(desks, ctx, "book_flight", {"flight_id": flight_id, "passenger": passenger},
                    lambda desk: desk.book_flight(flight_id, passenger))

    @mcp.tool()
    def search_hotels(city: str, date: str, ctx: Context) -> dict[str, Any]:
        """Search hotels in a city for a check-in date (YYYY-MM-DD), before you book: lists each
        hotel's hotel_id, rating and price per night, so you can pick the cheapest or best-rated."""
        def act(_desk: TravelDesk) -> dict[str, Any]:
            found = data.hotels(city, date)
            return {"hotels": found, "count": len(found)}
        return _run(desks, ctx, "search_hotels", _norm(city=city, date=date), act)

    @mcp.tool()
    def book_hotel(hotel_id: str, guest: str, nights: int, ctx: Context, date: str | None = None) -> dict[str, Any]:
        """Book a room for a guest (full name) for some nights at one hotel_id, from an optional
        check-in date; returns the booking_id and total."""
        return _run(desks, ctx, "book_hotel", {"hotel_id": hotel_id, "guest": guest, "nights": nights},
                    lambda desk: desk.book_hotel(hotel_id, guest, nights, date))

    @mcp.tool()
    def get_booking(booking_id: str, ctx: Context) -> dict[str, Any]:
        """Look up a booking by booking_id (e.g. BK-1001) and show its details: traveller, destination,
        dates, price and status."""
        return _run(desks, ctx, "get_booking", {"booking_id": booking_id}, lambda desk: desk.get_booking(booking_id))

    @mcp.tool()
    def cancel_booking(booking_id: str, ctx: Context) -> dict[str, Any]:
        """Cancel a booking_id; the booking's status becomes cancelled."""
        return _run(desks, ctx, "cancel_booking", {"booking_id": booking_id},
                    lambda desk: desk.cancel_booking(booking_id))

    @mcp.tool()
    def get_weather(city: str, date: str, ctx: Context) -> dict[str, Any]:
        """Get the weather forecast for a city on a date (YYYY-MM-DD): forecast, high and low in Celsius."""
        return _run(desks, ctx, "get_weather", _norm(city=city, date=date), lambda _desk: data.weather(city, date))

    @mcp.tool(name=CHECK_TOOL)
    def check_state(ctx: Context, bookings: list[dict[str, Any]] | None = None,
                    calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Judge an episode (for the evaluator, hidden from the model). `bookings`: the bookings that should
        exist (fields to match, e.g. {"type": "flight", "flight_id": ..., "passenger": ...}); any other booking
        made or changed fails. `calls`: tool calls that must have succeeded ({"tool", "arguments" subset}).
        Returns {"passed": bool, "reason": str}."""
        return desks.of(ctx).check_state(bookings, calls)

    return mcp


def _norm(**args: Any) -> dict[str, Any]:
    """The log keeps cities as codes and dates as ISO text, so checks need not guess spellings."""
    out = dict(args)
    for key in ("origin", "destination", "city"):
        if key in out:
            out[key] = data.city_code(out[key]) if _is_city(out[key]) else out[key]
    return out


def _is_city(value: Any) -> bool:
    try:
        data.city_code(value)
        return True
    except DeskError:
        return False


def tool_schemas(server: MCPServer, *, hide: tuple[str, ...] = (CHECK_TOOL,)) -> list[dict[str, Any]]:
    """The server's tools as OpenAI function tools (what a model is shown), without the judge."""
    import anyio

    async def listed() -> list[Any]:
        return await server.list_tools()

    return [openai_tool(t) for t in anyio.run(listed) if t.name not in hide]


def openai_tool(tool: Any) -> dict[str, Any]:
    """An MCP tool (name, description, input schema) as an OpenAI chat-completions tool."""
    schema = dict(getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {})
    schema.pop("title", None)
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return {"type": "function", "function": {"name": tool.name, "description": " ".join((tool.description or "").split()),
                                             "parameters": schema}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cascade_studio.sandbox.travel_desk", description=__doc__.split("\n")[0])
    parser.add_argument("--http", action="store_true", help="serve Streamable HTTP on 127.0.0.1 (path /mcp)")
    parser.add_argument("--port", type=int, default=8931, help="HTTP port (default 8931)")
    parser.add_argument("--list-tools", action="store_true", help="print the tools as OpenAI schemas (JSON) and exit")
    args = parser.parse_args(argv)
    server = build_server()
    if args.list_tools:
        print(json.dumps(tool_schemas(server, hide=()), indent=2))
    elif args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.port, streamable_http_path="/mcp")
    else:
        server.run()


if __name__ == "__main__":
    main()
