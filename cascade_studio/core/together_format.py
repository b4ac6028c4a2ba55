"""Training files as Together AI's fine-tuning reads them: the conversion of this app's OpenAI-format
examples (chat `messages` + `tools`, and OpenAI's preference format), the checks Together's client
runs before an upload (one format per file, no extra columns, roles and turn order, 0/1 weights,
one assistant message per preference output) and the checks against a model's limits
(`GET /fine-tunes/models/limits`). Pure: the caller reads the file and asks the API."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_FILE_BYTES = int(4.9 * 2**30)  # Together's client refuses larger files
MIN_EXAMPLES = 1
ROLES = ("system", "user", "assistant", "tool")
# format -> (required columns, extra columns allowed)
FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "conversation": (("messages",), ("tools",)),
    "preference": (("input", "preferred_output", "non_preferred_output"), ()),
    "general": (("text",), ()),
    "instruction": (("prompt", "completion"), ()),
}
_MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "weight")
MAX_ERRORS = 50


@dataclass
class TogetherReport:
    """One file checked by Together's rules: its format, size and the problems found (line, text)."""

    format: str | None = None
    examples: int = 0
    converted: int = 0  # lines that needed converting (OpenAI-only fields, roles, null content)
    uses_tools: bool = False
    uses_vision: bool = False
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, line: int, problem: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((line, problem))

    def summary(self) -> str:
        if self.ok:
            return f"{self.examples} {self.format} examples"
        line, text = self.errors[0]
        return f"{len(self.errors)}{'+' if len(self.errors) >= MAX_ERRORS else ''} problem(s); first: " \
               f"{f'line {line}: ' if line else ''}{text}"


# -- conversion -------------------------------------------------------------------------------------
def _message(m: Any) -> Any:
    """An OpenAI chat message as Together takes it: `developer` is `system`, a null content (an
    assistant turn that only calls tools) is "", and fields Together does not read are dropped."""
    if not isinstance(m, dict):
        return m
    out = {k: m[k] for k in _MESSAGE_KEYS if k in m}
    if out.get("role") == "developer":
        out["role"] = "system"
    if out.get("content", "") is None or ("content" not in out and out.get("role") == "assistant"):
        out["content"] = ""
    return out


def to_together(example: Any) -> Any:
    """One training line of this app (OpenAI's chat or preference format) in Together's format; a
    line that is already Together's comes back equal. Lines that are not objects come back as they
    are, for the checks to name."""
    if not isinstance(example, dict):
        return example
    if "messages" in example and "input" not in example:
        out: dict[str, Any] = {"messages": [_message(m) for m in example["messages"]]
                               if isinstance(example["messages"], list) else example["messages"]}
        if example.get("tools"):
            out["tools"] = example["tools"]
        # OpenAI-only columns (parallel_tool_calls, metadata...) are dropped; a legacy `functions`
        # column is kept so that the check names it (Together reads `tools` only)
        if "functions" in example:
            out["functions"] = example["functions"]
        return out
    if "input" in example and "preferred_output" in example:
        source = example["input"]
        out = {k: example[k] for k in FORMATS["preference"][0] if k in example}
        if isinstance(source, dict) and isinstance(source.get("messages"), list):
            out["input"] = {"messages": [_message(m) for m in source["messages"]],
                            **({"tools": source["tools"]} if source.get("tools") else {})}
        for side in ("preferred_output", "non_preferred_output"):
            if isinstance(example.get(side), list):
                out[side] = [_message(m) for m in example[side]]
        return out
    return example


def converted_lines(lines: Iterable[bytes]) -> tuple[bytes, int]:
    """A whole file in Together's format and how many lines changed (blank lines dropped)."""
    out, changed = [], 0
    for raw in lines:
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            out.append(raw.rstrip(b"\r\n"))
            continue
        new = to_together(value)
        if new != value:
            changed += 1
        out.append(json.dumps(new, ensure_ascii=False, separators=(",", ":")).encode())
    return b"\n".join(out) + b"\n", changed


# -- checks -----------------------------------------------------------------------------------------
def _check_messages(messages: Any, line: int, report: TogetherReport, where: str = "messages") -> None:
    if not isinstance(messages, list) or not messages:
        report.add(line, f"`{where}` must be a non-empty list of messages")
        return
    previous = None
    for m in messages:
        if not isinstance(m, dict):
            report.add(line, f"`{where}` holds something that is not a message object")
            return
        role = m.get("role")
        if role not in ROLES:
            report.add(line, f"role {role!r} in `{where}`: Together's roles are {', '.join(ROLES)}")
            return
        content = m.get("content")
        if isinstance(content, list):
            report.uses_vision = report.uses_vision or any(
                isinstance(p, dict) and p.get("type") == "image_url" for p in content)
        elif not isinstance(content, str) and not (role == "assistant" and m.get("tool_calls")):
            report.add(line, f"a {role} message in `{where}` has no text content")
            return
        if m.get("tool_calls"):
            report.uses_tools = True
        if "weight" in m and (type(m["weight"]) is not int or m["weight"] not in (0, 1)):
            report.add(line, "a message weight must be 0 or 1")
            return
        if role == previous and role != "tool":
            report.add(line, f"two {role} messages in a row in `{where}`: user and assistant turns must alternate")
            return
        previous = role
    if where == "messages" and messages[0].get("role") not in ("system", "user"):
        report.add(line, "a conversation must start with a system or user message")


def _check_preference(row: dict[str, Any], line: int, report: TogetherReport) -> None:
    source = row["input"]
    if not isinstance(source, dict) or "messages" not in source:
        report.add(line, "`input` must be an object with `messages`")
        return
    if source.get("tools"):
        report.uses_tools = True
    _check_messages(source["messages"], line, report, "input.messages")
    for side in ("preferred_output", "non_preferred_output"):
        value = row[side]
        if not isinstance(value, list) or len(value) != 1:
            report.add(line, f"`{side}` must be a list of exactly one message")
        elif not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            report.add(line, f"`{side}` must hold an assistant message")
        else:
            _check_messages(value, line, report, side)


def check_lines(lines: Iterable[bytes], *, size: int | None = None) -> TogetherReport:
    """Together's checks on a file's lines (already converted with `to_together`)."""
    report = TogetherReport()
    if size is not None and size > MAX_FILE_BYTES:
        report.add(0, f"the file is {size / 2**30:.1f} GB; Together takes at most 4.9 GB")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except UnicodeDecodeError:
            report.add(n, "not UTF-8 text")
            continue
        except ValueError:
            report.add(n, "not a JSON object")
            continue
        if not isinstance(row, dict):
            report.add(n, "not a JSON object")
            continue
        report.examples += 1
        found = [name for name, (required, _) in FORMATS.items() if all(c in row for c in required)]
        if len(found) != 1:
            report.add(n, "columns of several formats: " + ", ".join(found) if found else
                       f"no known format (columns {', '.join(sorted(row)) or 'none'}); Together reads `messages` "
                       "(conversation), `input`/`preferred_output`/`non_preferred_output` (preference), `text` or "
                       "`prompt`/`completion`")
            continue
        kind = found[0]
        required, extra = FORMATS[kind]
        stray = [c for c in row if c not in required and c not in extra]
        if stray:
            report.add(n, f"column(s) Together does not take: {', '.join(stray)}")
        if report.format is None:
            report.format = kind
        elif kind != report.format:
            report.add(n, f"a {kind} example in a {report.format} file: one format per file")
            continue
        if kind == "conversation":
            if row.get("tools"):
                report.uses_tools = True
            _check_messages(row["messages"], n, report)
        elif kind == "preference":
            _check_preference(row, n, report)
        elif not all(isinstance(row[c], str) for c in required):
            report.add(n, f"{' and '.join(required)} must be text")
    if report.examples < MIN_EXAMPLES:
        report.add(0, "the file has no examples")
    return report


# -- a model's limits -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TogetherRun:
    """The choices of a Together job that its model's limits bound."""

    training_type: str = "lora"  # "lora" or "full"
    method: str = "sft"  # "sft" or "dpo"
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    lora_rank: int | None = None
    n_evals: int | None = None


def limit_problems(limits: dict[str, Any], run: TogetherRun, report: TogetherReport | None = None) -> list[str]:
    """Why `run` (and a file described by `report`) does not fit the model's limits; [] when it fits.
    A model whose answer has no `lora_training` (`full_training`) does not offer that training type,
    as Together's client reads it; any other limit the answer leaves out is not checked."""
    model = limits.get("model_name") or "the model"
    problems: list[str] = []
    kind = "full_training" if run.training_type == "full" else "lora_training"
    type_limits = limits.get(kind)
    if not isinstance(type_limits, dict):
        problems.append(f"{model} offers no {'full' if run.training_type == 'full' else 'LoRA'} fine-tuning on Together"
                        f"; choose {'--lora' if run.training_type == 'full' else '--full'}")
        type_limits = {}

    def bound(value: Any, lo: Any, hi: Any, what: str, flag: str) -> None:
        if value is None:
            return
        if isinstance(lo, int | float) and value < lo:
            problems.append(f"{what} {value} is below {model}'s minimum {lo} ({flag})")
        if isinstance(hi, int | float) and value > hi:
            problems.append(f"{what} {value} is above {model}'s maximum {hi} ({flag})")

    bound(run.n_epochs, 1, limits.get("max_num_epochs"), "epochs", "--epochs")
    bound(run.n_evals, 0, limits.get("max_num_evals"), "evaluations", "n_evals")
    bound(run.learning_rate, limits.get("min_learning_rate"), limits.get("max_learning_rate"), "learning rate",
          "--learning-rate")
    max_batch = type_limits.get("max_batch_size_dpo" if run.method == "dpo" else "max_batch_size")
    bound(run.batch_size, type_limits.get("min_batch_size"), max_batch, "batch size", "--batch-size")
    if run.training_type != "full":
        bound(run.lora_rank, 1, type_limits.get("max_rank"), "LoRA rank", "--lora-rank")
    if report is not None:
        if report.uses_tools and limits.get("supports_tools") is False:
            problems.append(f"the file has tool calls or tools, and {model} is not fine-tuned with tools on Together")
        if report.uses_vision and limits.get("supports_vision") is False:
            problems.append(f"the file has images, and {model} takes no images on Together")
        wanted = "preference" if run.method == "dpo" else "conversation"
        if report.format is not None and report.format != wanted and not (
                run.method == "sft" and report.format in ("general", "instruction")):
            problems.append(f"--method {run.method} trains on {wanted} examples; this file has {report.format} "
                            "examples" + (" (build one with `dataset build --format preference`)"
                                          if run.method == "dpo" else " (use --method dpo)"))
    return problems
