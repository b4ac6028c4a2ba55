"""Student-vs-teacher agreement metrics and accuracy against expected answers (BFCL rules).

All functions are pure; a "call" is {"name": str, "arguments": dict} as parsed from a response.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Any

REL_TOL = 1e-6
ABS_TOL = 1e-9


# -- values -------------------------------------------------------------------------------------
def values_equal(a: Any, b: Any) -> bool:
    """Equality after JSON normalisation: numbers within a tolerance (1 == 1.0), dict key order
    ignored, lists compared in order, strings compared after trimming."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# -- tool selection and arguments ---------------------------------------------------------------
def tool_names(calls: list[dict[str, Any]]) -> Counter:
    return Counter(str(c.get("name")) for c in calls)


def tool_agreement(teacher: list[dict[str, Any]], student: list[dict[str, Any]]) -> bool:
    """Same multiset of function names; order does not matter; no tool on both sides agrees."""
    return tool_names(teacher) == tool_names(student)


def pair_calls(teacher: list[dict[str, Any]], student: list[dict[str, Any]]):
    """Pair calls by name (in order within a name). Returns (pairs, unpaired_teacher, unpaired_student)."""
    pool: dict[str, list[dict[str, Any]]] = {}
    for c in student:
        pool.setdefault(str(c.get("name")), []).append(c)
    pairs, lonely_t = [], []
    for c in teacher:
        bucket = pool.get(str(c.get("name")))
        if bucket:
            pairs.append((c, bucket.pop(0)))
        else:
            lonely_t.append(c)
    lonely_s = [c for bucket in pool.values() for c in bucket]
    return pairs, lonely_t, lonely_s


def _args(call: dict[str, Any]) -> dict[str, Any]:
    a = call.get("arguments")
    return a if isinstance(a, dict) else {}


def args_agreement(teacher: list[dict[str, Any]], student: list[dict[str, Any]]) -> tuple[bool, float | None]:
    """(every argument of every call equal, share of arguments that match).

    The share counts each argument of the paired calls (the union of both sides' keys) plus every
    argument of an unpaired call as a mismatch. With no arguments at all the share is None."""
    pairs, lonely_t, lonely_s = pair_calls(teacher, student)
    total = matched = 0
    for t, s in pairs:
        ta, sa = _args(t), _args(s)
        for key in set(ta) | set(sa):
            total += 1
            if key in ta and key in sa and values_equal(ta[key], sa[key]):
                matched += 1
    for c in lonely_t + lonely_s:
        total += len(_args(c)) or 1
    if total == 0:
        return tool_agreement(teacher, student), None
    return matched == total and not lonely_t and not lonely_s, matched / total


def argument_diff(teacher: list[dict[str, Any]], student: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What differs, call by call, for the side-by-side view."""
    pairs, lonely_t, lonely_s = pair_calls(teacher, student)
    out = []
    for t, s in pairs:
        ta, sa = _args(t), _args(s)
        for key in sorted(set(ta) | set(sa)):
            if not (key in ta and key in sa and values_equal(ta[key], sa[key])):
                out.append({"tool": t.get("name"), "argument": key, "teacher": ta.get(key, "(missing)"),
                            "student": sa.get(key, "(missing)")})
    out += [{"tool": c.get("name"), "argument": None, "teacher": "called", "student": "not called"} for c in lonely_t]
    out += [{"tool": c.get("name"), "argument": None, "teacher": "not called", "student": "called"} for c in lonely_s]
    return out


# -- answers --------------------------------------------------------------------------------------
def normalise_text(text: str | None) -> str:
    text = unicodedata.normalize("NFKC", text or "").casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def answers_match(a: str | None, b: str | None) -> bool:
    return normalise_text(a) == normalise_text(b)


def cosine(a: list[float], b: list[float]) -> float | None:
    if not a or not b or len(a) != len(b):
        return None
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else None


def offline_embedding(text: str, dims: int = 512) -> list[float]:
    """The documented offline fallback when a tier has no embeddings endpoint: a hashed bag of
    words and word bigrams (sign-hashed, L2-normalised). It measures lexical overlap, not meaning."""
    words = normalise_text(text).split()
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    vec = [0.0] * dims
    for g in grams:
        h = hashlib.blake2b(g.encode(), digest_size=8).digest()
        vec[int.from_bytes(h[:4], "little") % dims] += 1.0 if h[4] & 1 else -1.0
    n = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / n for v in vec]


def offline_similarity(a: str, b: str, dims: int = 512) -> float | None:
    """`cosine(offline_embedding(a), offline_embedding(b))`, the same float, from the few non-zero
    entries rather than two dense vectors (an evaluation compares ~100k pairs): zeros add nothing
    to the sums, which run over the same entries in the same order."""
    va = _sparse_offline_embedding(a, dims)
    vb = va if b == a else _sparse_offline_embedding(b, dims)  # a student that agrees often says the same
    if not va or not vb:
        return None
    dot = sum(x * vb[i] for i, x in va.items() if i in vb)
    na = math.sqrt(sum(x * x for x in va.values()))
    nb = math.sqrt(sum(y * y for y in vb.values()))
    return dot / (na * nb) if na and nb else None


def sparse_offline_embedding(text: str, dims: int = 512) -> dict[int, float]:
    """offline_embedding's non-zero entries ({slot: value}, increasing slots): the index that
    prompt-distilled students' nearest demonstrations are chosen by (core.demonstrations)."""
    return _sparse_offline_embedding(text, dims)


def _sparse_offline_embedding(text: str, dims: int) -> dict[int, float]:
    """offline_embedding's non-zero entries, {index: value} in increasing index order."""
    words = normalise_text(text).split()
    counts: dict[int, float] = {}
    get = counts.get
    for g in (*words, *(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))):
        i, sign = _gram_slot(g, dims)
        counts[i] = get(i, 0.0) + sign
    n = math.sqrt(sum(v * v for v in counts.values())) or 1.0  # integers: exact in any order
    return {i: counts[i] / n for i in sorted(counts) if counts[i]}


@lru_cache(maxsize=1 << 17)
def _gram_slot(gram: str, dims: int) -> tuple[int, float]:
    """Where a word or bigram lands in offline_embedding, and with which sign (texts share most of
    their words and bigrams: each is hashed once)."""
    h = hashlib.blake2b(gram.encode(), digest_size=8).digest()
    return int.from_bytes(h[:4], "little") % dims, 1.0 if h[4] & 1 else -1.0


# -- distributions ---------------------------------------------------------------------------------
def decision_position(logprobs: list[dict[str, Any]] | None, tool_name: str | None) -> int | None:
    """Index of the token that carries the decision: the first token of the chosen tool's name,
    or the first token when no tool is called."""
    if not logprobs:
        return None
    if not tool_name:
        return 0
    text, starts = "", []
    for tok in logprobs:
        starts.append(len(text))
        text += tok["token"]
    marker = text.find('"name": "')
    at = marker + len('"name": "') if marker >= 0 else text.find(tool_name)
    if at < 0 or at >= len(text):
        return None
    for i, s in enumerate(starts):
        if s <= at < s + len(logprobs[i]["token"]) or s >= at:
            return i
    return None


def soft_distribution(top: list[dict[str, Any]], temperature: float) -> dict[str, float]:
    """A top-k distribution renormalised at temperature T: p_i ∝ exp(logprob_i / T)."""
    if not top:
        return {}
    scaled = {t["token"]: t["logprob"] / temperature for t in top}
    peak = max(scaled.values())
    weights = {k: math.exp(v - peak) for k, v in scaled.items()}
    z = sum(weights.values())
    return {k: w / z for k, w in weights.items()}


def kl_divergence(p: dict[str, float], q: dict[str, float], floor: float = 1e-6) -> float:
    """KL(p || q) over the union of both top-k supports; tokens missing from q get `floor`
    (then q is renormalised), so a teacher token the student never considered costs a lot."""
    support = set(p) | set(q)
    qf = {k: max(q.get(k, 0.0), floor) for k in support}
    zq = sum(qf.values())
    return sum(pv * math.log(pv / (qf[k] / zq)) for k, pv in p.items() if pv > 0)


def decision_top(logprobs: list[dict[str, Any]] | None, tool_name: str | None) -> list[dict[str, Any]] | None:
    """The alternatives (top_logprobs, as {token, logprob}) of the first decision token: all that
    the decision KL reads of a trajectory's logprobs, small enough to store apart from them. None
    when there is no decision token or it has no alternatives."""
    at = decision_position(logprobs, tool_name)
    top = logprobs[at].get("top_logprobs") if at is not None and logprobs is not None else None
    return [{"token": t["token"], "logprob": t["logprob"]} for t in top] if top else None


def top_kl(teacher_top: list[dict[str, Any]] | None, student_top: list[dict[str, Any]] | None,
           temperature: float = 2.0) -> float | None:
    """KL(teacher_T || student_T) between two decision tokens' alternatives (see `decision_top`)."""
    if not teacher_top or not student_top:
        return None
    return kl_divergence(soft_distribution(teacher_top, temperature), soft_distribution(student_top, temperature))


def decision_kl(teacher_logprobs, teacher_tool, student_logprobs, student_tool, temperature: float = 2.0) -> float | None:
    """KL(teacher_T || student_T) over the first decision token (Hinton et al. 2015)."""
    return top_kl(decision_top(teacher_logprobs, teacher_tool), decision_top(student_logprobs, student_tool),
                  temperature)


# -- accuracy against expected answers (BFCL) -----------------------------------------------------
# The rules of BFCL's own AST checker for Python (bfcl_eval.eval_checker.ast_eval.ast_checker),
# quirks included, so that an accuracy shown here is the accuracy BFCL would report; the test
# tests/core/test_bfcl_oracle.py holds the two side by side. Values compare with Python's ==
# (1 == 1.0), strings after BFCL's standardisation, dicts key by key, and each argument first
# passes BFCL's type check against the tool's declared parameter type.
_BFCL_PY_TYPES: dict[str, type] = {
    # BFCL's names and the JSON Schema names the importer maps them to (dict->object, float->number,
    # tuple->array, any->no type).
    "string": str, "any": str, "integer": int, "float": float, "number": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "object": dict,
}
_BFCL_STRIP = re.compile(r"[ ,./\-_*^]")


def bfcl_standardize(text: str) -> str:
    """BFCL's string normalisation: drop spaces and , . / - _ * ^, lower-case, ' -> "."""
    return _BFCL_STRIP.sub("", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return bfcl_standardize(value) if type(value) is str else value


def _declared_type(schema: Any) -> type | None:
    """The Python type BFCL checks a value against; None when unknown (then no type check)."""
    if not isinstance(schema, dict):
        return None
    name = schema.get("type", "any")  # the importer drops BFCL's "any"
    return _BFCL_PY_TYPES.get(name) if isinstance(name, str) else None


def _first_answer_type(accepted: Any) -> type | None:
    for option in accepted:
        if option != "":  # "" marks an optional argument
            return type(option)
    return None


def _type_ok(value: Any, accepted: Any, declared: type, nested: type | None) -> tuple[bool, bool]:
    """BFCL's type_checker: (valid, is_variable). A value of the accepted answers' type passes as a
    "variable" even when it is not the declared type; arrays check their items one level deep
    against each accepted list (an optional "" answer lets any items through)."""
    answer_type = _first_answer_type(accepted)
    is_variable = answer_type is not None and answer_type is not declared
    if type(value) is declared:
        if nested is None:
            return True, is_variable
        for option in accepted:
            if type(option) is list and not all(_type_ok(item, option, nested, None)[0] for item in value):
                continue
            return True, is_variable
        return False, False
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, False


def _string_ok(value: str, accepted: Any) -> bool:
    return bfcl_standardize(value) in [bfcl_standardize(o) for o in accepted if type(o) is str]


def _list_ok(value: list, accepted: Any) -> bool:
    options = [[_std(x) for x in o] for o in accepted if isinstance(o, list | str)]  # "" -> []
    return [_std(x) for x in value] in options


def _dict_ok(value: dict, accepted: Any) -> bool:
    """Every key of the dict is an accepted key with an accepted value; missing keys are optional."""
    for option in accepted:
        if option == "" or not isinstance(option, dict):
            continue
        if all(key in option and isinstance(option[key], list | str)
               and _std(v) in [_std(o) for o in option[key]] for key, v in value.items()) \
                and all(key in value or "" in vals for key, vals in option.items()):
            return True
    return False


def _list_of_dicts_ok(value: list, accepted: Any) -> bool:
    for option in accepted:
        if not isinstance(option, list | str) or len(option) != len(value):
            continue
        if all(isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option, strict=True)):
            return True
    return False


def _bfcl_value_ok(value: Any, accepted: Any, schema: Any) -> bool:
    declared = _declared_type(schema)
    nested = _declared_type(schema.get("items")) if declared is list and isinstance(schema, dict) else None
    if declared is None:  # no declared type: take the accepted answers' type (int and float alike)
        declared = _first_answer_type(accepted)
        if declared in (int, float) and type(value) in (int, float):
            declared = float
        if declared is list:
            first = next((o for o in accepted if isinstance(o, list) and o), None)
            nested = dict if first is not None and isinstance(first[0], dict) else None
    if declared is float and type(value) is int:
        value = float(value)  # BFCL allows Python's int -> float promotion, at the top level only
    is_variable = False
    if declared is not None:
        valid, is_variable = _type_ok(value, accepted, declared, nested)
        if not valid:
            return False
    if not is_variable:
        kind = declared or type(value)
        if kind is dict and isinstance(value, dict):
            return _dict_ok(value, accepted)
        if kind is list and isinstance(value, list):
            return _list_of_dicts_ok(value, accepted) if nested is dict else _list_ok(value, accepted)
        if kind is str and isinstance(value, str):
            return _string_ok(value, accepted)
    try:
        return value in accepted
    except TypeError:
        return False


def _parameters(tool: Any) -> dict[str, Any] | None:
    fn = tool.get("function", tool) if isinstance(tool, dict) else None
    params = fn.get("parameters") if isinstance(fn, dict) else None
    return params if isinstance(params, dict) else None


def _tool_schemas(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tool in tools or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        params = _parameters(tool)
        if isinstance(fn, dict) and params is not None:
            out.setdefault(str(fn.get("name")), params)
    return out


def bfcl_call_ok(call: dict[str, Any], expected: dict[str, dict[str, list[Any]]],
                 parameters: dict[str, Any] | None = None) -> bool:
    """One call against one expected call {name: {arg: [accepted values]}}: any listed value is
    accepted; "" in the list means the argument may be omitted; unexpected arguments fail.

    `parameters` is the tool's parameter schema (the task's tool): with it, BFCL's type check and
    its required and declared arguments apply; without it the types are taken from the answers."""
    (name, params), = expected.items()
    if call.get("name") != name:
        return False
    args = _args(call)
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    required = parameters.get("required") if isinstance(parameters, dict) else None
    if isinstance(required, list) and any(key not in args for key in required):
        return False
    for key, value in args.items():
        if key not in params or (isinstance(properties, dict) and key not in properties):
            return False
        accepted = params[key] if isinstance(params[key], list) else [params[key]]
        schema = properties.get(key) if isinstance(properties, dict) else None
        if not _bfcl_value_ok(value, accepted, schema):
            return False
    return all(key in args or "" in (accepted if isinstance(accepted, list) else [accepted])
               for key, accepted in params.items())


def bfcl_correct(calls: list[dict[str, Any]], expected: list[dict[str, Any]],
                 tools: list[dict[str, Any]] | None = None) -> bool:
    """The task's verdict as BFCL's AST checker gives it: every expected call matched by a distinct
    actual call (the first that fits, in order, as BFCL matches parallel calls), and no extra
    calls. `[]` expects no call (irrelevance). Pass the task's `tools` so that BFCL's type check
    applies (an int where the tool declares a float array fails); without them it cannot."""
    if not expected:
        return not calls
    if len(calls) != len(expected):
        return False
    schemas = _tool_schemas(tools)
    remaining = list(range(len(calls)))  # indices: calls that differ only as 5 vs 5.0 are == as dicts
    for exp in expected:
        if not isinstance(exp, dict) or len(exp) != 1:
            return False
        parameters = schemas.get(str(next(iter(exp))))
        match = next((i for i in remaining if bfcl_call_ok(calls[i], exp, parameters)), None)
        if match is None:
            return False
        remaining.remove(match)
    return True


def kept_verdict(calls: list[dict[str, Any]], expected: Any, tools: list[dict[str, Any]] | None) -> bool | None:
    """The verdict kept with an answer as it is saved (trajectories.correct, what Trade-offs and
    evaluation read): BFCL's check when the task expects calls; None when it expects none or the
    check fails on an odd answer (Trade-offs then judges it, and says why, as before)."""
    if not isinstance(expected, list):
        return None
    try:
        return bfcl_correct(calls, expected, tools)
    except Exception:  # noqa: BLE001 - a save never fails on a verdict
        return None
