"""Token logprobs of a simulated answer, rendered straight to the JSON that the API returns.

Per token only the random draw, a few multiplications and the logarithms are computed; everything
that depends on the token's text alone (its alternatives, their order, their escaped JSON and bytes)
is cached, and the floats of a whole answer are formatted by one `orjson.dumps` call. The bytes
are what `orjson.dumps` gives for the same list of dicts (`token_logprobs`), which the chat route
serves through `orjson.Fragment`.
"""

from __future__ import annotations

from functools import lru_cache
from math import log
from typing import TYPE_CHECKING, Any

import orjson

from cascade_studio.sandbox.tokens import _tokenize

if TYPE_CHECKING:
    import random

    from cascade_studio.sandbox.simulator import Profile, Segment

_CONF_RANGES = {"high": (0.0, 1.0), "medium": (0.45, 0.85), "low": (0.12, 0.5)}
_FLOOR = 1e-9


def token_logprobs(segments: list[Segment], profile: Profile, rng: random.Random, top_n: int) -> list[dict[str, Any]]:
    """`choices[0].logprobs.content`: per token its logprob, bytes and `top_n` alternatives."""
    return orjson.loads(token_logprobs_json(segments, profile, rng, top_n))


def token_logprobs_json(segments: list[Segment], profile: Profile, rng: random.Random, top_n: int) -> bytes:
    """The JSON array of `token_logprobs` (the same draws from `rng`, the same bytes as orjson)."""
    # The output alternates between text and floats: statics[0] float statics[1] ... statics[-1].
    statics: list[bytes] = [b"["]
    floats: list[float] = []
    rand = rng.random
    spread = 1.0 - profile.confidence
    extend_statics, append_float, extend_floats = statics.extend, floats.append, floats.extend
    joint = b""  # what goes between the previous token and the next: nothing before the first
    for seg in segments:
        pieces = _tokenize(seg.text)
        alt_pieces = _tokenize(seg.alternative) if seg.alternative else ()
        n_alt = len(alt_pieces)
        conf = seg.confidence
        high, medium = conf == "high", conf == "medium"
        lo, hi = _CONF_RANGES[conf]
        for index, piece in enumerate(pieces):
            if high:
                p = 1.0 - spread * (rand() * 2.0)
                p = 0.55 if p < 0.55 else (0.99995 if p > 0.99995 else p)
            else:
                p = lo + (hi - lo) * rand()
                if index > 0 and medium:
                    p = min(0.995, p + 0.3)  # the first token of a name carries the decision
            layout = _layout(piece, alt_pieces[index] if index < n_alt else None, top_n)
            lp = log(p)
            if not layout.n_alternatives:
                first, rest = layout.ranked(0)
                statics[-1] += joint + first
                extend_statics(rest)
                append_float(lp)
                if top_n:
                    append_float(lp)
                joint = b","
                continue
            # The alternatives share what the token leaves: 60% to the first, then halves.
            remaining = 1.0 - p
            share = 0.6
            logs = []
            pos = 0  # the token's rank: the list is sorted by probability, ties keep the token first
            for _ in range(layout.n_alternatives):
                q = remaining * share
                remaining -= q
                share = 0.5
                if q <= _FLOOR:
                    q = _FLOOR
                if q > p:
                    pos += 1
                logs.append(log(q))
            first, rest = layout.ranked(pos)
            statics[-1] += joint + first
            extend_statics(rest)
            append_float(lp)
            extend_floats(logs[:pos])
            append_float(lp)
            extend_floats(logs[pos:])
            joint = b","
    statics[-1] += b"]"
    if not floats:
        return statics[0]
    out: list[bytes] = [b""] * (2 * len(statics) - 1)
    out[0::2] = statics
    out[1::2] = orjson.dumps(floats)[1:-1].split(b",")
    return b"".join(out)


class _Layout:
    """A token's JSON apart from its floats, for each rank it can take among its alternatives
    (built when first needed: with many alternatives most tokens only ever take the first rank)."""

    __slots__ = ("piece", "alternatives", "n_alternatives", "top_n", "_ranked")

    def __init__(self, piece: str, alternatives: tuple[str, ...], top_n: int) -> None:
        self.piece, self.alternatives, self.top_n = piece, alternatives, top_n
        self.n_alternatives = len(alternatives)
        self._ranked: list[tuple[bytes, tuple[bytes, ...]] | None] = [None] * (len(alternatives) + 1)

    def ranked(self, pos: int) -> tuple[bytes, tuple[bytes, ...]]:
        """(first static, the statics after it) with the token at rank `pos` of its top list."""
        done = self._ranked[pos]
        if done is not None:
            return done
        piece, alternatives = self.piece, self.alternatives
        if not self.top_n:
            parts = [_head(piece), _tail(piece) + b',"top_logprobs":[]}']
        else:
            ranked = [*alternatives[:pos], piece, *alternatives[pos:]]
            parts = [_head(piece), _tail(piece) + b',"top_logprobs":[' + _head(ranked[0])]
            for prev, token in zip(ranked, ranked[1:], strict=False):
                parts.append(_tail(prev) + b"}," + _head(token))
            parts.append(_tail(ranked[-1]) + b"}]}")
        done = self._ranked[pos] = (parts[0], tuple(parts[1:]))
        return done


@lru_cache(maxsize=16384)
def _layout(piece: str, alt_first: str | None, top_n: int) -> _Layout:
    return _Layout(piece, _alternatives(piece, alt_first, top_n), top_n)


def _alternatives(piece: str, alt_first: str | None, top_n: int) -> tuple[str, ...]:
    """The other tokens of the top list: the alternative segment's token first, then variants."""
    out: list[str] = []
    seen = {piece}
    k = 0
    while len(out) + 1 < top_n and k < 40:
        cand = alt_first if (k == 0 and alt_first) else _variant(piece, k)
        k += 1
        if cand in seen:
            continue
        seen.add(cand)
        out.append(cand)
    return tuple(out)


@lru_cache(maxsize=65536)
def _head(token: str) -> bytes:
    return b'{"token":' + orjson.dumps(token) + b',"logprob":'


@lru_cache(maxsize=65536)
def _tail(token: str) -> bytes:
    return b',"bytes":' + orjson.dumps(list(token.encode("utf-8")))


def _variant(piece: str, k: int) -> str:
    core = piece.strip()
    lead = piece[: len(piece) - len(piece.lstrip())]
    if core.isdigit():
        return lead + str((int(core) + k) % 1000)
    if k == 1:
        return lead + core.capitalize() if core != core.capitalize() else lead + core.lower()
    if k == 2:
        return (" " + core) if not lead else core
    return lead + core[: max(1, len(core) - 1)] + chr(97 + (k % 26))
