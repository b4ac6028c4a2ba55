"""With a gateway key set, /healthz tells a stranger only that it is alive (no PID, no model names);
the Bearer scheme is case-insensitive (RFC 7235) (issue 33)."""

from __future__ import annotations

import httpx2

from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.server import GatewayServer
from tests.gateway.helpers import tiers_at, write


async def test_health_details_need_the_key_and_bearer_is_case_insensitive(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_GATEWAY_KEY", "gw-secret")
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0)) as gw:
        root = gw.base_url.removesuffix("/v1")
        async with httpx2.AsyncClient() as http:
            stranger = (await http.get(f"{root}/healthz")).json()
            wrong = (await http.get(f"{root}/healthz", headers={"Authorization": "Bearer nope"})).json()
            insider = (await http.get(f"{root}/healthz", headers={"Authorization": "bearer gw-secret"})).json()
            models = {scheme: (await http.get(f"{root}/v1/models",
                                              headers={"Authorization": f"{scheme} gw-secret"})).status_code
                      for scheme in ("Bearer", "bearer", "BEARER", "Basic")}
    for public in (stranger, wrong):
        assert public == {"status": "ok", "log_failed": 0}
    assert insider["pid"] and [t["model"] for t in insider["tiers"]] == ["gpt-4.1-nano", "gpt-4o-mini"]
    assert models == {"Bearer": 200, "bearer": 200, "BEARER": 200, "Basic": 401}


async def test_health_without_a_gateway_key_shows_details(tmp_path, sandbox):
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0)) as gw:
        async with httpx2.AsyncClient() as http:
            health = (await http.get(gw.base_url.removesuffix("/v1") + "/healthz")).json()
    assert health["pid"] and health["log"] is None


async def test_a_client_that_hangs_up_mid_request_costs_no_traceback(tmp_path, sandbox, caplog, capfd):
    import asyncio
    import logging

    caplog.set_level(logging.INFO)
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0)) as gw:
        host, port = gw.base_url.split("//")[1].split("/")[0].split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\":")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        for _ in range(50):
            if gw.gateway.disconnects:
                break
            await asyncio.sleep(0.05)
    assert gw.gateway.disconnects == 1
    assert not [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.getMessage()]
    assert "Traceback" not in capfd.readouterr().err
    assert any("disconnected before its request was whole" in r.getMessage() for r in caplog.records)
