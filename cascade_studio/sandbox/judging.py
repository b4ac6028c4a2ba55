"""The sandbox's judge models: verdicts that follow the simulated truth, wrong at a set rate.

A judge request is an ordinary chat completion to a model named `judge-sim` (error rate from the
sandbox's config) or `judge-sim-NN` (NN% wrong, e.g. `judge-sim-20`). The prompt carries the
inputs between markers the app's templates write (`<<<CANDIDATE>>>`, `<<<REFERENCE>>>`,
`<<<EPISODE>>>`, ...); the truth is computed from them:

- an answer against a reference: equivalent when the reference's key tokens (ids, numbers, names)
  all appear in the candidate and most of its content words do;
- two answers (pairwise): the one closer to the reference, else the longer one that contains the
  other's key tokens; a tie when both are equivalent;
- an episode: its successful calls replayed on a fresh travel desk must reach the state an ideal
  agent reaches on the same request (the travel desk's own state check, with the ideal agent's
  bookings as the expected ones).

With probability `error_rate` (decided by a hash of the prompt, so the same request gets the same
verdict) the verdict is flipped (pass <-> fail, A <-> B, a score moved one step). Answers are JSON
when the request asks for `response_format: json_schema`, else a line "VERDICT: ..." with a reason.
"""

from __future__ import annotations

import functools
import json
import random
import re
from typing import Any

from cascade_studio.sandbox import episode_policy as policy
from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox import travel_data as data

JUDGE_PREFIX = "judge-sim"
_MARK = re.compile(r"<<<([A-Z_]+)>>>\n?(.*?)\n?<<<END>>>", re.S)
_KEY = re.compile(r"\b[A-Z]{2}-[A-Z0-9]+(?:-[A-Z0-9]+)*\b|\b\d+(?:\.\d+)?\b|\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")


BABBLE = JUDGE_PREFIX + "-babble"  # a judge whose answers name no verdict (tests: unparseable is never a pass)


def is_judge_model(model: str) -> bool:
    return model == BABBLE or judge_error_rate(model, 0.0) is not None


def judge_error_rate(model: str, default: float) -> float | None:
    """The error rate a judge model name asks for (judge-sim-20: 0.2), the default for judge-sim,
    None for other names."""
    if model == JUDGE_PREFIX:
        return default
    m = re.fullmatch(re.escape(JUDGE_PREFIX) + r"-(\d{1,3})", model)
    if m and int(m.group(1)) <= 100:
        return int(m.group(1)) / 100
    return None


def sections(prompt: str) -> dict[str, str]:
    return {name: body for name, body in _MARK.findall(prompt)}


# -- truth for answers -----------------------------------------------------------------------------
def key_tokens(text: str) -> set[str]:
    return {t.lower() for t in _KEY.findall(text or "")}


def equivalent(candidate: str, reference: str) -> bool:
    """The sandbox's truth for "does this answer say what the reference says"."""
    cand, ref = candidate or "", reference or ""
    if " ".join(cand.lower().split()) == " ".join(ref.lower().split()):
        return True
    if not key_tokens(ref) <= key_tokens(cand):
        return False
    ref_words = sim.words(ref)
    if not ref_words:
        return bool(cand.strip()) == bool(ref.strip())
    first = sim.words(re.split(r"(?<=[.!?])\s", ref.strip(), maxsplit=1)[0])  # the point, not the padding
    return len(first & sim.words(cand)) >= 0.6 * max(len(first), 1)


def better(a: str, b: str, reference: str | None) -> str:
    """"A", "B" or "tie"."""
    if reference:
        ea, eb = equivalent(a, reference), equivalent(b, reference)
        if ea != eb:
            return "A" if ea else "B"
        if ea and eb:
            return "tie"
    ka, kb = key_tokens(a), key_tokens(b)
    if ka > kb:
        return "A"
    if kb > ka:
        return "B"
    return "tie"


# -- truth for episodes ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _desk_tools() -> tuple[dict[str, Any], ...]:
    from concurrent.futures import ThreadPoolExecutor

    from cascade_studio.sandbox.travel_desk import build_server, tool_schemas

    with ThreadPoolExecutor(1) as pool:  # listing the MCP server's tools runs its own event loop
        return tuple(pool.submit(lambda: tool_schemas(build_server())).result())


def _run_tool(desk: data.TravelDesk, name: str, args: dict[str, Any]) -> tuple[Any, bool]:
    """(result, succeeded) of one travel desk call on `desk`, logged as the MCP server logs it."""
    from cascade_studio.sandbox.travel_desk import _norm

    try:
        if name == "search_flights":
            found = data.flights(args.get("origin"), args.get("destination"), args.get("date"))
            result: Any = {"flights": found, "count": len(found)}
            logged = _norm(origin=args.get("origin"), destination=args.get("destination"), date=args.get("date"))
        elif name == "search_hotels":
            found = data.hotels(args.get("city"), args.get("date"))
            result, logged = {"hotels": found, "count": len(found)}, _norm(city=args.get("city"), date=args.get("date"))
        elif name == "book_flight":
            result = desk.book_flight(args.get("flight_id"), args.get("passenger"))
            logged = {"flight_id": args.get("flight_id"), "passenger": args.get("passenger")}
        elif name == "book_hotel":
            result = desk.book_hotel(args.get("hotel_id"), args.get("guest"), args.get("nights"), args.get("date"))
            logged = {"hotel_id": args.get("hotel_id"), "guest": args.get("guest"), "nights": args.get("nights")}
        elif name == "get_booking":
            result, logged = desk.get_booking(args.get("booking_id")), {"booking_id": args.get("booking_id")}
        elif name == "cancel_booking":
            result, logged = desk.cancel_booking(args.get("booking_id")), {"booking_id": args.get("booking_id")}
        elif name == "get_weather":
            result = data.weather(args.get("city"), args.get("date"))
            logged = _norm(city=args.get("city"), date=args.get("date"))
        else:
            return f"Error: unknown tool {name}", False
    except (data.DeskError, TypeError, AttributeError, ValueError) as exc:
        return f"Error executing tool {name}: {exc}", False
    desk.log(name, logged)
    return result, True


def ideal_desk(request: str, max_steps: int = 12) -> data.TravelDesk:
    """The desk after an agent that makes no mistakes has acted on `request`."""
    tools = [dict(t) for t in _desk_tools()]
    desk = data.TravelDesk()
    messages: list[dict[str, Any]] = [{"role": "user", "content": request}]
    perfect = sim.Profile(1.0, 1.0, 0, 0, 1, False)
    for step in range(max_steps):
        gen = policy.next_action({"messages": messages, "tools": tools}, perfect, random.Random(step))
        if not gen.tool_calls:
            break
        messages.append({"role": "assistant", "content": None, "tool_calls": gen.tool_calls})
        for call in gen.tool_calls:
            args = json.loads(call["function"]["arguments"] or "{}")
            result, _ = _run_tool(desk, call["function"]["name"], args)
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": result if isinstance(result, str) else json.dumps(result)})
    return desk


def expected_state(desk: data.TravelDesk) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What `check_state` should find after the ideal run: its bookings and weather calls."""
    seeded = {b["booking_id"]: b for b in data.SEEDED_BOOKINGS}
    bookings = []
    for bid, b in desk.bookings.items():
        if bid in seeded:
            if b["status"] != seeded[bid]["status"]:
                bookings.append({"booking_id": bid, "status": b["status"]})
        elif b["type"] == "flight":
            bookings.append({k: b[k] for k in ("type", "flight_id", "passenger", "status")})
        else:
            bookings.append({k: b[k] for k in ("type", "hotel_id", "guest", "nights", "status")})
    calls = [c for c in desk.calls if c["tool"] == "get_weather"]
    return bookings, calls


def episode_achieved(request: str, calls: list[tuple[str, dict[str, Any]]]) -> bool:
    """The sandbox's truth for "did the agent achieve the user's goal": the episode's calls, replayed
    on a fresh desk, pass the state check whose expectations an ideal agent's run sets."""
    bookings, weather = json.loads(_ideal_expectations(request))
    desk = data.TravelDesk()
    for name, args in calls:
        _run_tool(desk, name, args if isinstance(args, dict) else {})
    return bool(desk.check_state(bookings, weather)["passed"])


@functools.lru_cache(maxsize=512)
def _ideal_expectations(request: str) -> str:
    """expected_state of the ideal run on `request`, as JSON (cached: a judge asks about the same
    request for every tier, every template version and every error rate)."""
    return json.dumps(expected_state(ideal_desk(request)))


_CALL_LINE = re.compile(r"^CALL (\w+) (\{.*\})\s*$", re.M)


def episode_calls(transcript: str) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls in an episode transcript the app wrote (lines `CALL name {json args}`)."""
    out = []
    for name, args in _CALL_LINE.findall(transcript):
        try:
            parsed = json.loads(args)
        except ValueError:
            parsed = {}
        out.append((name, parsed if isinstance(parsed, dict) else {}))
    return out


# -- the answer ------------------------------------------------------------------------------------------
def _scale(text: str) -> list[str]:
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text or "")
    if m and int(m.group(1)) < int(m.group(2)) <= int(m.group(1)) + 20:
        return [str(v) for v in range(int(m.group(1)), int(m.group(2)) + 1)]
    return [v.strip() for v in (text or "").split(",") if v.strip()] or ["fail", "pass"]


def _kind(body: dict[str, Any], secs: dict[str, str]) -> str:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict):
        name = str(fmt["json_schema"].get("name") or "")
        if name.startswith("judge_"):
            return name.removeprefix("judge_")
    if "ANSWER_A" in secs:
        return "pairwise"
    if "SCALE" in secs or "EPISODE" in secs:
        return "rubric"
    return "reference"


def truth(kind: str, secs: dict[str, str]) -> tuple[str, str]:
    """(the true verdict, why) for a judge request's inputs."""
    reference = secs.get("REFERENCE")
    if kind == "pairwise":
        v = better(secs.get("ANSWER_A", ""), secs.get("ANSWER_B", ""), reference)
        return v, {"A": "Answer A is more correct and complete.", "B": "Answer B is more correct and complete.",
                   "tie": "Neither answer is better."}[v]
    if kind == "rubric":
        scale = _scale(secs.get("SCALE", ""))
        if "EPISODE" in secs:
            ok = episode_achieved(secs.get("QUESTION", ""), episode_calls(secs["EPISODE"]))
            why = "The agent reached the state the request asks for." if ok else \
                "The agent did not reach the state the request asks for."
        else:
            candidate = secs.get("CANDIDATE", "")
            ok = equivalent(candidate, reference) if reference else bool(candidate.strip())
            why = "The answer does what was asked." if ok else "The answer misses what was asked."
        return (scale[-1] if ok else scale[0]), why
    ok = equivalent(secs.get("CANDIDATE", ""), reference or "")
    return ("pass", "The candidate states the reference's facts.") if ok else \
        ("fail", "The candidate misses or contradicts a fact of the reference.")


def _wrong(kind: str, verdict: str, scale: list[str]) -> str:
    if kind == "pairwise":
        return {"A": "B", "B": "A", "tie": "A"}[verdict]
    if kind == "rubric":
        return scale[0] if verdict == scale[-1] else scale[-1]
    return "fail" if verdict == "pass" else "pass"


def judge_answer(body: dict[str, Any], *, seed: int, default_error_rate: float) -> str:
    """The content of a judge model's reply to a chat request."""
    model = body["model"]
    prompt = sim._last_user_text(body.get("messages") or [])
    if model == BABBLE:
        return "Both answers have merits; it depends on what the user values most."
    secs = sections(prompt)
    kind = _kind(body, secs)
    verdict, why = truth(kind, secs)
    rate = judge_error_rate(model, default_error_rate) or 0.0
    if sim.rng_for(seed, "judge", prompt).random() < rate:
        verdict, why = _wrong(kind, verdict, _scale(secs.get("SCALE", ""))), "On balance, " + why[0].lower() + why[1:]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return json.dumps({"verdict": verdict, "reason": why})
    return f"{why}\nVERDICT: {verdict}"
