"""The travel desk's world: a deterministic catalogue (flights, hotels, weather) and one desk's
bookings, with the state check that judges an episode.

Pure Python, no MCP: `travel_desk` serves a `TravelDesk` per session over MCP, and tests and
benchmarks can drive one directly. Every value is derived from SHA-256 of its key, so the same
question gets the same answer in every run, on every machine. A caller's mistake (unknown city,
flight or booking, a malformed date) raises `DeskError`, which the server turns into an MCP
tool error (isError) with the same message.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import random
from typing import Any

CITIES = {
    "LIS": "Lisbon", "MAD": "Madrid", "PAR": "Paris", "ROM": "Rome",
    "BER": "Berlin", "LON": "London", "AMS": "Amsterdam", "VIE": "Vienna",
}
_AIRLINES = ["Atlantic Air", "Iberia Blue", "Euro Wings", "Sky Lusa", "Alpine Jet"]
_HOTEL_NAMES = ["Grand Central", "Riverside Inn", "Old Town Suites", "Park Lodge", "Harbour View"]
_FORECASTS = ["sunny", "partly cloudy", "cloudy", "light rain", "showers", "windy"]

#: Bookings every desk starts with (so tasks can look up or cancel an existing trip).
SEEDED_BOOKINGS = [
    {"booking_id": "BK-0901", "type": "flight", "flight_id": "FL-MADROM-250610-B", "passenger": "Maria Lopez",
     "origin": "MAD", "destination": "ROM", "date": "2025-06-10", "status": "active"},
    {"booking_id": "BK-0902", "type": "hotel", "hotel_id": "HT-BER-3", "guest": "Jonas Weber",
     "city": "BER", "date": "2025-07-02", "nights": 2, "status": "active"},
    {"booking_id": "BK-0903", "type": "flight", "flight_id": "FL-LONAMS-250715-A", "passenger": "Emma Clarke",
     "origin": "LON", "destination": "AMS", "date": "2025-07-15", "status": "active"},
]


class DeskError(ValueError):
    """A request the desk refuses; the message says what was wrong and how to fix it."""


def _rng(*key: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def city_code(city: str) -> str:
    """'Paris', 'paris' or 'PAR' -> 'PAR'."""
    text = str(city or "").strip()
    if text.upper() in CITIES:
        return text.upper()
    for code, name in CITIES.items():
        if name.lower() == text.lower():
            return code
    raise DeskError(f"Unknown city {city!r}. Known cities: {', '.join(CITIES.values())}.")


def parse_date(date: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(date).strip())
    except ValueError:
        raise DeskError(f"Invalid date {date!r}: use YYYY-MM-DD, e.g. 2025-06-12.") from None


def flights(origin: str, destination: str, date: str) -> list[dict[str, Any]]:
    """The flights between two cities on a date: 4 flights, distinct prices and departure times."""
    o, d, day = city_code(origin), city_code(destination), parse_date(date)
    if o == d:
        raise DeskError("Origin and destination are the same city.")
    rng = _rng("flights", o, d, day.isoformat())
    hours = sorted(rng.sample(range(6, 22), 4))
    prices = rng.sample(range(59, 420, 7), 4)
    out = []
    for k, (hour, price) in enumerate(zip(hours, prices, strict=True)):
        minute = rng.choice([0, 10, 25, 40, 55])
        duration = 90 + rng.randrange(0, 150, 5)
        arrive = dt.datetime.combine(day, dt.time(hour, minute)) + dt.timedelta(minutes=duration)
        out.append({
            "flight_id": f"FL-{o}{d}-{day:%y%m%d}-{'ABCD'[k]}", "airline": rng.choice(_AIRLINES),
            "origin": o, "destination": d, "date": day.isoformat(), "depart": f"{hour:02d}:{minute:02d}",
            "arrive": f"{arrive:%H:%M}", "price": price, "currency": "EUR",
        })
    return out


def clean_id(value: str) -> str:
    """'bk-0901.' -> 'BK-0901' (ids are forgiven their case and trailing punctuation)."""
    return str(value).strip().strip(".,;:!?\"'").upper()


def flight_by_id(flight_id: str) -> dict[str, Any]:
    parts = clean_id(flight_id).split("-")
    try:
        _, route, day, _letter = parts
        date = dt.datetime.strptime(day, "%y%m%d").date().isoformat()
        found = [f for f in flights(route[:3], route[3:], date) if f["flight_id"] == clean_id(flight_id)]
    except (ValueError, DeskError):
        found = []
    if not found:
        raise DeskError(f"Unknown flight id {flight_id!r}. Use a flight_id returned by search_flights.")
    return found[0]


def hotels(city: str, date: str) -> list[dict[str, Any]]:
    """The hotels of a city with a room on a date: 4 hotels, distinct ratings and prices."""
    code, day = city_code(city), parse_date(date)
    rng = _rng("hotels", code)
    picks = rng.sample(range(len(_HOTEL_NAMES)), 4)
    ratings = rng.sample([3.6, 3.9, 4.1, 4.3, 4.5, 4.7, 4.8], 4)
    prices = rng.sample(range(70, 260, 9), 4)
    season = 1.15 if day.month in (7, 8) else 1.0
    return [{"hotel_id": f"HT-{code}-{k + 1}", "name": f"{_HOTEL_NAMES[p]} {CITIES[code]}", "city": code,
             "date": day.isoformat(), "rating": rating, "price_per_night": int(price * season), "currency": "EUR"}
            for k, (p, rating, price) in enumerate(zip(picks, ratings, prices, strict=True))]


def hotel_by_id(hotel_id: str, date: str) -> dict[str, Any]:
    parts = clean_id(hotel_id).split("-")
    if len(parts) == 3 and parts[0] == "HT" and parts[1] in CITIES:
        found = [h for h in hotels(parts[1], date) if h["hotel_id"] == "-".join(parts)]
        if found:
            return found[0]
    raise DeskError(f"Unknown hotel id {hotel_id!r}. Use a hotel_id returned by search_hotels.")


def weather(city: str, date: str) -> dict[str, Any]:
    code, day = city_code(city), parse_date(date)
    rng = _rng("weather", code, day.isoformat())
    high = 14 + rng.randrange(0, 17) + (6 if day.month in (6, 7, 8) else 0)
    return {"city": CITIES[code], "date": day.isoformat(), "forecast": rng.choice(_FORECASTS),
            "high_c": high, "low_c": high - 6 - rng.randrange(0, 5)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.split()).lower() == " ".join(b.split()).lower()
    return a == b


def _priced(seeded: dict[str, Any]) -> dict[str, Any]:
    """A seeded booking with its catalogue details (departure, price), as if booked through the desk."""
    booking = copy.deepcopy(seeded)
    if booking["type"] == "flight":
        f = flight_by_id(booking["flight_id"])
        booking.update(depart=f["depart"], price=f["price"], currency="EUR")
    else:
        h = hotel_by_id(booking["hotel_id"], booking["date"])
        booking.update(hotel=h["name"], price=h["price_per_night"] * booking["nights"], currency="EUR")
    return {k: booking[k] for k in sorted(booking, key=lambda k: k == "status")}


class TravelDesk:
    """One session's desk: the seeded bookings plus those made in the session, and a log of the
    calls that succeeded (what `check_state`'s `calls` looks at)."""

    def __init__(self) -> None:
        self.bookings: dict[str, dict[str, Any]] = {b["booking_id"]: _priced(b) for b in SEEDED_BOOKINGS}
        self.calls: list[dict[str, Any]] = []
        self._next = 1001

    def log(self, tool: str, arguments: dict[str, Any]) -> None:
        self.calls.append({"tool": tool, "arguments": arguments})

    def _new_id(self) -> str:
        booking_id = f"BK-{self._next}"
        self._next += 1
        return booking_id

    def book_flight(self, flight_id: str, passenger: str) -> dict[str, Any]:
        if not str(passenger or "").strip():
            raise DeskError("passenger is empty: give the traveller's full name.")
        f = flight_by_id(flight_id)
        booking = {"booking_id": self._new_id(), "type": "flight", "flight_id": f["flight_id"],
                   "passenger": passenger.strip(), "origin": f["origin"], "destination": f["destination"],
                   "date": f["date"], "depart": f["depart"], "price": f["price"], "currency": "EUR", "status": "active"}
        self.bookings[booking["booking_id"]] = booking
        return dict(booking)

    def book_hotel(self, hotel_id: str, guest: str, nights: int, date: str | None = None) -> dict[str, Any]:
        if not str(guest or "").strip():
            raise DeskError("guest is empty: give the guest's full name.")
        if not isinstance(nights, int) or not 1 <= nights <= 30:
            raise DeskError(f"nights must be a whole number from 1 to 30, not {nights!r}.")
        h = hotel_by_id(hotel_id, date or "2025-06-01")
        booking = {"booking_id": self._new_id(), "type": "hotel", "hotel_id": h["hotel_id"], "hotel": h["name"],
                   "guest": guest.strip(), "city": h["city"], "date": parse_date(date).isoformat() if date else None,
                   "nights": nights, "price": h["price_per_night"] * nights, "currency": "EUR", "status": "active"}
        self.bookings[booking["booking_id"]] = booking
        return dict(booking)

    def get_booking(self, booking_id: str) -> dict[str, Any]:
        key = clean_id(booking_id)
        if key not in self.bookings:
            raise DeskError(f"No booking {booking_id!r}. Booking ids look like BK-1001.")
        return dict(self.bookings[key])

    def cancel_booking(self, booking_id: str) -> dict[str, Any]:
        booking = self.bookings.get(clean_id(booking_id))
        if booking is None:
            raise DeskError(f"No booking {booking_id!r}. Booking ids look like BK-1001.")
        if booking["status"] == "cancelled":
            raise DeskError(f"Booking {booking['booking_id']} is already cancelled.")
        booking["status"] = "cancelled"
        return dict(booking)

    def check_state(self, bookings: list[dict[str, Any]] | None = None,
                    calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Judge the session: every expected booking matches a distinct booking (the fields given);
        no other booking was made or changed; every expected call (tool + argument subset) was made
        and succeeded. Returns {"passed": bool, "reason": str}."""
        expected = list(bookings or [])
        unmatched = dict(self.bookings)
        for want in expected:
            hit = next((bid for bid, b in unmatched.items()
                        if all(_same(b.get(k), v) for k, v in want.items())), None)
            if hit is None:
                return {"passed": False, "reason": f"no booking matches {want}"}
            del unmatched[hit]
        seeded = {b["booking_id"]: b for b in SEEDED_BOOKINGS}
        for bid, b in unmatched.items():
            if bid not in seeded:
                return {"passed": False, "reason": f"unexpected booking {bid} ({b['type']}, {b['status']})"}
            if b["status"] != seeded[bid]["status"]:
                return {"passed": False, "reason": f"booking {bid} was changed to {b['status']}"}
        for want in calls or []:
            args = want.get("arguments") or {}
            if not any(c["tool"] == want.get("tool") and all(_same(c["arguments"].get(k), v) for k, v in args.items())
                       for c in self.calls):
                return {"passed": False, "reason": f"no successful call {want.get('tool')}({args})"}
        return {"passed": True, "reason": "state matches"}
