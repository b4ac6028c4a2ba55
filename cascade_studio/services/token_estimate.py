"""Input tokens of requests not yet sent, without a tokenizer in the process that sends them.

A workspace keeps, per encoding, how many tokens its tasks' message text and tool definitions
take per byte, counted with the bundled tokenizer on a sample of the tasks when they are imported
(`calibrate`). An estimate is then the request's bytes times those rates, plus the chat format's
4 tokens a message: within a few percent of counting every token of the same requests, where
loading the tokenizer costs ~0.4 s and ~73 MB (more than a whole collection run needs otherwise).
A workspace whose tasks came in before this (or through a path that does not calibrate) is
calibrated on first use, once, and keeps the rates."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, TypeVar

from cascade_studio.core.tasks import Task
from cascade_studio.store.workspace import Workspace

DEFAULT_ENCODING = "o200k_base"  # what import calibrates: gpt-4o, gpt-4.1, gpt-5, the o-series
MESSAGE_OVERHEAD = 4  # tokens of the chat format around each message
CALIBRATION_SAMPLE = 200  # tasks of an import whose tokens are counted
_KEY = "token_calibration:"
T = TypeVar("T")
# a text's first characters are enough for a rate; BPE on one long run without spaces grows faster
# than its length (a 4 MB run would take ~20 s), so a hostile task cannot stall an import
_MAX_COUNTED_CHARS = 32_768


@dataclass
class Calibration:
    """Token and byte totals over the counted sample (sums, so later imports add to them)."""

    text_tokens: int = 0
    text_bytes: int = 0
    tool_tokens: int = 0
    tool_bytes: int = 0
    tasks: int = 0

    def text_rate(self) -> float:
        return self.text_tokens / self.text_bytes if self.text_bytes else 0.25

    def tool_rate(self) -> float:
        return self.tool_tokens / self.tool_bytes if self.tool_bytes else self.text_rate()

    def add(self, other: Calibration) -> Calibration:
        return Calibration(self.text_tokens + other.text_tokens, self.text_bytes + other.text_bytes,
                           self.tool_tokens + other.tool_tokens, self.tool_bytes + other.tool_bytes,
                           self.tasks + other.tasks)

    def estimate(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> float:
        """Estimated input tokens of a request with these messages and tools."""
        text = sum(len(_text(m).encode()) for m in messages)
        tool_bytes = len(json.dumps(tools).encode()) if tools else 0
        return text * self.text_rate() + MESSAGE_OVERHEAD * len(messages) + tool_bytes * self.tool_rate()


def _text(message: dict[str, Any]) -> str:
    return str(message.get("content") or "")


def evenly(items: list[T], size: int) -> list[T]:
    """At most `size` of `items`, spread evenly over them (the first included)."""
    return items[:: max(1, len(items) // size)][:size]


def measure(tasks: list[Task], encoding: str = DEFAULT_ENCODING) -> Calibration:
    """Count the tokens of a sample of these tasks with the bundled tokenizer (loads it)."""
    from cascade_studio.services.tokenizer import encoding as load

    enc = load(encoding)

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    cal = Calibration()
    for task in evenly(tasks, CALIBRATION_SAMPLE):
        for m in task.messages:
            text = _text(m)[:_MAX_COUNTED_CHARS]
            cal.text_tokens += count(text)
            cal.text_bytes += len(text.encode())
        if task.tools:
            text = json.dumps(task.tools)[:_MAX_COUNTED_CHARS]
            cal.tool_tokens += count(text)
            cal.tool_bytes += len(text.encode())
        cal.tasks += 1
    return cal


def stored(ws: Workspace, encoding: str) -> Calibration | None:
    raw = ws.get_meta(_KEY + encoding)
    if not raw:
        return None
    try:
        return Calibration(**{k: int(v) for k, v in json.loads(raw).items() if k in Calibration.__dataclass_fields__})
    except (ValueError, TypeError, AttributeError):
        return None  # a damaged value is counted again, never trusted


def _store(ws: Workspace, encoding: str, cal: Calibration) -> None:
    try:
        ws.set_meta(_KEY + encoding, json.dumps(cal.__dict__))
    except sqlite3.OperationalError:
        pass  # a read-only or busy workspace: the rates are counted again next time, nothing is lost


def calibrate(ws: Workspace, tasks: list[Task], encoding: str = DEFAULT_ENCODING) -> Calibration:
    """After an import: count a sample of the imported tasks and add it to the workspace's rates."""
    if not tasks:
        return stored(ws, encoding) or Calibration()
    cal = (stored(ws, encoding) or Calibration()).add(measure(tasks, encoding))
    _store(ws, encoding, cal)
    return cal


def calibration(ws: Workspace, encoding: str, tasks: list[Task]) -> Calibration:
    """The workspace's rates for this encoding; counted once on these tasks where it has none."""
    return stored(ws, encoding) or calibrate(ws, tasks, encoding)
