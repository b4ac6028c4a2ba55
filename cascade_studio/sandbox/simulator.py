"""Simulated models: pick tools by matching the user's words to tool descriptions, fill arguments
from values in the question, and make skill-dependent mistakes that come with low token
probabilities, so that logprob-based confidence predicts correctness as it does with real models.

Everything is deterministic for (seed, model, request).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
from dataclasses import dataclass
from typing import Any

from cascade_studio.sandbox.logprobs import token_logprobs as token_logprobs  # re-exported
from cascade_studio.sandbox.logprobs import token_logprobs_json as token_logprobs_json  # re-exported
from cascade_studio.sandbox.tokens import count_message_tokens, count_tokens

CHAT_MODELS = [
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "gpt-5-nano",
]
EMBEDDING_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
FINE_TUNABLE = {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"}


@dataclass(frozen=True)
class Profile:
    skill: float  # chance that each decision (tool, each argument) is right
    confidence: float  # typical probability of a token the model is sure about
    base_ms: float
    ms_per_token: float
    verbosity: int  # reasoning sentences
    reasoning_model: bool


def profile_for(model: str) -> Profile:
    name = model.lower()
    if name.startswith("ft:"):
        # A student distilled from its teacher: close to a big model, a little less sure.
        return Profile(0.9, 0.97, 60, 6, 1, False)
    reasoning = name.startswith(("gpt-5", "o1", "o3", "o4"))
    if "nano" in name:
        return Profile(0.62, 0.9, 40, 3, 1, reasoning)
    if "mini" in name:
        return Profile(0.8, 0.94, 60, 6, 1, reasoning)
    return Profile(0.95, 0.985, 120, 14, 2, reasoning)


def is_known_chat_model(model: str, fine_tuned: set[str]) -> bool:
    return model in CHAT_MODELS or model in fine_tuned or _dated_alias(model) in CHAT_MODELS


def _dated_alias(model: str) -> str:
    """gpt-4o-mini-2024-07-18 -> gpt-4o-mini"""
    return re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model)


def rng_for(seed: int, model: str, payload: Any) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{model}|{json.dumps(payload, sort_keys=True, default=str)}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# -- matching -------------------------------------------------------------------------------
_STOP = set(
    "a an the of to in on for and or with by from at as is are be this that these those it its into using use "
    "given given. value values number numbers based provided specific specified which what how me my i you your "
    "please can could would should find get calculate compute show give tell let make do does need want about "
    "default defaults if not no any all some each per".split()
)
_WORD = re.compile(r"[a-z][a-z0-9]+")
_NUMBER = re.compile(r"(?<![\w.^/])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\d.]\d|[\^*])")
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "twelve": 12, "twenty": 20, "hundred": 100}


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


def tool_words(tool: dict[str, Any]) -> set[str]:
    fn = tool.get("function", tool)
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(fn.get("name", ""))).replace("_", " ").replace(".", " ")
    return words(name) | words(str(fn.get("description", "")))


def score_tools(text: str, tools: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """(score, index) best first; score is overlap normalised by the tool's vocabulary size."""
    q = words(text)
    scored = []
    for i, tool in enumerate(tools):
        tw = tool_words(tool)
        name_words = words(str(tool.get("function", tool).get("name", "")).replace("_", " ").replace(".", " "))
        overlap = len(q & tw) + 0.5 * len(q & name_words)
        scored.append((overlap / math.sqrt(max(len(tw), 1)), i))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return scored


RELEVANCE = 0.55


def _names_tool(text: str, tool: dict[str, Any]) -> bool:
    """Does the request use a word from the tool's own name (not only its description)?"""
    name = str(tool.get("function", tool).get("name", ""))
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace(".", " ")
    return bool(words(text) & words(name))


# -- arguments ------------------------------------------------------------------------------
def _numbers_with_pos(text: str) -> list[tuple[int, float | int]]:
    found: list[tuple[int, float | int]] = []
    for m in _NUMBER.finditer(text):
        s = m.group()
        found.append((m.start(), float(s) if ("." in s or "e" in s) else int(s)))
    if not found:
        for m in re.finditer(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", text.lower()):
            found.append((m.start(), _WORD_NUMBERS[m.group(1)]))
    found.sort()
    return found


def _distance(pos: int, anchor: int) -> float:
    """Values usually follow the word that names them ('height of 5'): prefer those."""
    return pos - anchor if pos >= anchor else (anchor - pos) * 3


def _anchor(lowered: str, name_words: list[str]) -> int:
    """Where the question mentions a parameter (e.g. 'height of 5'); -1 if it does not."""
    best = -1
    for w in name_words:
        if len(w) == 1:
            m = re.search(rf"\b{re.escape(w)}\s*=", lowered)
        else:
            m = re.search(rf"\b{re.escape(_stem(w))}", lowered)
        if m and (best < 0 or m.start() < best):
            best = m.start()
    return best


def _json_type(schema: dict[str, Any]) -> str:
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return {"dict": "object", "float": "number", "tuple": "array"}.get(t, t)


def extract_arguments(text: str, tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = set(params.get("required") or [])
    numbers = _numbers_with_pos(text)
    used_numbers: set[int] = set()
    lowered = text.lower()
    args: dict[str, Any] = {}
    quoted = re.findall(r"['\"“]([^'\"”]{1,60})['\"”]", text)
    proper = [m.group() for m in re.finditer(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*", text)]

    for name, schema in props.items():
        schema = schema if isinstance(schema, dict) else {}
        kind = _json_type(schema)
        value: Any = None
        name_words = [w for w in re.split(r"[_\W]+", name.lower()) if w]
        anchor = _anchor(lowered, name_words)
        if "enum" in schema and schema["enum"]:
            value = next((e for e in schema["enum"] if str(e).lower() in lowered), None)
            if value is None and name in required:
                value = schema["enum"][0]
        elif kind in ("integer", "number"):
            candidates = [(pos, v) for k, (pos, v) in enumerate(numbers) if k not in used_numbers]
            if candidates:
                if anchor >= 0:
                    pick = min(range(len(candidates)), key=lambda j, c=candidates, a=anchor: _distance(c[j][0], a))
                else:
                    pick = 0 if name in required else None
                if pick is not None:
                    pos, v = candidates[pick]
                    used_numbers.add(next(k for k, (p, _) in enumerate(numbers) if p == pos))
                    value = float(v) if kind == "number" and isinstance(v, float) else v
                    if kind == "integer" and isinstance(value, float):
                        value = int(value)
        elif kind == "boolean":
            if anchor >= 0:
                value = not re.search(r"\b(no|not|without|false)\b", lowered)
        elif kind == "array":
            items = schema.get("items") or {}
            if _json_type(items) in ("integer", "number"):
                value = [v for k, (_, v) in enumerate(numbers) if k not in used_numbers] or None
            elif proper:
                value = proper[:3]
        elif kind == "string":
            if quoted:
                value = quoted.pop(0)
            elif anchor >= 0 and name in required:
                after = re.search(rf"{re.escape(name_words[0])}\w*\s+(?:of|is|as|in|for|to|=|:)?\s*([\w.\-/]+(?:\s[A-Z][\w.]+)*)",
                                  text, re.IGNORECASE)
                if after and after.group(1).lower() not in _STOP:
                    value = after.group(1)
            if value is None and proper and (name in required or any(w in ("city", "location", "name", "country", "place") for w in name_words)):
                value = proper.pop(0)
            if value is None and name in required:
                m = re.search(r"\b(?:of|for|in|about|named|called)\s+(?:the\s+|a\s+)?([A-Za-z][\w\-]*(?:\s[A-Za-z][\w\-]*)?)", text)
                value = m.group(1) if m else ""
        elif kind == "object" and name in required:
            value = {}
        if value is not None:
            args[name] = value
    return args


# -- chat completions -----------------------------------------------------------------------
@dataclass
class Segment:
    text: str
    confidence: str  # "high", "medium", "low"
    alternative: str | None = None


@dataclass
class Generation:
    content: str | None
    tool_calls: list[dict[str, Any]]
    segments: list[Segment]
    reasoning_tokens: int
    finish_reason: str


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


def _perturb(args: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str | None]:
    if not args:
        return args, None
    key = rng.choice(sorted(args))
    out = dict(args)
    v = out[key]
    if isinstance(v, bool):
        out[key] = not v
    elif isinstance(v, int | float):
        out[key] = v * 10 if rng.random() < 0.5 else v + 1
    elif isinstance(v, str) and v:
        out[key] = v.split()[0].lower() if " " in v else v[: max(1, len(v) // 2)]
    elif rng.random() < 0.5:
        del out[key]
    else:
        out[key] = None
    return out, key


# -- demonstrations -------------------------------------------------------------------------
# Few-shot turns before the task help a simulated model as they help a real one, when they are
# relevant: a worked example (a question, a tool call and its results, then the next question) that
# calls a tool whose name shares a word with one of the request's tools' names, or whose question
# shares at least DEMO_OVERLAP of its words (Jaccard) with the request. With one or more relevant examples the model
# makes DEMO_MISTAKE_FACTOR of its usual mistakes (tool choice, arguments, calling a tool when none
# fits); irrelevant examples change nothing but the prompt's length (and so its cost).
DEMO_OVERLAP = 0.2
DEMO_MISTAKE_FACTOR = 0.25


def relevant_demonstrations(messages: list[dict[str, Any]], tools: list[dict[str, Any]], text: str) -> int:
    """How many worked examples before the last user turn are relevant to it (see above). A worked
    example is a question, a tool call and its results followed directly by the next question (in a
    conversation the model answers its tool results before the user speaks again: those turns are the
    conversation itself, not examples)."""
    return worked_examples(messages, tools, text)[1]


def worked_examples(messages: list[dict[str, Any]], tools: list[dict[str, Any]], text: str) -> tuple[int, int]:
    """(worked examples before the last user turn, of them relevant to it): see relevant_demonstrations."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    offered = set().union(*(_name_words(_tool_name(t)) for t in tools)) if tools else set()
    asked = words(text)
    count, total, question, names = 0, 0, "", None
    for m in messages[:max(last_user, 0) + 1]:
        role = m.get("role")
        if role == "user":
            if names is not None:  # the example's results went straight on to the next question
                shown = words(question)
                overlap = len(asked & shown) / max(1, len(asked | shown))
                count += bool(names & offered or overlap >= DEMO_OVERLAP)
                total += 1
            question, names = _last_user_text([m]), None
        elif role == "assistant":
            calls = [c for c in (m.get("tool_calls") or []) if isinstance(c, dict)]
            names = set().union(set(), *(_name_words(str((c.get("function") or {}).get("name", ""))) for c in calls)) \
                if calls and question else None
            if not calls:
                question = ""
        elif role != "tool":
            names = None
    return total, count


def _without_demonstrations(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's own turns: its system messages and everything from its last user turn on."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    return [m for m in messages[:last_user] if m.get("role") in ("system", "developer")] + messages[last_user:]


def _name_words(name: str) -> set[str]:
    return words(re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace(".", " "))


def _with_demonstrations(profile: Profile, relevant: int) -> Profile:
    if not relevant:
        return profile
    skill = 1 - (1 - profile.skill) * DEMO_MISTAKE_FACTOR
    return Profile(skill, profile.confidence, profile.base_ms, profile.ms_per_token, profile.verbosity,
                   profile.reasoning_model)


def generate_chat(request: dict[str, Any], *, seed: int) -> Generation:
    model = request["model"]
    profile = profile_for(model)
    messages = request["messages"]
    tools = [t for t in (request.get("tools") or []) if isinstance(t, dict)]
    tool_choice = request.get("tool_choice", "auto" if tools else "none")
    parallel = request.get("parallel_tool_calls", True) is not False
    key_model = model.split(":")[1] if model.startswith("ft:") else model
    text = _last_user_text(messages)
    last = messages[-1] if messages else {}
    examples, helped = worked_examples(messages, tools, text) if last.get("role") != "tool" else (0, 0)
    # with worked examples, relevant or not, the model draws the same chances as without them (keyed
    # on the task's own turns), so examples only ever remove mistakes: their effect is
    # DEMO_MISTAKE_FACTOR, not noise (irrelevant ones change nothing but the prompt's length)
    keyed = _without_demonstrations(messages) if examples else messages
    rng = rng_for(seed, key_model if model.startswith("ft:") else model, {"m": keyed, "t": [_tool_name(t) for t in tools]})

    # Playing the user of a conversational task (the app's user simulator): the instruction's next line.
    from cascade_studio.sandbox.user_policy import is_user_simulation, user_turn

    if is_user_simulation(messages):
        return user_turn(messages, profile)

    # Tool results came back (an agent episode): call the next tool, retry, or answer.
    if last.get("role") == "tool":
        from cascade_studio.sandbox.episode_policy import next_action

        return next_action(request, profile, rng)
    profile = _with_demonstrations(profile, helped)

    if tools and tool_choice != "none":
        forced = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else None
        clauses = _clauses(text) if parallel else [text]
        calls: list[tuple[dict[str, Any], dict[str, Any], str, str | None, set[str]]] = []
        for clause in clauses:
            ranked = score_tools(clause, tools)
            best_score, best = ranked[0]
            runner = ranked[1][1] if len(ranked) > 1 else None
            relevant = (best_score >= RELEVANCE and (_names_tool(clause, tools[best]) or best_score >= 1.0)) \
                or forced is not None or tool_choice == "required"
            if forced is not None:
                best = next((i for i, t in enumerate(tools) if _tool_name(t) == forced), best)
            if not relevant:
                # Small models sometimes call a tool anyway (a confident-looking mistake, but unsure tokens).
                if len(clauses) == 1 and rng.random() < (1 - profile.skill) * 0.6:
                    tool = tools[best]
                    calls.append((tool, extract_arguments(clause, tool), "low", None, set()))
                continue
            choice_conf = "high"
            if runner is not None and ranked[1][0] >= 0.8 * best_score:
                choice_conf = "medium"
            tool_index = best
            if forced is None and runner is not None and rng.random() < (1 - profile.skill) * 0.6:
                tool_index, choice_conf = runner, "low"
            tool = tools[tool_index]
            args = extract_arguments(clause, tool)
            wrong: set[str] = set()
            if rng.random() < (1 - profile.skill) * 0.7:
                args, key = _perturb(args, rng)
                if key:
                    wrong.add(key)
            alt = _tool_name(tools[runner if tool_index != runner else best]) if runner is not None else None
            calls.append((tool, args, choice_conf, alt, wrong))
            if len(calls) >= 4:
                break
        if calls:
            return _tool_generation(calls, profile, rng)
        if tool_choice == "required":
            tool = tools[0]
            return _tool_generation([(tool, extract_arguments(text, tool), "low", None, set())], profile, rng)
        answer = _no_tool_answer(text, tools)
        return Generation(answer, [], [Segment(answer, "high" if profile.skill > 0.7 else "medium")],
                          _reasoning_tokens(profile, answer), "stop")

    answer = _plain_answer(text, profile, rng)
    return Generation(answer, [], [Segment(answer, "high")], _reasoning_tokens(profile, answer), "stop")


def _tool_name(tool: dict[str, Any]) -> str:
    return str(tool.get("function", tool).get("name", ""))


def _clauses(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.?!;])\s+(?=[A-Z])|\.\s+[Aa]lso,?\s+|;\s+|,?\s+and then\s+|,?\s+and also\s+", text) if p and p.strip()]
    return parts or [text]


def _reasoning_tokens(profile: Profile, text: str) -> int:
    return count_tokens(text) * 3 if profile.reasoning_model else 0


def _tool_generation(calls, profile: Profile, rng: random.Random) -> Generation:
    segments: list[Segment] = []
    tool_calls: list[dict[str, Any]] = []
    reasoning_parts = []
    for tool, args, *_ in calls:
        fn = tool.get("function", tool)
        desc = str(fn.get("description", "")).strip().rstrip(".")
        arg_text = ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items()) or "no arguments"
        reasoning_parts.append(f"The request matches {fn.get('name')}"
                               + (f" ({desc[:80].lower()})" if desc else "") + f"; I will call it with {arg_text}.")
    reasoning = " ".join(reasoning_parts[: profile.verbosity + len(calls) - 1])
    segments.append(Segment(reasoning + "\n", "high"))
    for tool, args, choice_conf, alt, wrong in calls:
        name = str(tool.get("function", tool).get("name", ""))
        arguments = json.dumps(args)
        call_id = "call_" + hashlib.sha1(f"{name}{arguments}{rng.random()}".encode()).hexdigest()[:24]
        tool_calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        segments.append(Segment('{"name": "', "high"))
        segments.append(Segment(name, choice_conf, alt))
        segments.append(Segment('", "arguments": {', "high"))
        for index, (k, v) in enumerate(args.items()):
            segments.append(Segment(("" if index == 0 else ", ") + json.dumps(k) + ": ", "high"))
            segments.append(Segment(json.dumps(v), "low" if k in wrong else ("medium" if choice_conf == "low" else "high")))
        segments.append(Segment("}}", "high"))
    return Generation(reasoning, tool_calls, segments, _reasoning_tokens(profile, reasoning), "tool_calls")


def _no_tool_answer(text: str, tools: list[dict[str, Any]]) -> str:
    topic = " ".join(text.split()[:12])
    names = ", ".join(_tool_name(t) for t in tools[:3])
    return (f"None of the available functions ({names}) can answer this request: \"{topic}\". "
            "I can help if you provide a suitable tool.")


def _plain_answer(text: str, profile: Profile, rng: random.Random) -> str:
    if not text.strip():
        return "Hello! How can I help?"
    topic = " ".join(text.split()[:16])
    sentences = [
        f"Here is a concise answer to: {topic}.",
        "The key point is to break the problem into steps and check each result.",
        "If you need more detail, ask a follow-up question.",
    ]
    return " ".join(sentences[: 1 + profile.verbosity])


# -- embeddings ------------------------------------------------------------------------------
def embed(text: str, dims: int) -> list[float]:
    """Hashed bag of words and bigrams, L2-normalised: similar texts get similar vectors."""
    vec = [0.0] * dims
    toks = [_stem(w) for w in _WORD.findall(text.lower())]
    grams = toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]
    for g in grams:
        h = hashlib.md5(g.encode()).digest()
        index = int.from_bytes(h[:4], "little") % dims
        vec[index] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def encode_base64(vec: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()


def usage_counts(request: dict[str, Any], gen: Generation) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an answer."""
    prompt = count_message_tokens(request["messages"], request.get("tools"))
    return prompt, sum(count_tokens(s.text) for s in gen.segments) + gen.reasoning_tokens


def chat_usage(request: dict[str, Any], gen: Generation, cached: int,
               counts: tuple[int, int] | None = None) -> dict[str, Any]:
    prompt, completion = counts or usage_counts(request, gen)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": gen.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }
