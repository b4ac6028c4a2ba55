"""The fast logprobs renderer gives the bytes of the straightforward one: the same draws, the same
alternatives and order, the same JSON (orjson of the list of dicts) for every confidence and top_n."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.logprobs import _variant
from cascade_studio.sandbox.tokens import _tokenize

_CONF_RANGES = {"high": (0.0, 1.0), "medium": (0.45, 0.85), "low": (0.12, 0.5)}


def reference(segments, profile, rng, top_n):
    """The sandbox's original implementation, kept as the specification."""
    out = []
    for seg in segments:
        pieces = _tokenize(seg.text)
        alt_pieces = _tokenize(seg.alternative) if seg.alternative else ()
        high = seg.confidence == "high"
        lo, hi = _CONF_RANGES[seg.confidence]
        for index, piece in enumerate(pieces):
            if high:
                p = 1.0 - (1.0 - profile.confidence) * (rng.random() * 2.0)
                p = 0.55 if p < 0.55 else (0.99995 if p > 0.99995 else p)
            else:
                p = lo + (hi - lo) * rng.random()
                if index > 0 and seg.confidence == "medium":
                    p = min(0.995, p + 0.3)
            top = [(piece, p)]
            if top_n > 1:
                remaining, share = 1.0 - p, 0.6
                alt_first = alt_pieces[index] if index < len(alt_pieces) else None
                k, seen = 0, {piece}
                while len(top) < top_n and k < 40:
                    cand = alt_first if (k == 0 and alt_first) else _variant(piece, k)
                    k += 1
                    if cand in seen:
                        continue
                    seen.add(cand)
                    q = remaining * share
                    top.append((cand, q if q > 1e-9 else 1e-9))
                    remaining -= q
                    share = 0.5
                top.sort(key=lambda x: -x[1])
            elif top_n == 0:
                top = []
            out.append({"token": piece, "logprob": math.log(p), "bytes": list(piece.encode()),
                        "top_logprobs": [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())}
                                         for t, q in top]})
    return out


TEXTS = ["The request matches get_weather (weather in a city); I will call it with city=\"Paris\".\n",
         '{"name": "', "calculate_triangle_area", '", "arguments": {', '"base": ', "10", ", ", "1234567",
         "Ünïcödé — “quotes” \\ back\\slash \t tab", "a", "", "}}", "  spaces  ", "x" * 30, "9 99 999 0"]


def random_segments(rng: random.Random) -> list[sim.Segment]:
    segs = []
    for _ in range(rng.randint(0, 8)):
        alt = rng.choice([None, None, rng.choice(TEXTS), "calculate_circle_area"])
        segs.append(sim.Segment(rng.choice(TEXTS), rng.choice(["high", "medium", "low"]), alt))
    return segs


@pytest.mark.parametrize("top_n", [0, 1, 2, 3, 5, 20])
def test_same_bytes_as_the_reference(top_n):
    pick = random.Random(top_n)
    for case in range(150):
        segments = random_segments(pick)
        profile = sim.profile_for(pick.choice(["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "ft:gpt-4o:x::y"]))
        expected = orjson.dumps(reference(segments, profile, random.Random(case), top_n))
        assert sim.token_logprobs_json(segments, profile, random.Random(case), top_n) == expected
        assert sim.token_logprobs(segments, profile, random.Random(case), top_n) == orjson.loads(expected)


def test_many_floored_alternatives_keep_their_order():
    """With top_n=20 the late alternatives fall to the floor (1e-9): ties keep the token's order."""
    segments = [sim.Segment("x" * 40, "high"), sim.Segment("maybe", "low", "perhaps")]
    profile = sim.profile_for("gpt-4o")
    for seed in range(50):
        expected = orjson.dumps(reference(segments, profile, random.Random(seed), 20))
        assert sim.token_logprobs_json(segments, profile, random.Random(seed), 20) == expected
