"""A decided chat completion as OpenAI's server-sent events (`chat.completion.chunk`s, then
`data: [DONE]`). The gateway decides on the buffered answer, so the events follow at once: the
client's time to first token includes every lower tier's full answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

_PIECE = re.compile(r"\S+\s*|\s+")


def _chunk(response: dict[str, Any], delta: dict[str, Any], finish: str | None = None,
           logprobs: Any = None) -> bytes:
    body = {"id": response.get("id"), "object": "chat.completion.chunk", "created": response.get("created"),
            "model": response.get("model"), "system_fingerprint": response.get("system_fingerprint"),
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def sse_events(response: dict[str, Any], *, include_usage: bool = False) -> Iterator[bytes]:
    """The events of one answer: the role, the content in pieces, each tool call whole, the finish
    reason (with the logprobs when the answer has them), the usage when asked for, [DONE]."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    yield _chunk(response, {"role": "assistant", "content": ""})
    for piece in _PIECE.findall(message.get("content") or ""):
        yield _chunk(response, {"content": piece})
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        yield _chunk(response, {"tool_calls": [{"index": i, "id": call.get("id"), "type": "function",
                                                "function": {"name": fn.get("name"),
                                                             "arguments": fn.get("arguments", "")}}]})
    yield _chunk(response, {}, choice.get("finish_reason") or "stop", choice.get("logprobs"))
    if include_usage:
        body = {"id": response.get("id"), "object": "chat.completion.chunk", "created": response.get("created"),
                "model": response.get("model"), "system_fingerprint": response.get("system_fingerprint"),
                "choices": [], "usage": response.get("usage")}
        yield b"data: " + orjson.dumps(body) + b"\n\n"
    yield b"data: [DONE]\n\n"
