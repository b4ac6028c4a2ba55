"""Per-tier connection test: list models, check the model exists, send a 1-token request."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import openai

from cascade_studio.core.tiers import Tier
from cascade_studio.services.clients import describe_error, make_async_client
from cascade_studio.services.secrets import SecretStore


@dataclass
class ConnectionResult:
    tier: int
    ok: bool
    kind: str  # "ok" or an error kind from describe_error
    message: str
    latency_ms: float | None = None
    key_source: str = "none"
    model_listed: bool | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def test_connection(tier: Tier, secrets: SecretStore, *, probe_completion: bool = True) -> ConnectionResult:
    source = secrets.resolve(tier)
    try:
        client = make_async_client(tier, secrets)
    except Exception as exc:  # missing key
        kind, message = describe_error(exc, tier)
        return ConnectionResult(tier.tier, False, kind, message, key_source=source.source)
    started = time.perf_counter()
    listed: bool | None = None
    try:
        async with client:
            try:
                ids = [m.id async for m in client.models.list()]
                listed = tier.model in ids
            except openai.NotFoundError:
                listed = None  # some compatible servers have no /models; fall through to the probe
            if listed is False and not probe_completion:
                return ConnectionResult(
                    tier.tier, False, "not_found",
                    f"{tier.base_url} does not list the model {tier.model!r}. Check the model id.",
                    key_source=source.source, model_listed=False,
                )
            if probe_completion:
                await client.chat.completions.create(
                    model=tier.model, messages=[{"role": "user", "content": "ping"}], max_completion_tokens=1,
                )
    except Exception as exc:
        kind, message = describe_error(exc, tier)
        return ConnectionResult(tier.tier, False, kind, message, key_source=source.source, model_listed=listed)
    latency = (time.perf_counter() - started) * 1000
    note = "" if listed in (True, None) else " (the model is not in /models but answered)"
    return ConnectionResult(
        tier.tier, True, "ok", f"Connected to {tier.base_url}: {tier.model} answered in {latency:.0f} ms{note}.",
        latency_ms=round(latency, 1), key_source=source.source, model_listed=listed,
    )

