"""Preference pairs for DPO: where the teacher and a student answered the same task differently, the
teacher's answer is preferred and the student's is not. One JSON line per pair, in the format
Together's preference fine-tuning reads (and OpenAI's DPO too):

    {"input": {"messages": [...], "tools": [...]},
     "preferred_output": [{"role": "assistant", ...}], "non_preferred_output": [{"role": "assistant", ...}]}

Whether two answers agree is the evaluation's rule (core.evaluation.TaskResult.agrees); pairs that
agree teach nothing and are never written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from cascade_studio.core.datasets import (
    MIN_EXAMPLES,
    ValidationReport,
    default_epochs,
    token_limit,
    validate_jsonl,
)
from cascade_studio.core.jsonl import JsonProblem
from cascade_studio.core.jsonl import loads as safe_loads

PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output"}
INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
SIDES = ("preferred_output", "non_preferred_output")


def preference_example(messages: list[dict[str, Any]], tools: list[dict[str, Any]], chosen: dict[str, Any],
                       rejected: dict[str, Any]) -> dict[str, Any]:
    """One pair: the prompt `messages` (and `tools`), the teacher's assistant message preferred."""
    inp: dict[str, Any] = {"messages": messages}
    if tools:
        inp["tools"] = tools
    return {"input": inp, "preferred_output": [chosen], "non_preferred_output": [rejected]}


def is_preference_row(row: Any) -> bool:
    return isinstance(row, dict) and "preferred_output" in row and "input" in row


def detect_preference(text: str) -> bool:
    """Whether the file's first JSON line is a preference pair."""
    for raw in text.split("\n"):
        if raw.strip():
            try:
                return is_preference_row(safe_loads(raw))
            except JsonProblem:
                return False
    return False


def as_chat_pair(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pair as two OpenAI chat examples (prompt + preferred, prompt + not preferred) whose only
    trained message is the answer: an assistant message of the prompt gets weight 0."""
    inp = row["input"]
    prompt = [{**m, "weight": 0} if isinstance(m, dict) and m.get("role") == "assistant" else m
              for m in inp["messages"]]
    extra = {k: inp[k] for k in ("tools", "parallel_tool_calls") if inp.get(k) is not None}
    return ({"messages": [*prompt, row["preferred_output"][0]], **extra},
            {"messages": [*prompt, row["non_preferred_output"][0]], **extra})


def _shape_problems(row: Any) -> list[tuple[str, str]]:
    """What keeps a line from being a preference pair at all (before its messages are checked)."""
    if not isinstance(row, dict):
        return [("data_type", "each line is a JSON object")]
    out = [("example_unrecognized_key", k) for k in row if k not in PREFERENCE_KEYS]
    inp = row.get("input")
    if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list) or not inp["messages"]:
        out.append(("preference_missing_input", "input.messages must be a non-empty list of messages"))
    else:
        out += [("example_unrecognized_key", f"input.{k}") for k in inp if k not in INPUT_KEYS]
    for side in SIDES:
        value = row.get(side)
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
                and value[0].get("role") == "assistant"):
            out.append(("preference_bad_output", f"{side} must be a list of exactly one assistant message"))
    if not out and _same(row["preferred_output"][0], row["non_preferred_output"][0]):
        out.append(("preference_same_outputs", "the preferred and the non-preferred answers are the same"))
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(m: dict[str, Any]) -> str:
        calls = [(c.get("function") or {}) for c in m.get("tool_calls") or [] if isinstance(c, dict)]
        return json.dumps([m.get("content") or "", [(f.get("name"), f.get("arguments")) for f in calls]])

    return key(a) == key(b)


def validate_preference(text: str, count_tokens: Callable[[str], int], *, model: str = "gpt-4o-mini",
                        training_price_per_m: float | None = None) -> ValidationReport:
    """A preference JSONL file: each line's shape, then its prompt and both answers by every rule of
    the chat validator (core.datasets.validate_jsonl), errors on the pair's own line number."""
    report = ValidationReport(model=model, token_limit=token_limit(model), training_price_per_m=training_price_per_m)
    report.format = "preference"
    chat_lines: list[str] = []
    origin: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        report.examples += 1
        try:
            row = safe_loads(raw)
        except JsonProblem as exc:
            report.add_error(number, "invalid_json", exc.message[:200])
            continue
        problems = _shape_problems(row)
        for kind, detail in problems:
            report.add_error(number, kind, detail)
        if problems:
            continue
        for side, example in zip(SIDES, as_chat_pair(row), strict=True):
            chat_lines.append(json.dumps(example))
            origin.append((number, side))
    inner = validate_jsonl("\n".join(chat_lines), count_tokens, model=model)
    for e in inner.errors:
        if e["line"] == 0:
            continue  # about the whole synthetic file (its size): counted here on the pairs instead
        number, side = origin[e["line"] - 1]
        report.add_error(number, e["kind"], f"{side}: {e['detail']}" if e.get("detail") else side)
    report.errors.sort(key=lambda e: e["line"])
    report.warnings = [w for w in inner.warnings if w["kind"] != "examples_over_token_limit"]
    if inner.over_limit:
        report.over_limit = inner.over_limit
        report.warnings.append({"kind": "answers_over_token_limit", "examples": inner.over_limit,
                                "detail": f"prompt + answer over {report.token_limit} tokens"})
    if report.examples < MIN_EXAMPLES:
        report.add_error(0, "too_few_examples", f"{report.examples} pairs; fine-tuning needs at least {MIN_EXAMPLES}")
    report.error_counts = dict(Counter(e["kind"] for e in report.errors))
    report.tokens_per_example = inner.tokens_per_example  # per side: prompt + one answer
    report.assistant_tokens_per_example = inner.assistant_tokens_per_example
    report.n_epochs = default_epochs(report.examples)
    report.billed_tokens = inner.billed_tokens // max(1, inner.n_epochs) * report.n_epochs
    return report
