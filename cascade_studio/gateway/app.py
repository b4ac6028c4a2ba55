"""The gateway's HTTP face: an OpenAI-compatible server (`POST /v1/chat/completions`,
`GET /v1/models`, `GET /healthz`) that answers each request through the cascade, logs it, and sends
a share of the lower tiers' answers to the teacher in the background (shadow sampling).

Stateless apart from its log: every process holds the policy, one HTTP client per tier and its own
log files, so the gateway scales by running more processes behind any load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets as token_source
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cascade_studio.core.errors import UserError
from cascade_studio.core.policy import Policy
from cascade_studio.core.traffic import (
    CONTENT_MODES,
    DEFAULT_CONTENT,
    FORMAT,
    answers_agree,
    category_of,
    content_fields,
)
from cascade_studio.gateway.cascade import Cascade, Outcome, RequestProblem, check_request
from cascade_studio.gateway.request_log import DEFAULT_MAX_BYTES, RequestLog, utc_now
from cascade_studio.gateway.stream import sse_events
from cascade_studio.services.policy import load_policy
from cascade_studio.services.secrets import SecretStore

log = logging.getLogger(__name__)
CONFIG_ENV = "CASCADE_STUDIO_GATEWAY_CONFIG"  # the config, as JSON, for worker processes
CLIENT_KEY_ENV = "CASCADE_STUDIO_GATEWAY_KEY"  # when set, clients must send it as their bearer token
MAX_PENDING_SHADOWS = 256


@dataclass
class GatewayConfig:
    policy: str
    host: str = "127.0.0.1"
    port: int = 8080
    log_dir: str | None = None
    log_content: str = DEFAULT_CONTENT
    shadow_rate: float = 0.0
    workers: int = 1
    max_log_bytes: int = DEFAULT_MAX_BYTES
    otlp_endpoint: str | None = None
    max_tries: int = 2

    def problems(self) -> list[str]:
        out = []
        if self.log_content not in CONTENT_MODES:
            out.append(f"--log-content {self.log_content!r}: use one of {', '.join(CONTENT_MODES)}")
        if not 0.0 <= self.shadow_rate <= 1.0:
            out.append(f"--shadow-rate {self.shadow_rate}: give a share between 0 and 1, e.g. 0.05")
        if self.shadow_rate > 0 and not self.log_dir:
            out.append("--shadow-rate needs --log DIR: shadow samples are measured in the log")
        if not 1 <= self.workers <= 256:
            out.append(f"--workers {self.workers}: give 1-256 processes")
        if not 0 <= self.port < 65536:
            out.append(f"--port {self.port}: ports are 1-65535 (0: any free port)")
        return out

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> GatewayConfig:
        return cls(**json.loads(os.environ[CONFIG_ENV]))


def error_response(status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """OpenAI's error envelope."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def _failure(outcome: Outcome) -> tuple[int, str, str, str]:
    """(status, message, type, code) when every tier failed: a client error the upstream named
    (4xx other than 408/409/429) keeps its status; every tier rate-limited is a 429; else 502."""
    reasons = "; ".join(f"tier {a.tier.tier} ({a.tier.model}): {a.error}" for a in outcome.attempts)
    statuses = {a.upstream_status for a in outcome.attempts}
    if len(statuses) == 1 and (s := next(iter(statuses))) is not None and 400 <= s < 500 and s not in (408, 409):
        kind = "rate_limit_error" if s == 429 else "invalid_request_error"
        return s, f"Every tier refused the request: {reasons}", kind, "rate_limit_exceeded" if s == 429 else "upstream_refused"
    return 502, f"Every tier of the cascade failed: {reasons}", "server_error", "all_tiers_failed"


EPISODE_MEMORY = 100_000  # episodes whose floor one process remembers (policy "rest"), least recent dropped


class Gateway:
    def __init__(self, config: GatewayConfig, *, policy: Policy | None = None, secrets: SecretStore | None = None,
                 telemetry: Any = None, rng: random.Random | None = None, fast: bool = True) -> None:
        """`fast=False` sends through the openai SDK and decodes whole answers (the reference the
        fast path is tested against)."""
        problems = config.problems()
        if problems:
            raise UserError("; ".join(problems), 2)
        self.config = config
        self.policy = policy or load_policy(config.policy)
        self.cascade = Cascade(self.policy, secrets, max_tries=config.max_tries, fast=fast)
        self.log = RequestLog(config.log_dir, config.max_log_bytes) if config.log_dir else None
        if telemetry is None and config.otlp_endpoint:
            from cascade_studio.gateway.telemetry import Telemetry

            telemetry = Telemetry(config.otlp_endpoint)
        self.telemetry = telemetry
        self._rng = rng or random.Random()
        self._shadows: set[asyncio.Task] = set()
        self._floors: OrderedDict[str, int] = OrderedDict()  # policy "rest": episode -> tier its steps start at
        self.shadows_skipped = 0
        self.disconnects = 0  # clients that hung up before their request was whole
        self._closed = False
        self.client_key = os.environ.get(CLIENT_KEY_ENV) or None
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/healthz", self.health, methods=["GET"]),
        ], lifespan=self._lifespan, exception_handlers={ClientDisconnect: self._disconnected,
                                                        Exception: self._unexpected})

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    async def _disconnected(self, request: Request, exc: Exception) -> Response:
        """The client hung up before its request was whole: nobody to answer, nothing went wrong here."""
        self.disconnects += 1
        log.info("A client disconnected before its request was whole (%s %s)", request.method, request.url.path)
        return Response(status_code=499)

    async def _unexpected(self, request: Request, exc: Exception) -> Response:
        log.exception("Gateway error", exc_info=exc)
        return error_response(500, f"The gateway failed: {type(exc).__name__}. See its log.", "server_error")

    # -- routes ----------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        """Liveness for anyone (the gateway answers even when its log cannot be written: log_failed
        counts the records lost); the details (PID, models, the log's state) only with the gateway key,
        when one is set."""
        log_state = self.log.status() if self.log is not None else None
        public = {"status": "ok", "log_failed": log_state["failed"] if log_state else 0}
        if self.client_key is not None and self._denied(request) is not None:
            return Response(orjson.dumps(public), media_type="application/json")
        return Response(orjson.dumps({**public, "policy": self.policy.name, "pid": os.getpid(),
                                      "tiers": [{"tier": t.tier, "model": t.model} for t in self.policy.tiers],
                                      "shadows_pending": len(self._shadows), "log": log_state}),
                        media_type="application/json")

    async def models(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return Response(orjson.dumps({"object": "list", "data": [
            {"id": self.policy.name, "object": "model", "created": 0, "owned_by": "cascade-studio"}]}),
            media_type="application/json")

    async def chat(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        started_ns = time.time_ns()
        try:
            body = orjson.loads(await request.body())
            check_request(body)
        except orjson.JSONDecodeError:
            return error_response(400, "The request body is not valid JSON.", "invalid_request_error")
        except RequestProblem as exc:
            return error_response(400, str(exc), "invalid_request_error", "invalid_value", exc.param)
        request_id = "gw-" + token_source.token_hex(12)
        episode, floor = self._episode_floor(request)
        outcome = await self.cascade.answer(body, self.policy.tiers_from(floor))
        answer = outcome.answer
        shadow = self._maybe_shadow(request_id, body, outcome)
        self._record(request_id, body, outcome, shadow, started_ns)
        if answer is None:
            status, message, kind, code = _failure(outcome)
            return error_response(status, message, kind, code, headers={"x-request-id": request_id})
        conf = answer.confidence
        headers = {"x-request-id": request_id, "x-cascade-tier": str(answer.tier.tier),
                   "x-cascade-model": answer.tier.model,
                   "x-cascade-confidence": "none" if conf is None else f"{conf:.6g}",
                   "x-cascade-tiers-tried": ",".join(str(a.tier.tier) for a in outcome.attempts),
                   "x-cascade-cost-usd": f"{outcome.cost_micro / 1e6:.6f}"}
        if answer.fallback:
            headers["x-cascade-fallback"] = "every higher tier failed"
        if self.policy.episode_policy == "rest":  # the episode's next step starts at the tier that answered
            headers["x-cascade-min-tier"] = str(answer.tier.tier)
            if episode:
                self._floors[episode] = answer.tier.tier
                self._floors.move_to_end(episode)
                while len(self._floors) > EPISODE_MEMORY:
                    self._floors.popitem(last=False)
        stream = bool(body.get("stream"))
        if body.get("logprobs") and answer.raw is not None and not stream:  # the tier's format: its bytes, unchanged
            return Response(answer.raw, headers=headers, media_type="application/json")
        response = dict((answer.full_response() if body.get("logprobs") else answer.response) or {})
        if not body.get("logprobs"):
            response["choices"] = [{**c, "logprobs": None} for c in response.get("choices", [])]
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(sse_events(response, include_usage=include_usage), headers=headers,
                                     media_type="text/event-stream")
        return Response(orjson.dumps(response), headers=headers, media_type="application/json")

    def _episode_floor(self, request: Request) -> tuple[str | None, int | None]:
        """Policy "rest": the lowest tier this step may start at, from the client's x-cascade-min-tier
        (stateless: the client echoes the header of its previous step) or from this process's memory
        of the episode named by x-cascade-episode (with --workers N, route an episode to one process)."""
        if self.policy.episode_policy != "rest":
            return None, None
        episode = request.headers.get("x-cascade-episode") or None
        floor = self._floors.get(episode) if episode else None
        try:
            given = int(request.headers.get("x-cascade-min-tier", "0"))
        except ValueError:
            given = 0
        return episode, max(floor or 0, given) or None

    def _denied(self, request: Request) -> Response | None:
        if self.client_key is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
        # the scheme is case-insensitive (RFC 7235); the token is compared in constant time
        if scheme.lower() == "bearer" and token_source.compare_digest(given.strip().encode(), self.client_key.encode()):
            return None
        return error_response(401, f"Incorrect API key for this gateway: send the key in {CLIENT_KEY_ENV} as "
                              "a bearer token.", "invalid_request_error", "invalid_api_key")

    # -- the log ---------------------------------------------------------------------------------
    def _record(self, request_id: str, body: dict[str, Any], outcome: Outcome, shadow: bool,
                started_ns: int) -> None:
        category = category_of(body.get("metadata"))
        answer = outcome.answer
        if self.telemetry is not None:
            try:
                self.telemetry.record(request_id, outcome, started_ns, time.time_ns(), category)
            except Exception:  # noqa: BLE001 - observability must never fail a request
                log.exception("OpenTelemetry export failed")
        if self.log is None:
            return
        message = ((answer.response or {}).get("choices") or [{}])[0].get("message") if answer else None
        full = self.config.log_content == "full"  # only the full log keeps whole answers: decode them only then
        responses = {a.tier.tier: a.full_response() for a in outcome.attempts if a.response is not None} if full else {}
        failure = None if answer else _failure(outcome)[1]
        for a in outcome.attempts:
            if a.status != "ok":
                log.warning("Request %s: tier %d %s, escalated: %s", request_id, a.tier.tier, a.status, a.error)
        self.log.write({
            "format": FORMAT, "kind": "request", "id": request_id, "time": utc_now(), "category": category,
            "model": body.get("model"), "stream": bool(body.get("stream")),
            "answered_by": answer.tier.tier if answer else None, "escalated": outcome.escalated,
            "latency_ms": round(outcome.latency_ms, 3), "cost_micro": outcome.cost_micro,
            "teacher_only_micro": self.cascade.teacher_only_micro(outcome), "shadow": shadow, "error": failure,
            "attempts": [a.to_log() for a in outcome.attempts],
            "content": content_fields(self.config.log_content, body["messages"], body.get("tools") or [], message,
                                      responses),
        })

    # -- shadow sampling -------------------------------------------------------------------------
    def _maybe_shadow(self, request_id: str, body: dict[str, Any], outcome: Outcome) -> bool:
        answer = outcome.answer
        if (answer is None or self.config.shadow_rate <= 0 or self.log is None
                or self.policy.is_teacher(answer.tier) or self._rng.random() >= self.config.shadow_rate):
            return False
        if len(self._shadows) >= MAX_PENDING_SHADOWS:
            self.shadows_skipped += 1  # the teacher is behind: sample less rather than queue without end
            return False
        task = asyncio.create_task(self._shadow(request_id, body, outcome), name=f"shadow {request_id}")
        self._shadows.add(task)  # a strong reference until it is done
        task.add_done_callback(self._shadows.discard)
        return True

    async def _shadow(self, request_id: str, body: dict[str, Any], outcome: Outcome) -> None:
        answer = outcome.answer
        assert answer is not None and answer.traj is not None
        teacher = self.policy.teacher
        try:
            attempt = await self.cascade.ask(teacher, self.cascade.request_for(teacher, body))
        except Exception:  # noqa: BLE001 - a shadow sample never fails anything; say why in the log
            log.exception("Shadow sample %s failed", request_id)
            return
        agree = answers_agree(attempt.traj.tool_calls, answer.traj.tool_calls) if attempt.traj else None
        message = ((attempt.response or {}).get("choices") or [{}])[0].get("message") if attempt.response else None
        if self.log is not None:
            self.log.write({
                "format": FORMAT, "kind": "shadow", "id": request_id, "time": utc_now(),
                "category": category_of(body.get("metadata")), "tier": answer.tier.tier,
                "teacher": attempt.to_log(), "agree": agree,
                "content": content_fields(self.config.log_content, body["messages"], body.get("tools") or [],
                                          message, {teacher.tier: attempt.full_response()}
                                          if attempt.response and self.config.log_content == "full" else {}),
            })

    async def drain(self) -> None:
        """Wait for the shadow samples in flight (at shutdown, and in tests)."""
        while self._shadows:
            await asyncio.gather(*list(self._shadows), return_exceptions=True)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.drain()
        await self.cascade.close()
        if self.log is not None:
            self.log.close()
        if self.telemetry is not None:
            self.telemetry.close()


def app_from_environment() -> Starlette:
    """The app of one worker process (`uvicorn --factory`), configured by CASCADE_STUDIO_GATEWAY_CONFIG."""
    return Gateway(GatewayConfig.from_env()).app
