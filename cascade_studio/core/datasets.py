"""Fine-tuning datasets: build chat examples from curated trajectories, split them, and validate a
JSONL file with every check of OpenAI's chat fine-tuning data preparation guide."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from cascade_studio.core.episode import tool_turn_problems
from cascade_studio.core.jsonl import JsonProblem
from cascade_studio.core.jsonl import loads as safe_loads

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "function_call", "tool_calls", "tool_call_id", "weight", "refusal"}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
MIN_EXAMPLES = 10
# OpenAI's default-epochs rule (chat fine-tuning data preparation guide)
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
TOKEN_LIMITS = {"gpt-4o-mini": 65_536, "gpt-4o": 65_536, "gpt-4.1": 65_536, "gpt-4.1-mini": 65_536,
                "gpt-4.1-nano": 65_536, "gpt-3.5-turbo": 16_385}
DEFAULT_TOKEN_LIMIT = 16_385
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")  # gpt-4o-2024-08-06, gpt-3.5-turbo-0125


def base_model_id(model: str) -> str:
    """The family a model id belongs to, for token limits and training prices: a fine-tune
    (`ft:gpt-4o-mini-2024-07-18:org:suffix:id`) is its base, a dated snapshot its alias."""
    name = model.strip()
    if name.startswith("ft:"):
        parts = name.split(":")
        name = parts[1] if len(parts) > 1 else ""
    return _SNAPSHOT.sub("", name)


def token_limit(model: str) -> int:
    return TOKEN_LIMITS.get(base_model_id(model), DEFAULT_TOKEN_LIMIT)


def training_price(prices: dict[str, float], model: str) -> float | None:
    """A training price by exact id, else by the model's base (snapshot or fine-tune)."""
    name = model.strip()
    if name in prices:
        return prices[name]
    if name.startswith("ft:") and len(name.split(":")) > 1 and name.split(":")[1] in prices:
        return prices[name.split(":")[1]]
    return prices.get(base_model_id(name))


@dataclass
class SourceTrajectory:
    task_id: str
    category: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    content: str | None
    tool_calls: list[dict[str, Any]]  # parsed: {"id", "name", "arguments"}


def assistant_message(t: SourceTrajectory, strategy: str) -> dict[str, Any]:
    """strategy "final": the answer or the tool calls only; "reasoning": keep the teacher's text
    (its reasoning before a call) in the assistant message."""
    msg: dict[str, Any] = {"role": "assistant"}
    if t.tool_calls:
        msg["content"] = t.content if strategy == "reasoning" and t.content else None
        msg["tool_calls"] = [{"id": c.get("id") or f"call_{i}", "type": "function",
                              "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                             for i, c in enumerate(t.tool_calls)]
    else:
        msg["content"] = t.content or ""
    return msg


def example_messages(messages: list[dict[str, Any]], system_prompt: str | None) -> list[dict[str, Any]]:
    """A trajectory's request messages as its example starts, `system_prompt` replacing the system
    (and developer) messages when given."""
    kept = [m for m in messages if not (system_prompt is not None and m.get("role") in ("system", "developer"))]
    return [{"role": "system", "content": system_prompt}, *kept] if system_prompt else kept


def dedupe_key(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    """Examples with the same prompt (messages as in `example_messages`) and tools are duplicates."""
    return hashlib.sha1(json.dumps([messages, tools], sort_keys=True).encode()).hexdigest()


def make_example(t: SourceTrajectory, messages: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
    """The OpenAI chat example of one trajectory whose prompt is `messages` (`example_messages`)."""
    example: dict[str, Any] = {"messages": [*messages, assistant_message(t, strategy)]}
    if t.tools:
        example["tools"] = t.tools
        example["parallel_tool_calls"] = len(t.tool_calls) > 1
    return example


def build_examples(trajs: list[SourceTrajectory], *, strategy: str = "final", system_prompt: str | None = None,
                   dedupe: bool = True, kept_task_ids: list[str] | None = None
                   ) -> tuple[list[dict[str, Any]], list[str], int]:
    """(OpenAI chat examples, their categories, duplicates dropped). `kept_task_ids`, when given,
    receives the task id of each example kept. Of duplicates, the one with the smallest task id is
    kept (in the place of the first), whatever order they come in. (A build streams the same steps:
    services.datasets.)"""
    examples: list[dict[str, Any]] = []
    cats: list[str] = []
    tasks: list[str] = []
    seen: dict[str, int] = {}
    dropped = 0
    for t in trajs:
        messages = example_messages(t.messages, system_prompt)
        key = dedupe_key(messages, t.tools)
        if dedupe and key in seen:
            dropped += 1
            at = seen[key]
            if t.task_id < tasks[at]:
                examples[at], cats[at], tasks[at] = make_example(t, messages, strategy), t.category, t.task_id
            continue
        seen[key] = len(examples)
        examples.append(make_example(t, messages, strategy))
        cats.append(t.category)
        tasks.append(t.task_id)
    if kept_task_ids is not None:
        kept_task_ids.extend(tasks)
    return examples, cats, dropped


def episode_example(messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                    turns: list[tuple[SourceTrajectory, list[dict[str, Any]]]], strategy: str, *,
                    last_turn_only: bool = False) -> dict[str, Any]:
    """One multi-turn OpenAI chat example of an episode: the prompt `messages`, then every step's
    assistant turn (a target) and the tool messages that answered it. `last_turn_only` keeps the
    earlier turns as context with weight 0."""
    out = list(messages)
    parallel = False
    for n, (step, tool_messages) in enumerate(turns):
        turn = assistant_message(step, strategy)
        if last_turn_only and n < len(turns) - 1:
            turn["weight"] = 0
        parallel = parallel or len(step.tool_calls) > 1
        out.append(turn)
        out.extend(tool_messages)
    example: dict[str, Any] = {"messages": out}
    if tools:
        example["tools"] = tools
        example["parallel_tool_calls"] = parallel
    return example


def stratified_split(categories: list[str], validation_share: float, seed: int,
                     keys: list[str] | None = None) -> tuple[list[int], list[int]]:
    """Indices for train and validation, the same share of every category in validation.

    With `keys` (a stable name per item: its task id) the split depends only on which items there
    are and the seed, not on the order they come in: a workspace's trajectories are recorded in the
    order their answers arrived, which a concurrent collection does not fix, and the same dataset
    (seed, trajectories) must always hold out the same tasks."""
    rng = random.Random(seed)
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        by_cat.setdefault(c, []).append(i)
    train, valid = [], []
    for cat in sorted(by_cat):
        idx = by_cat[cat][:] if keys is None else sorted(by_cat[cat], key=lambda i: keys[i])
        rng.shuffle(idx)
        k = int(round(len(idx) * validation_share))
        if validation_share > 0 and k == 0 and len(idx) >= 2:
            k = 1
        valid += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(valid)


SHAREGPT_TAGS = {"human", "gpt", "function_call", "observation"}


def to_sharegpt(example: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT (LLaMA-Factory / Axolotl) conversation with function calls.

    Turns alternate: human/observation, then gpt/function_call. An assistant turn's tool calls
    become one function_call turn (a JSON object, or a list for parallel calls); text the assistant
    wrote before its calls (the "reasoning" strategy) goes in front as `<think>...</think>`, the
    form LLaMA-Factory reads thoughts from.
    """
    role_map = {"user": "human", "assistant": "gpt", "tool": "observation"}
    conv: list[dict[str, str]] = []
    system = None
    for m in example["messages"]:
        if m["role"] in ("system", "developer"):
            system = m.get("content")
            continue
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                     for c in m["tool_calls"]]
            value = json.dumps(calls[0] if len(calls) == 1 else calls)
            thought = m.get("content")
            if isinstance(thought, str) and thought.strip():
                value = f"<think>{thought}</think>{value}"
            conv.append({"from": "function_call", "value": value})
            continue
        if m["role"] == "tool" and conv and conv[-1]["from"] == "observation":
            conv[-1]["value"] += "\n" + (m.get("content") or "")  # parallel results: one observation turn
            continue
        conv.append({"from": role_map.get(m["role"], m["role"]), "value": m.get("content") or ""})
    out: dict[str, Any] = {"conversations": conv}
    if system:
        out["system"] = system
    if example.get("tools"):
        out["tools"] = json.dumps([t["function"] for t in example["tools"]])
    return out


def detect_format(text: str) -> str:
    """"sharegpt" when the first JSON object line has `conversations` and no `messages`, else "openai"."""
    for raw in text.split("\n"):
        if raw.strip():
            try:
                first = safe_loads(raw)
            except JsonProblem:
                return "openai"
            if isinstance(first, dict) and "conversations" in first and "messages" not in first:
                return "sharegpt"
            return "openai"
    return "openai"


def validate_sharegpt(text: str, count_tokens: Callable[[str], int]) -> ValidationReport:
    """ShareGPT's own rules (LLaMA-Factory's loader): a non-empty `conversations` list of
    {"from", "value"} turns alternating human/observation then gpt/function_call, ending with the
    model; function calls are JSON; `tools` a JSON list in a string; `system` a string."""
    report = ValidationReport(model="", token_limit=DEFAULT_TOKEN_LIMIT)
    report.format = "sharegpt"
    totals, assistants = [], []
    error = report.add_error
    for number, ex in _parsed_lines(text, report):
        conv = ex.get("conversations") if isinstance(ex, dict) else None
        if not isinstance(conv, list) or not conv:
            error(number, "sharegpt_missing_conversations")
            continue
        if not isinstance(ex.get("system", ""), str):
            error(number, "sharegpt_bad_system", "system must be a string")
        if "tools" in ex:
            try:
                tools = safe_loads(ex["tools"]) if isinstance(ex["tools"], str) else None
            except JsonProblem:
                tools = None
            if not isinstance(tools, list):
                error(number, "sharegpt_bad_tools", "tools must be a JSON list of functions, as a string")
        bad, total, assistant = False, 0, 0
        for at, turn in enumerate(conv):
            if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_TAGS or not isinstance(turn.get("value"), str):
                error(number, "sharegpt_bad_turn", f"turn {at + 1}: needs from (human, gpt, function_call or "
                                                   "observation) and a string value")
                bad = True
                break
            expected = ("human", "observation") if at % 2 == 0 else ("gpt", "function_call")
            if turn["from"] not in expected:
                error(number, "sharegpt_bad_order", f"turn {at + 1} is {turn['from']}; expected {' or '.join(expected)}")
                bad = True
                break
            if turn["from"] == "function_call":
                value = turn["value"]
                if value.startswith("<think>") and "</think>" in value:
                    value = value.split("</think>", 1)[1]
                try:
                    calls = safe_loads(value)
                except JsonProblem:
                    calls = None
                calls = calls if isinstance(calls, list) else [calls]
                if not all(isinstance(c, dict) and isinstance(c.get("name"), str) and "arguments" in c for c in calls):
                    error(number, "sharegpt_bad_function_call", turn["value"][:80])
                    bad = True
            n = count_tokens(turn["value"])
            total += n
            if at % 2 == 1:
                assistant += n
        if not bad and len(conv) % 2 != 0:
            error(number, "sharegpt_bad_order", "the last turn must be the model's (gpt or function_call)")
            bad = True
        if not bad:
            totals.append(total + sum(count_tokens(v) for v in (ex.get("system"), ex.get("tools")) if isinstance(v, str)))
            assistants.append(assistant)
    if report.examples < MIN_EXAMPLES:
        error(0, "too_few_examples", f"{report.examples} examples; fine-tuning needs at least {MIN_EXAMPLES}")
    report.error_counts = dict(Counter(e["kind"] for e in report.errors))
    report.tokens_per_example = _stats(totals)
    report.assistant_tokens_per_example = _stats(assistants)
    report.n_epochs = default_epochs(report.examples)
    return report


# -- validation ------------------------------------------------------------------------------------
@dataclass
class ValidationReport:
    examples: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    tokens_per_example: dict[str, float] = field(default_factory=dict)
    assistant_tokens_per_example: dict[str, float] = field(default_factory=dict)
    over_limit: int = 0
    token_limit: int = DEFAULT_TOKEN_LIMIT
    n_epochs: int = TARGET_EPOCHS
    billed_tokens: int = 0
    estimated_cost_usd: float | None = None
    training_price_per_m: float | None = None
    model: str = ""
    format: str = "openai"  # or "sharegpt" (validated by its own rules; not accepted by OpenAI's API)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add_error(self, line: int, kind: str, detail: str = "") -> None:
        self.errors.append({"line": line, "kind": kind, **({"detail": detail} if detail else {})})

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def default_epochs(n: int) -> int:
    """OpenAI's cookbook rule: 3 epochs, more for small sets (floor of 100 / n, at most 25),
    fewer for large ones (25,000 // n, at least 1)."""
    epochs = TARGET_EPOCHS
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // max(n, 1))
    elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return epochs


def _parsed_lines(text: str, report: ValidationReport) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of each non-blank line; a line that is not JSON is reported."""
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        report.examples += 1
        try:
            yield number, safe_loads(raw)
        except JsonProblem as exc:
            report.add_error(number, "invalid_json", exc.message[:200])


def backend_refusal(report: ValidationReport, backend: str, method: str | None = None) -> str | None:
    """Why a fine-tune backend must not be given this dataset (None: it may): checked before anything
    is uploaded or started. `method` "dpo" trains on preference pairs, anything else on chat examples."""
    if report.format == "preference" and backend == "openai":
        return ("the dataset holds preference pairs (DPO); the app sends supervised jobs only to OpenAI-compatible "
                "endpoints: train them with --backend local --method dpo (or another backend's DPO)")
    if report.format == "preference" and method != "dpo":
        return "the dataset holds preference pairs: train them with --method dpo"
    if method == "dpo" and report.format != "preference":
        return ("DPO trains on preference pairs (input, preferred_output, non_preferred_output): build them with "
                "`dataset build --format preference`")
    if report.format == "sharegpt":
        return ("the dataset is in ShareGPT format, which neither OpenAI's fine-tuning API nor the local "
                "trainer reads; build it with --format openai (ShareGPT is for LLaMA-Factory or Axolotl)")
    if not report.ok:
        kinds = ", ".join(f"{k} x{v}" for k, v in sorted(report.error_counts.items()))
        first = report.errors[0]
        where = f"line {first['line']}: " if first.get("line") else ""
        return (f"the dataset has {len(report.errors)} error(s) ({kinds}); first: {where}{first['kind']}"
                f"{' (' + first['detail'] + ')' if first.get('detail') else ''}. Fix it and validate again")
    return None


def example_tokens(messages: list[dict[str, Any]], count_tokens: Callable[[str], int]) -> tuple[int, int]:
    """(tokens of the example, tokens of its assistant turns), counted as OpenAI's data-preparation
    recipe does: 3 per message, the tokens of every string value (the role too), 1 more for a
    name, 3 to prime the reply. Content that is not a string (parts) counts as its JSON; tool
    calls count their name and arguments (the recipe predates them). The assistant count is the
    recipe's: the assistant messages' content (and here their tool calls)."""
    total, assistant = 3, 0
    for m in messages:
        n = 3
        content = m.get("content")
        body = count_tokens(content) if isinstance(content, str) else (
            count_tokens(json.dumps(content)) if content else 0)
        body += sum(count_tokens(c["function"]["name"]) + count_tokens(c["function"]["arguments"])
                    for c in m.get("tool_calls") or [])
        n += body + count_tokens(str(m.get("role", "")))
        for key in ("name", "tool_call_id"):
            if isinstance(m.get(key), str):
                n += count_tokens(m[key])
        if "name" in m:
            n += 1
        total += n
        if m.get("role") == "assistant":
            assistant += body
    return total, assistant


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    return {"min": s[0], "max": s[-1], "mean": sum(s) / len(s), "median": s[len(s) // 2],
            "p5": s[int(0.05 * (len(s) - 1))], "p95": s[int(0.95 * (len(s) - 1))]}


def validate_jsonl(text: str, count_tokens: Callable[[str], int], *, model: str = "gpt-4o-mini",
                   training_price_per_m: float | None = None) -> ValidationReport:
    if detect_format(text) == "sharegpt":
        report = validate_sharegpt(text, count_tokens)
        report.model = model
        return report
    report = ValidationReport(model=model, token_limit=token_limit(model), training_price_per_m=training_price_per_m)
    totals, assistants = [], []
    no_system = no_user = 0
    error = report.add_error
    for number, ex in _parsed_lines(text, report):
        if not isinstance(ex, dict):
            error(number, "data_type")
            continue
        messages = ex.get("messages")
        if not isinstance(messages, list) or not messages:
            error(number, "missing_messages_list")
            continue
        for key in ex:
            if key not in EXAMPLE_KEYS:
                error(number, "example_unrecognized_key", key)
        bad = False
        for m in messages:
            if not isinstance(m, dict) or "role" not in m:
                error(number, "message_missing_key", "role")
                bad = True
                continue
            if "content" not in m and not m.get("tool_calls") and not m.get("function_call"):
                error(number, "message_missing_key", "content")
                bad = True
            for key in m:
                if key not in MESSAGE_KEYS:
                    error(number, "message_unrecognized_key", key)
                    bad = True
            if m.get("role") not in ROLES:
                error(number, "unrecognized_role", str(m.get("role")))
                bad = True
            content = m.get("content")
            if (content is None and not m.get("tool_calls") and not m.get("function_call")) or \
                    (content is not None and not isinstance(content, str | list)):
                error(number, "missing_content")
                bad = True
            calls = m.get("tool_calls")
            if calls is not None and not isinstance(calls, list):
                error(number, "tool_calls_not_a_list", str(calls)[:80])
                bad = True
                calls = []
            for call in calls or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                    error(number, "tool_call_name_not_a_string", str(call)[:80])
                    bad = True
                    continue
                args = fn.get("arguments")
                parsed = False
                if isinstance(args, str):
                    try:
                        safe_loads(args)
                        parsed = True
                    except JsonProblem:
                        pass
                if not parsed:
                    error(number, "tool_call_arguments_not_json", str(args)[:80])
                    bad = True
            if "name" in m and not isinstance(m["name"], str):
                error(number, "message_name_not_a_string", str(m["name"])[:80])
                bad = True
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            error(number, "example_missing_assistant_message")
            bad = True
        for kind, detail in tool_turn_problems(messages):
            error(number, kind, detail)
            bad = True
        if not any(isinstance(m, dict) and m.get("role") in ("system", "developer") for m in messages):
            no_system += 1
        if not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
            no_user += 1
        if bad:
            continue
        total, assistant = example_tokens(messages, count_tokens)
        if ex.get("tools"):
            total += count_tokens(json.dumps(ex["tools"]))
        totals.append(total)
        assistants.append(assistant)
    if no_system:
        report.warnings.append({"kind": "missing_system_message", "examples": no_system})
    if no_user:
        report.warnings.append({"kind": "missing_user_message", "examples": no_user})
    if report.examples < MIN_EXAMPLES:
        error(0, "too_few_examples", f"{report.examples} examples; fine-tuning needs at least {MIN_EXAMPLES}")
    report.error_counts = dict(Counter(e["kind"] for e in report.errors))
    report.tokens_per_example = _stats(totals)
    report.assistant_tokens_per_example = _stats(assistants)
    report.over_limit = sum(t > report.token_limit for t in totals)
    if report.over_limit:
        report.warnings.append({"kind": "examples_over_token_limit", "examples": report.over_limit,
                                "detail": f"truncated to {report.token_limit} tokens in training"})
    report.n_epochs = default_epochs(report.examples)
    report.billed_tokens = sum(min(report.token_limit, t) for t in totals) * report.n_epochs
    if training_price_per_m is not None:
        report.estimated_cost_usd = report.billed_tokens / 1e6 * training_price_per_m
    return report
