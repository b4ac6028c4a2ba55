"""A trajectory: what one tier did with one task (request, response, usage, cost, confidence)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cascade_studio.core.confidence import confidences
from cascade_studio.core.demonstrations import apply_demonstrations
from cascade_studio.core.money import cost_micro_usd
from cascade_studio.core.tiers import Tier, generation_id


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    anomaly: bool = False  # the server reported more cached than prompt tokens (clamped)

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_json(cls, usage: dict[str, Any] | None) -> Usage:
        """Token counts; cached tokens are part of the prompt (the spec), so more cached than prompt
        tokens is clamped (`anomaly` says so) rather than billed."""
        usage = usage if isinstance(usage, dict) else {}
        prompt_details = usage.get("prompt_tokens_details")
        prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
        completion_details = usage.get("completion_tokens_details")
        completion_details = completion_details if isinstance(completion_details, dict) else {}

        def count(value: Any) -> int:
            return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_TOKENS else 0

        prompt = count(usage.get("prompt_tokens"))
        cached = count(prompt_details.get("cached_tokens"))
        return cls(prompt, count(usage.get("completion_tokens")), min(cached, prompt),
                   count(completion_details.get("reasoning_tokens")), cached > prompt)


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
    generation: str = ""  # core.tiers.generation_id of the tier settings that produced it

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


class ResponseError(ValueError):
    """A 200 answer that is not a usable chat completion: recorded as a failure, never as "ok"."""


_MAX_TOKENS = 10**9  # more than any context window: a count above it is not a real count


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TOKENS:
        raise ResponseError(f"the server's answer is not a chat completion: {where} is {str(value)[:40]!r}, "
                            "not a token count")
    return value


def response_problem(response: Any) -> str | None:
    """Why a chat completion response cannot be used (None when it can): it must have a message
    with content or tool calls, and usage with token counts (without usage nothing can be billed)."""
    head = "the server's answer is not a chat completion: "
    if not isinstance(response, dict):
        return head + f"it is a JSON {type(response).__name__}, not an object"
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return head + "it has no choices"
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        return head + f"choices[0] is {str(choice)[:40]!r}, not an object with a message"
    message = choice["message"]
    calls = message.get("tool_calls")
    content = message.get("content")
    if calls is not None and not (isinstance(calls, list) and all(
            isinstance(c, dict) and isinstance(c.get("function"), dict) and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments", ""), str) for c in calls)):
        return head + "message.tool_calls is not a list of function calls with a name and string arguments"
    if content is not None and not isinstance(content, str):
        return head + "message.content is not text"
    if not calls and not (isinstance(content, str) and content.strip()):
        return head + "the message has neither content nor tool calls"
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return head + "it has no usage (token counts), so its cost is unknown"
    try:
        for key in ("prompt_tokens", "completion_tokens"):
            _count(usage.get(key), f"usage.{key}")
    except ResponseError as exc:
        return str(exc)
    lp = choice.get("logprobs")
    if lp is not None and not (isinstance(lp, dict) and isinstance(lp.get("content") or [], list)
                               and _numeric_logprobs(lp.get("content") or [])):
        return head + "choices[0].logprobs is malformed (each token needs a numeric logprob)"
    return None


def _numeric_logprobs(tokens: list[Any]) -> bool:
    for t in tokens:  # a plain loop: this runs over every token of every answer the gateway decides on
        if not isinstance(t, dict):
            return False
        value = t.get("logprob")
        if not isinstance(value, (int, float)) or isinstance(value, bool):  # noqa: UP038 - the tuple is faster
            return False
    return True


def trajectory_from_response(task_id: str, tier: Tier, request: dict[str, Any], response: dict[str, Any],
                             latency_ms: float, *, started_at: str = "", finished_at: str = "",
                             attempts: int = 1, batch_discount: Decimal | None = None) -> Trajectory:
    """Raises ResponseError when the response is not a usable chat completion."""
    problem = response_problem(response)
    if problem:
        raise ResponseError(problem)
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    tool_calls = parse_tool_calls(message)
    content = message.get("content")
    logprobs = ((choice.get("logprobs") or {}).get("content")) or None
    usage = Usage.from_json(response.get("usage"))
    note = None
    if usage.anomaly:
        note = (f"usage anomaly: the server reported more cached tokens than prompt tokens "
                f"({response['usage'].get('prompt_tokens_details')} of {usage.prompt_tokens}); billed as "
                f"{usage.cached_tokens} cached")
    conf = confidences(logprobs, tool_calls[0]["name"] if tool_calls else None)
    return Trajectory(
        task_id=task_id, tier=tier.tier, model=response.get("model") or tier.model, status="ok", request=request,
        response=response, content=content, tool_calls=tool_calls,
        final_answer=None if tool_calls else content, usage=usage, latency_ms=latency_ms,
        cost_micro=cost_of(usage, tier, batch_discount=batch_discount), logprobs=logprobs,
        conf_mean=conf["mean_token_prob"], conf_min=conf["min_token_prob"], conf_tool=conf["tool_name_prob"],
        system_fingerprint=response.get("system_fingerprint"), started_at=started_at, finished_at=finished_at,
        attempts=attempts, error=note, generation=generation_id(tier),
    )


def build_request(tier: Tier, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                  *, top_logprobs: int | None = None, logprobs: bool | None = None) -> dict[str, Any]:
    """The chat completion request a tier sends for a task. Logprobs follow the tier's setting
    (`logprobs` overrides it, e.g. for the retry without them); `top_logprobs` defaults to the tier's."""
    msgs = list(messages)
    if tier.system_prompt and not any(m.get("role") in ("system", "developer") for m in msgs):
        msgs.insert(0, {"role": "system", "content": tier.system_prompt})
    if tier.demonstrations is not None:  # a prompt-distilled generation: its few-shot turns, one home
        msgs = apply_demonstrations(tier.demonstrations, msgs)
    body: dict[str, Any] = {"model": tier.model, "messages": msgs, "temperature": tier.temperature}
    if tier.wants_logprobs if logprobs is None else logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = tier.top_logprobs if top_logprobs is None else top_logprobs
    if tools:
        body["tools"] = tools
    return body
