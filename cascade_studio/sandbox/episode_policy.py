"""How a simulated model acts inside a multi-step agent episode (the conversation ends with tool
results): call the next tool, retry after an error, or answer.

Generic over tools: the user's request is split into steps (clauses: sentences, "then", ", and",
"after that"); each step gets its tool by the simulator's word matching; a successful call serves
the first unserved step whose tool it is. The next unserved step is acted on, with arguments read
from the step's words (ids, ISO dates, "from X to Y", "for Ana Silva", "3 nights", "in Paris") and
from earlier calls and results (a flight_id returned by search_flights: the cheapest, earliest,
best-rated or first one, as the step asks). When every step is served, or no tool fits, the model
answers with a summary of what the tools returned (ids, prices), so an expected answer can match.

Mistakes follow the model's skill as in single-step requests (wrong tool, wrong argument, the
wrong pick from a list), and each comes with low token probabilities. After a tool error a good
model retries with corrected arguments or says it failed; a weak one may repeat the same call.
Deterministic for (seed, model, request), like everything in the simulator.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from cascade_studio.sandbox import simulator as sim

_VERBS = "book|reserve|search|find|look|get|show|check|cancel|tell|give|list|send|create|update|delete"
_SPLIT = re.compile(r"(?<=[.?!;])\s+|,?\s+and then\s+|,?\s+after that,?\s+|,\s*then\s+|\s+then\s+|,\s+and\s+"
                    rf"|,?\s+and also\s+|\s+and\s+(?=(?:{_VERBS})\b)", re.IGNORECASE)
_ID = re.compile(r"\b[A-Z]{2}-[A-Z0-9]+(?:-[A-Z0-9]+)*\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_NAME = r"([A-Z][a-z]+(?:\s+[A-Z][a-z]+)+)"
_PLACE = r"([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)"
_PERSON_PARAMS = ("passenger", "guest", "traveler", "traveller", "customer", "person", "name")
_PLACE_PARAMS = ("city", "location", "place", "destination", "origin")
_SYNONYMS = {"city": ("city", "destination", "location"), "location": ("location", "city", "destination"),
             "guest": ("guest", "passenger", "name"), "passenger": ("passenger", "guest", "name")}
_SELECTORS = [  # (words in the step, record key fragment, pick smallest?)
    (r"cheapest|lowest price|least expensive|lowest fare", "price", True),
    (r"most expensive|priciest", "price", False),
    (r"earliest|first departure", "depart", True),
    (r"latest departure|last flight|latest", "depart", False),
    (r"best[- ]rated|highest[- ]rated|top[- ]rated|best reviewed", "rating", False),
]
_ERROR_START = ("error", "unknown", "invalid", "no ", "not found", "failed", "cannot", "could not")
MAX_FAILURES = 3
_KEY_FIELDS = ("status", "price", "total", "forecast", "name", "error")


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]
    result: str = ""
    error: bool = False
    data: Any = None


@dataclass
class Turn:
    calls: list[Call] = field(default_factory=list)


def episode_clauses(text: str) -> list[str]:
    """The steps of a request, in order."""
    parts = [p.strip(" ,.;") for p in _SPLIT.split(text or "")]
    return [p for p in parts if p and len(p.split()) > 1] or [text]


def is_error(content: str) -> bool:
    text = content.strip().lower()
    if text.startswith(_ERROR_START):
        return True
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and "error" in value and len(value) <= 3


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def read_history(messages: list[dict[str, Any]]) -> list[Turn]:
    """The tool-call turns after the last user message, each call paired with its result."""
    start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1) + 1
    turns: list[Turn] = []
    by_id: dict[str, Call] = {}
    for m in messages[start:]:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            turn = Turn()
            for tc in m["tool_calls"]:
                fn = tc.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except (TypeError, ValueError):
                    args = {}
                call = Call(str(fn.get("name", "")), args if isinstance(args, dict) else {})
                turn.calls.append(call)
                by_id[str(tc.get("id"))] = call
            turns.append(turn)
        elif m.get("role") == "tool":
            call = by_id.get(str(m.get("tool_call_id")))
            if call is None and turns:  # no id: the first call of the last turn still waiting for a result
                call = next((c for c in turns[-1].calls if not c.result), None)
            if call is not None:
                call.result = _text(m.get("content"))
                call.error = is_error(call.result)
                try:
                    call.data = json.loads(call.result)
                except ValueError:
                    call.data = None
    return turns


# -- which step is next ---------------------------------------------------------------------
def _records(data: Any) -> list[dict[str, Any]]:
    """The records a result offers: the result itself and the dicts in its lists."""
    out: list[dict[str, Any]] = []
    if isinstance(data, dict):
        out.append(data)
        for value in data.values():
            if isinstance(value, list):
                out.extend(v for v in value if isinstance(v, dict))
    elif isinstance(data, list):
        out.extend(v for v in data if isinstance(v, dict))
    return out


def _known_keys(turns: list[Turn]) -> set[str]:
    return {k for t in turns for c in t.calls if not c.error for r in _records(c.data) for k in r}


def step_tool(clause: str, tools: list[dict[str, Any]], turns: list[Turn]) -> tuple[int | None, list[tuple[float, int]]]:
    """The tool that fits a step (None if none does) and the ranking it came from. A near tie
    ("book the cheapest one") goes to the tool whose ids earlier results can supply."""
    if not tools:
        return None, []
    ranked = sim.score_tools(clause, tools)
    best_score, best = ranked[0]
    if not (best_score >= sim.RELEVANCE and (sim._names_tool(clause, tools[best]) or best_score >= 1.0)):
        return None, ranked
    known = _known_keys(turns)

    def supplied(i: int) -> int:
        params = tools[i].get("function", tools[i]).get("parameters") or {}
        return sum(1 for p in params.get("required") or [] if p.endswith("_id") and p in known)

    def named(i: int) -> int:
        return len(sim.words(clause) & sim.words(sim._tool_name(tools[i]).replace("_", " ")))

    close = [i for s, i in ranked if s >= 0.8 * best_score]
    best = max(close, key=lambda i: (named(i), supplied(i), -close.index(i)))
    return best, ranked


def served_steps(clauses: list[str], tools: list[dict[str, Any]], turns: list[Turn]) -> tuple[list[int | None], list[bool]]:
    """Each step's tool, and whether a successful call has served it (first unserved step of that tool)."""
    step_tools = [step_tool(clause, tools, turns)[0] for clause in clauses]
    names = [sim._tool_name(tools[i]) if i is not None else None for i in step_tools]
    served = [name is None for name in names]
    for turn in turns:
        for call in turn.calls:
            if call.error or not call.result:
                continue
            k = next((k for k, name in enumerate(names) if name == call.name and not served[k]), None)
            if k is not None:
                served[k] = True
    return step_tools, served


# -- arguments ------------------------------------------------------------------------------
def _select(records: list[dict[str, Any]], text: str, rng: random.Random | None, skill: float) -> tuple[dict[str, Any], bool]:
    """The record the step asks for; with a weak model, sometimes another one (returned as wrong)."""
    lowered = text.lower()
    pick = records[0]
    for pattern, key_part, smallest in _SELECTORS:
        if re.search(pattern, lowered):
            key = next((k for k in records[0] if key_part in k), None)
            if key is not None:
                ordered = sorted(records, key=lambda r, k=key: (r.get(k) is None, r.get(k)), reverse=not smallest)
                pick = ordered[0]
            break
    if rng is not None and len(records) > 1 and rng.random() < (1 - skill) * 0.5:
        others = [r for r in records if r is not pick]
        return others[0], True
    return pick, False


def _from_history(name: str, turns: list[Turn]) -> Any:
    """The latest value of a parameter, by name or synonym, in earlier arguments or results."""
    for key in _SYNONYMS.get(name, (name,)):
        for turn in reversed(turns):
            for call in reversed(turn.calls):
                if call.error:
                    continue
                if key in call.arguments and call.arguments[key] not in (None, ""):
                    return call.arguments[key]
                first = _records(call.data)[:1]
                if first and first[0].get(key) not in (None, ""):
                    return first[0][key]
    return None


def _candidates(name: str, turns: list[Turn]) -> list[dict[str, Any]]:
    """The records of the latest successful result that offers a value for `name` (a list of
    search results offers several; a single booking offers one)."""
    for turn in reversed(turns):
        for call in reversed(turn.calls):
            records = [r for r in _records(call.data) if name in r] if not call.error else []
            if records:
                listed = records[1:] if len(records) > 1 and records[0] is call.data else records
                return listed
    return []


def _ids_in(text: str, name: str) -> str | None:
    ids = _ID.findall(text)
    if not ids:
        return None
    stem = name.removesuffix("_id").lower()
    anchor = text.lower().find(stem) if stem else -1
    if anchor >= 0:
        after = [m for m in _ID.finditer(text) if m.start() >= anchor]
        if after:
            return after[0].group()
    return ids[0]


def fill_arguments(clause: str, request: str, tool: dict[str, Any], turns: list[Turn],
                   rng: random.Random | None = None, skill: float = 1.0) -> tuple[dict[str, Any], set[str]]:
    """The arguments for one step, and the names of those a weak model picked wrongly."""
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = set(params.get("required") or [])
    base = sim.extract_arguments(clause, tool)
    args: dict[str, Any] = {}
    wrong: set[str] = set()
    for name, schema in props.items():
        kind = sim._json_type(schema if isinstance(schema, dict) else {})
        lowered = name.lower()
        value: Any = None
        if lowered.endswith("_id") or lowered == "id":
            value = _ids_in(clause, lowered)
            records = [] if value is not None else _candidates(name, turns)
            if records:
                record, mistaken = _select(records, clause, rng, skill)
                value = record[name]
                if mistaken:
                    wrong.add(name)
        elif "date" in lowered:
            found = _DATE.findall(clause)
            value = found[0] if found else _from_history(name, turns) or next(iter(_DATE.findall(request)), None)
        elif lowered in ("origin", "source", "from", "departure"):
            m = re.search(rf"\bfrom\s+{_PLACE}", clause) or re.search(rf"\bfrom\s+{_PLACE}", request)
            value = m.group(1) if m else None
        elif lowered in ("destination", "to", "arrival"):
            m = re.search(rf"\bto\s+{_PLACE}", clause) or re.search(rf"\bto\s+{_PLACE}", request)
            value = m.group(1) if m else None
        elif any(p in lowered for p in _PERSON_PARAMS) and kind == "string":
            m = re.search(rf"\bfor\s+{_NAME}", clause) or re.search(rf"\bfor\s+{_NAME}", request)
            value = m.group(1) if m else _from_history(lowered, turns)
        elif any(p in lowered for p in _PLACE_PARAMS) and kind == "string":
            m = re.search(rf"\b(?:in|at)\s+{_PLACE}", clause)
            value = m.group(1) if m else _from_history(lowered, turns)
        elif kind in ("integer", "number"):
            stem = sim._stem(lowered.rstrip("s"))
            m = re.search(rf"\b(\d+|{'|'.join(sim._WORD_NUMBERS)})\s+{re.escape(stem)}", clause.lower())
            if m:
                value = int(m.group(1)) if m.group(1).isdigit() else sim._WORD_NUMBERS[m.group(1)]
        if value is None:
            value = base.get(name)
        if value is None and name in required:
            value = _from_history(name, turns)
        if value is not None:
            args[name] = value
    if rng is not None and rng.random() < (1 - skill) * 0.7:
        args, key = sim._perturb(args, rng)
        if key:
            wrong.add(key)
    return args, wrong


# -- answers --------------------------------------------------------------------------------
def _describe(data: Any, text: str) -> str:
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        if lists:
            record, _ = _select(lists[0], text, None, 1.0)
            return f"{len(lists[0])} found; the one that fits best: {_describe(record, text)}"
        fields = [(k, v) for k, v in data.items() if isinstance(v, str | int | float | bool) and k != "currency"]
        fields.sort(key=lambda kv: 0 if kv[0].endswith("_id") else 1 if kv[0] in _KEY_FIELDS else 2)
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields[:10])
    return " ".join(str(data).split())[:200]


def summary_answer(turns: list[Turn], request: str) -> str:
    """What a model says when it is done: the last result in detail, earlier ids in brief."""
    done = [c for t in turns for c in t.calls if not c.error and c.result]
    if not done:
        last = next((c for t in reversed(turns) for c in t.calls), None)
        reason = " ".join(last.result.split())[:200] if last else "no tool result"
        return f"I could not complete the request: {reason}"
    last = done[-1]
    detail = _describe(last.data, request) if last.data is not None else " ".join(last.result.split())[:200]
    earlier = [f"{k.replace('_', ' ')} {v}" for c in done[:-1] if isinstance(c.data, dict)
               for k, v in c.data.items() if k.endswith("_id") and isinstance(v, str)]
    answer = f"Done. {last.name.replace('_', ' ')}: {detail}."
    if earlier:
        answer += " Earlier: " + "; ".join(earlier) + "."
    return answer


def failure_answer(clause: str, call: Call) -> str:
    reason = re.sub(r"^(?:error executing tool \S+:|error:)\s*", "", " ".join(call.result.split()), flags=re.I)[:200]
    return f"I could not {clause[:1].lower() + clause[1:]}: the {call.name} tool said \"{reason}\"."


# -- the decision ---------------------------------------------------------------------------
def next_action(request: dict[str, Any], profile: sim.Profile, rng: random.Random) -> sim.Generation:
    """The model's reply to a conversation that ends with tool results."""
    messages = request["messages"]
    tools = [t for t in (request.get("tools") or []) if isinstance(t, dict)]
    text = sim._last_user_text(messages)
    turns = read_history(messages)
    clauses = episode_clauses(text)
    step_tools, served = served_steps(clauses, tools, turns)
    pending = next((k for k, s in enumerate(served) if not s), None)
    if pending is None or request.get("tool_choice") == "none":
        return _answer(summary_answer(turns, text), "high", profile)
    clause = clauses[pending]
    tool_index = step_tools[pending]
    tool = tools[tool_index]
    failures = _trailing_failures(turns, sim._tool_name(tool))
    if failures:
        failed = failures[-1]
        if len(failures) >= MAX_FAILURES:
            return _answer(failure_answer(clause, failed), "medium", profile)
        if rng.random() < profile.skill:
            args, _ = fill_arguments(clause, text, tool, turns)
            if args == failed.arguments:
                return _answer(failure_answer(clause, failed), "high", profile)
            return sim._tool_generation([(tool, args, "high", None, set())], profile, rng)
        # A weak model tries the same call again, unsure of every argument.
        return sim._tool_generation([(tool, dict(failed.arguments), "low", None, set(failed.arguments))], profile, rng)
    _, ranked = step_tool(clause, tools, turns)
    runner = next((i for _, i in ranked if i != tool_index), None)
    choice_conf = "medium" if runner is not None and ranked[1][0] >= 0.8 * ranked[0][0] else "high"
    if runner is not None and rng.random() < (1 - profile.skill) * 0.6:
        tool_index, tool, choice_conf = runner, tools[runner], "low"
    args, wrong = fill_arguments(clause, text, tool, turns, rng, profile.skill)
    alt = sim._tool_name(tools[runner if tool_index != runner else step_tools[pending]]) if runner is not None else None
    return sim._tool_generation([(tool, args, choice_conf, alt, wrong)], profile, rng)


def _trailing_failures(turns: list[Turn], name: str) -> list[Call]:
    """The failed calls of a tool in the latest turns, back to the last turn without one."""
    out: list[Call] = []
    for turn in reversed(turns):
        failed = [c for c in turn.calls if c.name == name and c.error]
        if not failed:
            break
        out[:0] = failed
    return out


def _answer(text: str, confidence: str, profile: sim.Profile) -> sim.Generation:
    return sim.Generation(text, [], [sim.Segment(text, confidence)], sim._reasoning_tokens(profile, text), "stop")
