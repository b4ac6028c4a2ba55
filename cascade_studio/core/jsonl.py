"""Safe JSON for files from elsewhere: finite numbers only, bounded nesting, one object a line.

Every importer parses through here, so a hostile or damaged file gives a message naming the line
and the problem, never a RecursionError, a NaN that breaks a sum later, or a traceback.
Pure functions over text; reading files (and refusing directories and FIFOs) is the services
layer's job (`services.input_files`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

MAX_DEPTH = 64  # deeper than any real task, trajectory, dataset or catalog; far below Python's recursion limit


class JsonProblem(ValueError):
    """Text that is not acceptable JSON. `line` is set by the line readers (1-based)."""

    def __init__(self, message: str, line: int | None = None, *, syntax: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.syntax = syntax  # not JSON at all (cut short, say), rather than JSON we refuse


def _no_constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not a number JSON allows (non-finite numbers are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonProblem(f"{text[:40]} is too large a number (it would be infinite)")
    return value


def _depth_at_most(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _lone_surrogate_problem(text: str) -> JsonProblem:
    """Where the first unpaired \\uD800-\\uDFFF escape is (a pair spells one character; half a pair is none)."""
    matches = list(_SURROGATE_ESCAPE.finditer(text))
    for i, m in enumerate(matches):
        code = int(m.group()[2:], 16)
        nxt = matches[i + 1] if i + 1 < len(matches) else None
        prev = matches[i - 1] if i else None
        paired = (code < 0xDC00 and nxt is not None and nxt.start() == m.end() and int(nxt.group()[2:], 16) >= 0xDC00) \
            or (code >= 0xDC00 and prev is not None and prev.end() == m.start() and int(prev.group()[2:], 16) < 0xDC00)
        if not paired:
            line = text.count("\n", 0, m.start()) + 1
            column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            return JsonProblem(f"{m.group()} at column {column} is half of a surrogate pair, which is not text: it "
                               "cannot be stored or sent. Remove it, or give the whole character", line)
    return JsonProblem("contains half of a surrogate pair, which is not text: it cannot be stored or sent. "
                       "Remove it, or give the whole character")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads that refuses NaN, Infinity, numbers that overflow to infinity, integers of more
    digits than Python converts, and nesting deeper than `max_depth`. Raises JsonProblem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonProblem(f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except JsonProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", syntax=True) from None
    except RecursionError:
        raise JsonProblem(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise JsonProblem(f"not acceptable JSON ({str(exc)[:80]})") from None
    if text.count("[") + text.count("{") > max_depth and not _depth_at_most(value, max_depth):
        raise JsonProblem(f"nested deeper than {max_depth} levels")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise _lone_surrogate_problem(text)
    return value


def iter_objects(lines: Iterable[str], *, max_depth: int = MAX_DEPTH) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a line that is not one JSON object raises
    JsonProblem with its `line`. Streams: `lines` may be an open file."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = loads(line, max_depth=max_depth)
        except JsonProblem as exc:
            raise JsonProblem(exc.message, number) from None
        if not isinstance(row, dict):
            raise JsonProblem("each line must be a JSON object", number)
        yield number, row


def split_lines(text: str) -> list[str]:
    """Lines as the readers count them (\\n only, so numbers match an editor's)."""
    return text.split("\n")


def is_number(value: Any) -> bool:
    """A real JSON number (not a bool) that is finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
