"""A trajectory: what one tier did with one task (request, response, usage, cost, confidence)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cascade_studio.core.confidence import confidences
from cascade_studio.core.money import cost_micro_usd
from cascade_studio.core.tiers import Tier


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_json(cls, usage: dict[str, Any] | None) -> Usage:
        usage = usage or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                   int(prompt_details.get("cached_tokens") or 0), int(completion_details.get("reasoning_tokens") or 0))


def cost_of(usage: Usage, tier: Tier, *, batch_discount: Decimal | None = None) -> int:
    """Micro-dollars: uncached input at the input price, cached input at the cached price (the input
    price when none is set), output (reasoning included, as billed) at the output price."""
    cached_price = tier.cached_price if tier.cached_price is not None else tier.input_price
    uncached = max(0, usage.prompt_tokens - usage.cached_tokens)
    micro = (cost_micro_usd(uncached, tier.input_price) + cost_micro_usd(usage.cached_tokens, cached_price)
             + cost_micro_usd(usage.completion_tokens, tier.output_price))
    if batch_discount is not None:
        micro = int((Decimal(micro) * batch_discount).to_integral_value())
    return micro


@dataclass
class Trajectory:
    task_id: str
    tier: int
    model: str
    status: str  # "ok" or "error"
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] | None = None
    content: str | None = None  # the assistant's text (reasoning before a tool call, or the answer)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"id", "name", "arguments": parsed}]
    final_answer: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    cost_micro: int = 0
    logprobs: list[dict[str, Any]] | None = None
    conf_mean: float | None = None
    conf_min: float | None = None
    conf_tool: float | None = None
    system_fingerprint: str | None = None
    error: str | None = None
    attempts: int = 1
    started_at: str = ""
    finished_at: str = ""

    @property
    def tool_name(self) -> str | None:
        return self.tool_calls[0]["name"] if self.tool_calls else None

    def confidence(self, method: str) -> float | None:
        return {"mean_token_prob": self.conf_mean, "min_token_prob": self.conf_min,
                "tool_name_prob": self.conf_tool}.get(method)


def parse_tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        raw = fn.get("arguments") or ""
        try:
            args: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            args = {"__unparsed__": raw}
        out.append({"id": call.get("id"), "name": fn.get("name"), "arguments": args})
    return out


def trajectory_from_response(task_id: str, tier: Tier, request: dict[str, Any], response: dict[str, Any],
                             latency_ms: float, *, started_at: str = "", finished_at: str = "",
                             attempts: int = 1, batch_discount: Decimal | None = None) -> Trajectory:
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    tool_calls = parse_tool_calls(message)
    content = message.get("content")
    logprobs = ((choice.get("logprobs") or {}).get("content")) or None
    usage = Usage.from_json(response.get("usage"))
    conf = confidences(logprobs, tool_calls[0]["name"] if tool_calls else None)
    return Trajectory(
        task_id=task_id, tier=tier.tier, model=response.get("model") or tier.model, status="ok", request=request,
        response=response, content=content, tool_calls=tool_calls,
        final_answer=None if tool_calls else content, usage=usage, latency_ms=latency_ms,
        cost_micro=cost_of(usage, tier, batch_discount=batch_discount), logprobs=logprobs,
        conf_mean=conf["mean_token_prob"], conf_min=conf["min_token_prob"], conf_tool=conf["tool_name_prob"],
        system_fingerprint=response.get("system_fingerprint"), started_at=started_at, finished_at=finished_at,
        attempts=attempts,
    )


def build_request(tier: Tier, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                  *, top_logprobs: int = 5) -> dict[str, Any]:
    """The chat completion request a tier sends for a task."""
    msgs = list(messages)
    if tier.system_prompt and not any(m.get("role") in ("system", "developer") for m in msgs):
        msgs.insert(0, {"role": "system", "content": tier.system_prompt})
    body: dict[str, Any] = {"model": tier.model, "messages": msgs, "temperature": tier.temperature,
                            "logprobs": True, "top_logprobs": top_logprobs}
    if tools:
        body["tools"] = tools
    return body
