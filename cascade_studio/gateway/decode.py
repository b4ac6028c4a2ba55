"""Decode of an answer only what the gateway's decision needs.

A chat completion with logprobs is ~40 KB, nine tenths of it `top_logprobs` and token bytes that
no decision reads; decoding all of it into Python objects took a quarter of the gateway's CPU.
`decision_view` decodes every field except each choice's logprobs as usual and, of the logprobs,
only each content token's text and logprob (msgspec skips the rest without building objects).
The result goes through the same `trajectory_from_response` as a full decode, so the decision,
its confidence and cost are the same; anything unusual (a field of another type, a token without
its text) returns None and the caller decodes the whole answer, which names the problem as before.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson


class _Token(msgspec.Struct):
    token: str
    logprob: float


class _Logprobs(msgspec.Struct):
    content: list[_Token] | None = None


_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_choices = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_logprobs = msgspec.json.Decoder(_Logprobs | None)


def _light_logprobs(raw: msgspec.Raw) -> dict[str, Any] | None:
    lp = _logprobs.decode(raw)
    if lp is None:
        return None
    content = None if lp.content is None else [{"token": t.token, "logprob": t.logprob} for t in lp.content]
    return {"content": content}


def decision_view(raw: bytes) -> dict[str, Any] | None:
    """The answer with each choice's logprobs reduced to its content tokens' token and logprob
    (None when the answer is not of the usual shape: decode it whole instead)."""
    try:
        out: dict[str, Any] = {}
        for key, value in _fields.decode(raw).items():
            if key != "choices":
                out[key] = orjson.loads(memoryview(value))
                continue
            choices = []
            for choice in _choices.decode(value):
                choices.append({k: _light_logprobs(v) if k == "logprobs" else orjson.loads(memoryview(v)) for k, v in choice.items()})
            out[key] = choices
        return out
    except (msgspec.DecodeError, orjson.JSONDecodeError):
        return None
