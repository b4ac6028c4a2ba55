"""Confidence from token log-probabilities. Documented methods (all in [0, 1], None when the
response carries no logprobs):

- mean_token_prob: the mean of exp(logprob) over the generated tokens.
- min_token_prob: the smallest exp(logprob): one unsure token is enough to flag a response.
- tool_name_prob: the joint probability of the tokens that spell the first chosen tool's name
  (the product of their probabilities). When the model answered without calling a tool, the
  probability of its first token stands for the decision not to call one.

OpenAI's Chat Completions return logprobs for message content only; servers that emit tool calls
as text (vLLM, llama.cpp, the built-in sandbox) return them for the call too. Without logprobs for
the call, tool_name_prob is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

METHODS = ("mean_token_prob", "min_token_prob", "tool_name_prob")
# Where each method's value is kept on a trajectory (its attribute and the trajectories table's column).
CONF_COLUMNS: dict[str, str] = {"mean_token_prob": "conf_mean", "min_token_prob": "conf_min",
                                "tool_name_prob": "conf_tool"}
DEFAULT_COLUMN = CONF_COLUMNS["mean_token_prob"]


def confidence_column(method: str) -> str:
    """The column holding `method`'s confidence; an unknown method falls back to the mean."""
    return CONF_COLUMNS.get(method, DEFAULT_COLUMN)


def by_method(values: Sequence[float | None]) -> dict[str, float | None]:
    """{method: value} from the values of the CONF_COLUMNS columns, in that order."""
    return dict(zip(CONF_COLUMNS, values, strict=True))


def token_probs(logprobs: list[dict[str, Any]] | None) -> list[float]:
    if not logprobs:
        return []
    return [math.exp(t["logprob"]) for t in logprobs if isinstance(t, dict) and "logprob" in t]


def mean_token_prob(logprobs: list[dict[str, Any]] | None) -> float | None:
    probs = token_probs(logprobs)
    return sum(probs) / len(probs) if probs else None


def min_token_prob(logprobs: list[dict[str, Any]] | None) -> float | None:
    probs = token_probs(logprobs)
    return min(probs) if probs else None


def tool_name_prob(logprobs: list[dict[str, Any]] | None, tool_name: str | None) -> float | None:
    if not logprobs:
        return None
    if not tool_name:
        return math.exp(logprobs[0]["logprob"])
    tokens = [tok["token"] for tok in logprobs]
    text = "".join(tokens)
    at = text.find(tool_name, text.find('"name"') if '"name"' in text else 0)
    if at < 0:
        return None
    end = at + len(tool_name)
    total = 0  # the logprobs of the tokens that overlap [at, end), added in order
    start = 0
    for token, tok in zip(tokens, logprobs, strict=True):
        stop = start + len(token)
        if stop > at and start < end:
            total += tok["logprob"]
        elif start >= end:
            break
        start = stop
    return math.exp(total)


def confidences(logprobs: list[dict[str, Any]] | None, tool_name: str | None) -> dict[str, float | None]:
    probs = token_probs(logprobs)  # once for both figures (the gateway computes this per request)
    return {
        "mean_token_prob": sum(probs) / len(probs) if probs else None,
        "min_token_prob": min(probs) if probs else None,
        "tool_name_prob": tool_name_prob(logprobs, tool_name),
    }
