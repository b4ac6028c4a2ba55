"""A GPT-like toy tokenizer: pieces concatenate back to the exact text, long words split like BPE."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\s+")


def tokenize(text: str) -> list[str]:
    return list(_tokenize(text))


@lru_cache(maxsize=65536)
def _tokenize(text: str) -> tuple[str, ...]:
    pieces: list[str] = []
    for p in _PIECE.findall(text):
        core = p.lstrip(" ")
        if len(core) > 7 and core.isalpha():
            lead = p[: len(p) - len(core)]
            chunks = [core[i:i + 5] for i in range(0, len(core), 5)]
            pieces.append(lead + chunks[0])
            pieces.extend(chunks[1:])
        else:
            pieces.append(p)
    return tuple(pieces)


def count_tokens(text: str) -> int:
    return len(_tokenize(text)) if text else 0


def count_message_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """Roughly OpenAI's accounting: ~3 tokens per message plus its content, plus tool schemas."""
    total = 3
    for m in messages:
        total += 3
        content = m.get("content")
        if isinstance(content, str):
            total += count_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += count_tokens(part["text"])
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            total += count_tokens(str(fn.get("name", ""))) + count_tokens(str(fn.get("arguments", "")))
    if tools:
        total += count_tokens(json.dumps(tools, separators=(",", ":"))) // 2 + 8
    return total
