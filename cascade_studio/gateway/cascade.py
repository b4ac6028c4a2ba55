"""Apply a policy to one request: ask tier 1, compute its confidence with the app's own functions,
escalate below the threshold or when the tier fails, answer with the first tier that keeps.

A tier's request is `core.trajectory.build_request` (the request the app collected and evaluated
with: system prompt, temperature, logprobs) plus the policy's parameters; its answer is parsed by
`core.trajectory.trajectory_from_response` (confidence and cost as the app records them). So the
gateway answers as the what-if predicted for the same thresholds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson

from cascade_studio.core.policy import CLIENT_FIELDS, Policy, keeps
from cascade_studio.core.tiers import Tier, generation_id
from cascade_studio.core.trajectory import (
    ResponseError,
    Trajectory,
    Usage,
    build_request,
    cost_of,
    trajectory_from_response,
)
from cascade_studio.gateway.decode import decision_view
from cascade_studio.services.bounded_http import needs_loopback
from cascade_studio.services.clients import describe_error, make_async_client
from cascade_studio.services.collector import backoff_delay, is_retryable, retry_after_seconds
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.upstream import AnswerTooLarge, Upstream, uses_proxy

RETRY_WAIT_CAP_S = 2.0  # a server asking for a longer wait is escalated past, not waited for


@dataclass
class Attempt:
    """What one tier did with a request (after its retries)."""

    tier: Tier
    status: str  # ok | failed | unusable
    latency_ms: float
    tries: int
    traj: Trajectory | None = None
    response: dict[str, Any] | None = None
    error: str | None = None
    upstream_status: int | None = None
    kept: bool = False
    fallback: bool = False  # kept below its threshold because every tier above it failed
    started_ns: int = 0  # wall clock (time.time_ns) when the tier was first asked
    raw: bytes | None = None  # the answer's bytes as the tier sent them (the fast path)

    def full_response(self) -> dict[str, Any] | None:
        """The whole answer (`response` may hold only what the decision reads of its logprobs)."""
        return orjson.loads(self.raw) if self.raw is not None else self.response

    @property
    def confidence(self) -> float | None:
        return self.traj.confidence(self.tier.confidence_method.value) if self.traj else None

    @property
    def cost_micro(self) -> int:
        return self.traj.cost_micro if self.traj else 0

    def to_log(self) -> dict[str, Any]:
        usage = self.traj.usage if self.traj else Usage()
        out = {"tier": self.tier.tier, "model": self.tier.model, "generation": generation_id(self.tier),
               "status": self.status, "kept": self.kept, "fallback": self.fallback, "confidence": self.confidence,
               "confidence_method": self.tier.confidence_method.value, "latency_ms": round(self.latency_ms, 3),
               "tries": self.tries, "prompt_tokens": usage.prompt_tokens,
               "completion_tokens": usage.completion_tokens, "cached_tokens": usage.cached_tokens,
               "reasoning_tokens": usage.reasoning_tokens, "cost_micro": self.cost_micro, "error": self.error}
        return out


@dataclass
class Outcome:
    attempts: list[Attempt] = field(default_factory=list)
    latency_ms: float = 0.0

    @property
    def answer(self) -> Attempt | None:
        return next((a for a in self.attempts if a.kept), None)

    @property
    def cost_micro(self) -> int:
        return sum(a.cost_micro for a in self.attempts)

    @property
    def escalated(self) -> bool:
        return len(self.attempts) > 1


class RequestProblem(ValueError):
    """The client's request is not a chat completion request (answered 400, no tier asked)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def check_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise RequestProblem("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestProblem("Missing required parameter: 'messages' (a non-empty array).", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestProblem(f"Invalid 'messages[{i}]': expected an object with a role.", f"messages[{i}]")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise RequestProblem("Invalid 'tools': expected an array.", "tools")
    if body.get("n", 1) not in (1, None):
        raise RequestProblem("The cascade gateway answers n=1 only.", "n")


class Cascade:
    """The policy with one HTTP client per tier (connections reused across requests)."""

    def __init__(self, policy: Policy, secrets: SecretStore | None = None, *, max_tries: int = 2,
                 backoff_base: float = 0.1, fast: bool = True) -> None:
        self.policy = policy
        self.max_tries = max_tries
        self.backoff_base = backoff_base
        self._secrets = secrets or SecretStore()
        self._clients: dict[int, openai.AsyncOpenAI | Exception] = {}
        self._upstreams: dict[int, Upstream] = {}  # the fast path (fast=False: the SDK's, for comparison)
        for t in policy.tiers:
            try:
                client = self._clients[t.tier] = make_async_client(t, self._secrets)
            except Exception as exc:  # noqa: BLE001 - a tier without a usable key fails each request, in words
                self._clients[t.tier] = exc
                continue
            if fast and not uses_proxy(t.base_url):
                self._upstreams[t.tier] = Upstream(client, t.timeout_s,
                                                   loopback_only=needs_loopback(t.base_url, t.allow_insecure))

    def key_problems(self) -> list[str]:
        """The tiers that cannot be asked (no key, or a key that may not go to their URL)."""
        return [f"tier {n}: {exc}" for n, exc in self._clients.items() if isinstance(exc, Exception)]

    def request_for(self, tier: Tier, body: dict[str, Any]) -> dict[str, Any]:
        """The tier's request: the app's build_request, the client's task fields, the policy's parameters."""
        request = build_request(tier, body["messages"], body.get("tools") or [])
        request.update({k: body[k] for k in CLIENT_FIELDS if k != "tools" and body.get(k) is not None})
        request.update(self.policy.params.get(tier.tier, {}))
        return request

    async def answer(self, body: dict[str, Any], tiers: list[Tier] | None = None) -> Outcome:
        """Try the tiers in turn until one keeps its answer (the last tier always keeps)."""
        t0 = time.perf_counter()
        outcome = Outcome()
        tiers = tiers or self.policy.tiers
        for i, tier in enumerate(tiers):
            attempt = await self.ask(tier, self.request_for(tier, body))
            outcome.attempts.append(attempt)
            if attempt.status == "ok":
                attempt.kept = keeps(tier, attempt.confidence, is_teacher=i == len(tiers) - 1)
                if attempt.kept:
                    break
        else:
            answered = [a for a in outcome.attempts if a.status == "ok"]
            if answered:  # every tier above failed: an unsure answer beats none
                answered[-1].kept = answered[-1].fallback = True
        outcome.latency_ms = (time.perf_counter() - t0) * 1000
        return outcome

    async def ask(self, tier: Tier, request: dict[str, Any]) -> Attempt:
        """One tier, with up to `max_tries` tries for timeouts, 429s and 5xx errors."""
        client = self._clients[tier.tier]
        t0, started = time.perf_counter(), time.time_ns()
        attempt = await self._ask(client, tier, request, t0)
        attempt.started_ns = started
        return attempt

    async def _ask(self, client: openai.AsyncOpenAI | Exception, tier: Tier, request: dict[str, Any],
                   t0: float) -> Attempt:
        if isinstance(client, Exception):
            return Attempt(tier, "failed", 0.0, 0, error=str(client))
        upstream = self._upstreams.get(tier.tier)
        body = orjson.dumps(request) if upstream is not None else b""
        tries = 0
        while True:
            tries += 1
            try:
                if upstream is not None:
                    raw = await upstream.post(body)
                else:
                    raw = await client.post("/chat/completions", body=request, cast_to=bytes)
            except asyncio.CancelledError:
                raise
            except AnswerTooLarge as exc:
                return Attempt(tier, "failed", _ms(t0), tries, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - described and escalated
                wait = backoff_delay(tries - 1, retry_after_seconds(exc), base=self.backoff_base, cap=1.0)
                if is_retryable(exc) and tries < self.max_tries and wait <= RETRY_WAIT_CAP_S:
                    await asyncio.sleep(wait)
                    continue
                _, message = describe_error(exc, tier)
                status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
                return Attempt(tier, "failed", _ms(t0), tries, error=message, upstream_status=status)
            latency = _ms(t0)
            data = decision_view(raw) if upstream is not None else None
            try:
                if data is None:
                    data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                text = raw[:60].decode("utf-8", "replace")
                return Attempt(tier, "unusable", latency, tries,
                               error=f"the server's answer is not a chat completion: not JSON (it begins {text!r})")
            try:
                traj = trajectory_from_response("", tier, request, data, latency)
            except ResponseError as exc:
                return Attempt(tier, "unusable", latency, tries, error=str(exc))
            return Attempt(tier, "ok", latency, tries, traj=traj, response=data,
                           raw=raw if upstream is not None else None)

    def teacher_only_micro(self, outcome: Outcome) -> int | None:
        """What the answer would have cost from the teacher alone: its tokens at the teacher's prices
        (the teacher's own cost when it answered)."""
        answer = outcome.answer
        if answer is None or answer.traj is None:
            return None
        if answer.tier.tier == self.policy.teacher.tier:
            return answer.cost_micro
        return cost_of(answer.traj.usage, self.policy.teacher)

    async def close(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.close()
        for client in self._clients.values():
            if not isinstance(client, Exception):
                await client.close()


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
