"""Writes the travel desk's demo tasks (cascade_studio/resources/demo/travel_desk_tasks.jsonl).

Each task's expected state is computed from the desk's own deterministic catalogue (the cheapest
flight, the best-rated hotel, ...), so the file and the server cannot drift apart; the test
`tests/sandbox/test_travel_desk_tasks.py` checks that the committed file equals this output.

    python bench/travel_desk_tasks.py          # rewrite the file
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cascade_studio.sandbox import travel_data as data

OUT = Path(__file__).resolve().parents[1] / "cascade_studio" / "resources" / "demo" / "travel_desk_tasks.jsonl"
ENVIRONMENT = "travel-desk"


def _flight(origin: str, destination: str, date: str, pick: str) -> str:
    found = data.flights(origin, destination, date)
    key = {"cheapest": lambda f: f["price"], "earliest": lambda f: f["depart"],
           "most expensive": lambda f: -f["price"]}[pick]
    return min(found, key=key)["flight_id"]


def _hotel(city: str, date: str, pick: str) -> str:
    found = data.hotels(city, date)
    key = {"cheapest": lambda h: h["price_per_night"], "best-rated": lambda h: -h["rating"]}[pick]
    return min(found, key=key)["hotel_id"]


def fl(passenger: str, origin: str, destination: str, date: str, pick: str) -> dict[str, Any]:
    return {"type": "flight", "flight_id": _flight(origin, destination, date, pick), "passenger": passenger,
            "status": "active"}


def ht(guest: str, city: str, date: str, pick: str, nights: int) -> dict[str, Any]:
    return {"type": "hotel", "hotel_id": _hotel(city, date, pick), "guest": guest, "nights": nights, "status": "active"}


def cancelled(booking_id: str) -> dict[str, Any]:
    return {"booking_id": booking_id, "status": "cancelled"}


def weather_call(city: str, date: str) -> dict[str, Any]:
    return {"tool": "get_weather", "arguments": {"city": data.city_code(city), "date": date}}


def tasks() -> list[dict[str, Any]]:
    """(id suffix, category, request, max_steps, expected bookings, expected calls, final answer)."""
    d1, d2, d3 = "2025-06-12", "2025-06-20", "2025-09-03"
    specs = [
        ("flights", "Search flights from Lisbon to Paris for travel date 2025-06-12, then book the cheapest "
         "flight for Ana Silva.", 4, [fl("Ana Silva", "LIS", "PAR", d1, "cheapest")], [], "BK-1001"),
        ("flights", "Find flights from Madrid to London for travel date 2025-06-20, then book the earliest "
         "flight for Tom Baker.", 4, [fl("Tom Baker", "MAD", "LON", d2, "earliest")], [], "BK-1001"),
        ("flights", "Search flights from Berlin to Vienna for travel date 2025-09-03, then book the most expensive "
         "flight for Clara Neumann, then look up the new booking.", 5,
         [fl("Clara Neumann", "BER", "VIE", d3, "most expensive")], [], "BK-1001"),
        ("flights", "Cancel booking BK-0901. Then search flights from Madrid to Rome for travel date 2025-06-11, "
         "then book the cheapest flight for Maria Lopez.", 6,
         [cancelled("BK-0901"), fl("Maria Lopez", "MAD", "ROM", "2025-06-11", "cheapest")], [], "BK-1001"),
        ("hotels", "Search hotels in Paris for check-in date 2025-06-12, then book the best-rated hotel "
         "for Ana Silva for 3 nights.", 4, [ht("Ana Silva", "PAR", d1, "best-rated", 3)], [], "BK-1001"),
        ("hotels", "Search hotels in Rome for check-in date 2025-08-05, then book the cheapest hotel for "
         "Luca Bianchi for 2 nights.", 4, [ht("Luca Bianchi", "ROM", "2025-08-05", "cheapest", 2)], [], "BK-1001"),
        ("hotels", "Look up booking BK-0902, then cancel the booking.", 4, [cancelled("BK-0902")], [], "cancelled"),
        ("hotels", "Search hotels in Amsterdam for check-in date 2025-07-15, then book the best-rated hotel for "
         "Emma Clarke for 4 nights, then look up the new booking.", 5,
         [ht("Emma Clarke", "AMS", "2025-07-15", "best-rated", 4)], [], "BK-1001"),
        ("trips", "Search flights from Lisbon to Rome for travel date 2025-06-18, then book the cheapest flight "
         "for Ana Silva, then search hotels in Rome for that date, then book the cheapest hotel for Ana Silva "
         "for 2 nights.", 7, [fl("Ana Silva", "LIS", "ROM", "2025-06-18", "cheapest"),
                              ht("Ana Silva", "ROM", "2025-06-18", "cheapest", 2)], [], "BK-1002"),
        ("trips", "Search flights from Paris to Berlin for travel date 2025-07-02, then book the earliest flight "
         "for Pierre Martin, then search hotels in Berlin for that date, then book the top-rated hotel for "
         "Pierre Martin for 3 nights.", 7, [fl("Pierre Martin", "PAR", "BER", "2025-07-02", "earliest"),
                                            ht("Pierre Martin", "BER", "2025-07-02", "best-rated", 3)], [], "BK-1002"),
        ("trips", "Check the weather in Vienna for date 2025-07-20. Then search flights from London to Vienna "
         "for travel date 2025-07-20, then book the earliest flight for Oliver Smith.", 6,
         [fl("Oliver Smith", "LON", "VIE", "2025-07-20", "earliest")], [weather_call("Vienna", "2025-07-20")],
         "BK-1001"),
        ("trips", "Cancel booking BK-0903. Then search flights from London to Amsterdam for travel date 2025-07-16, "
         "then book the cheapest flight for Emma Clarke. After that, search hotels in Amsterdam for check-in date "
         "2025-07-16, then book the best-rated hotel for Emma Clarke for 2 nights.", 8,
         [cancelled("BK-0903"), fl("Emma Clarke", "LON", "AMS", "2025-07-16", "cheapest"),
          ht("Emma Clarke", "AMS", "2025-07-16", "best-rated", 2)], [], "BK-1002"),
        ("info", "Look up booking BK-0901, then get the weather forecast for its destination city on that date.",
         4, [], [weather_call("ROM", "2025-06-10")], data.weather("ROM", "2025-06-10")["forecast"]),
        ("info", "Get the weather in Madrid for date 2025-06-20. Also search hotels in Madrid for check-in date "
         "2025-06-20, then book the best-rated hotel for Sofia Garcia for 2 nights.", 5,
         [ht("Sofia Garcia", "MAD", d2, "best-rated", 2)], [weather_call("Madrid", d2)], "BK-1001"),
        ("info", "Search flights from Rome to Paris for travel date 2025-10-02, and tell me the cheapest fare.", 3,
         [], [{"tool": "search_flights", "arguments": {"origin": "ROM", "destination": "PAR", "date": "2025-10-02"}}],
         _flight("ROM", "PAR", "2025-10-02", "cheapest")),
        ("errors", "Book flight FL-LISMAD-250612-Z for Ana Silva and tell me the fare.", 4, [], [],
         "could not"),
    ]
    out = []
    for n, (category, text, max_steps, bookings, calls, answer) in enumerate(specs, 1):
        arguments: dict[str, Any] = {"bookings": bookings}
        if calls:
            arguments["calls"] = calls
        out.append({"id": f"travel-{n:03d}", "category": f"travel-{category}", "messages": [{"role": "user", "content": text}],
                    "tools": [], "environment": ENVIRONMENT, "max_steps": max_steps,
                    "expected": {"final_answer": answer, "check": {"tool": "check_state", "arguments": arguments}}})
    return out + conversations()


def conversations() -> list[dict[str, Any]]:
    """Conversational tasks (issue 29): the user, played by a user simulator (the sandbox in the demo),
    says the instruction's lines one a turn after the opening, then its stop marker."""
    flight = _flight("LIS", "PAR", "2025-06-12", "cheapest")
    return [
        {"id": "travel-chat-001", "category": "travel-chat",
         "messages": [{"role": "user", "content": "Search flights from Lisbon to Paris for travel date 2025-06-12."}],
         "tools": [], "environment": ENVIRONMENT, "max_steps": 8,
         "user": {"instruction": f"Book flight {flight} for Ana Silva.", "stop": "###STOP###"},
         "expected": {"final_answer": "BK-1001", "check": {"tool": "check_state", "arguments": {
             "bookings": [fl("Ana Silva", "LIS", "PAR", "2025-06-12", "cheapest")]}}}},
        {"id": "travel-chat-002", "category": "travel-chat",
         "messages": [{"role": "user", "content": "Get the weather in Madrid for date 2025-06-20"}],
         "tools": [], "environment": ENVIRONMENT, "max_steps": 8,
         "user": {"instruction": "Search hotels in Madrid for check-in date 2025-06-20\nLook up booking BK-0901",
                  "stop": "###STOP###"},
         "expected": {"check": {"tool": "check_state", "arguments": {
             "bookings": [], "calls": [weather_call("Madrid", "2025-06-20")]}}}},
    ]


def render() -> str:
    return "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks())


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {len(tasks())} tasks to {OUT}")
