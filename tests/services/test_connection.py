"""Connection test against the sandbox over real HTTP with the real openai SDK."""

import socket
from decimal import Decimal

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.sandbox.faults import parse_faults
from cascade_studio.services.connection import test_connection as check
from cascade_studio.services.secrets import SecretStore


def tier(url: str, model: str = "gpt-4o-mini", timeout: float = 10.0) -> Tier:
    return Tier(tier=1, model=model, base_url=url, provider=Provider.COMPATIBLE, timeout_s=timeout,
                input_price=Decimal("0.15"), output_price=Decimal("0.6"))


async def test_ok_reports_latency(sandbox):
    store = SecretStore()
    store.set_key(sandbox.base_url, "sk-anything")
    result = await check(tier(sandbox.base_url), store)
    assert result.ok and result.kind == "ok" and result.latency_ms > 0 and result.model_listed
    assert "answered in" in result.message


async def test_missing_key(sandbox):
    result = await check(tier(sandbox.base_url), SecretStore(environ={}))
    assert not result.ok and result.kind == "no_key" and "keys set" in result.message


async def test_bad_key_is_401(sandbox):
    sandbox.config.api_keys = {"sk-the-right-one"}
    store = SecretStore(environ={})
    store.set_key(sandbox.base_url, "sk-wrong-key-123456")
    result = await check(tier(sandbox.base_url), store)
    assert result.kind == "bad_key" and "401" in result.message
    assert "sk-wrong-key-123456" not in result.message


async def test_unknown_model_is_404(sandbox):
    store = SecretStore()
    store.set_key(sandbox.base_url, "sk-x")
    result = await check(tier(sandbox.base_url, model="gpt-nonexistent"), store)
    assert result.kind == "not_found" and "gpt-nonexistent" in result.message and result.model_listed is False


async def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    store = SecretStore()
    store.set_key(url, "sk-x")
    result = await check(tier(url), store)
    assert result.kind == "refused" and "nothing is listening" in result.message


async def test_timeout(sandbox):
    sandbox.config.faults = parse_faults("slow=1,slow_s=3")
    store = SecretStore()
    store.set_key(sandbox.base_url, "sk-x")
    result = await check(tier(sandbox.base_url, timeout=0.5), store)
    assert result.kind == "timeout" and "0.5 s" in result.message


async def test_tls_to_plain_http_port(sandbox):
    url = sandbox.base_url.replace("http://", "https://")
    store = SecretStore()
    store.set_key(url, "sk-x")
    result = await check(tier(url), store)
    assert result.kind == "tls" and "TLS" in result.message
