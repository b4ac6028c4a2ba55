"""Issue 33: importing a tier file never sends an existing key to a new origin. A tier's key variable
(CASCADE_STUDIO_TIER<N>_API_KEY) follows the tier number: a file that moves tier 1 to another host
gets the key there only once the user confirms the new origin."""

from __future__ import annotations

import json

from cascade_studio.cli import main
from tests.services.witness import WitnessServer
from tests.test_key_destinations import TASKS

KEY = "sk-tier1-local-secret-0123"


def _tier_file(path, url: str):
    path.write_text(json.dumps({"tiers": [{"tier": 1, "provider": "compatible", "base_url": url, "model": "m",
                                           "input_price": "1", "output_price": "1"}]}), encoding="utf-8")
    return str(path)


def _hits(witness: WitnessServer) -> int:
    return sum(1 for _, _, auth in witness.requests if auth and KEY in auth)


def test_an_imported_tier_file_does_not_move_a_key(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_TIER1_API_KEY", KEY)
    ws = str(tmp_path / "ws")
    with WitnessServer() as local, WitnessServer() as other:
        assert main(["-w", ws, "tasks", "import", str(TASKS)]) == 0
        assert main(["-w", ws, "tiers", "set", "1", "--model", "m", "--base-url", local.base_url,
                     "--input-price", "1", "--output-price", "1"]) == 0
        assert main(["-w", ws, "collect", "--tier", "1", "--limit", "1"]) == 0
        assert _hits(local) == 1
        capsys.readouterr()
        # the file moves tier 1 to another host: the summary says so, the key stays home
        assert main(["-w", ws, "tiers", "import", _tier_file(tmp_path / "t.json", other.base_url)]) == 0
        captured = capsys.readouterr()
        said = captured.out + captured.err
        assert f"tier 1 moves from {local.origin} to {other.origin}" in said and "withheld" in said
        assert main(["-w", ws, "keys", "status", "--json"]) == 0
        row = json.loads(capsys.readouterr().out)["tiers"][0]
        assert row["source"] == "refused" and "confirm" in row["hint"] and not row["has_key"]
        main(["-w", ws, "collect", "--tier", "1", "--limit", "2"])
        assert _hits(other) == 0
        capsys.readouterr()
        assert main(["-w", ws, "tiers", "list", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["key_origin_pending"] is True
        # importing the same file again does not confirm it either
        assert main(["-w", ws, "tiers", "import", _tier_file(tmp_path / "t.json", other.base_url)]) == 0
        main(["-w", ws, "tiers", "test", "1"])
        assert _hits(other) == 0
        # the user confirms: now it goes
        assert main(["-w", ws, "tiers", "confirm-origin", "1"]) == 0
        assert main(["-w", ws, "tiers", "test", "1"]) == 0
        assert _hits(other) >= 1
    capsys.readouterr()


def test_allow_new_origin_confirms_at_import(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_TIER1_API_KEY", KEY)
    ws = str(tmp_path / "ws")
    with WitnessServer() as local, WitnessServer() as other:
        assert main(["-w", ws, "tiers", "set", "1", "--model", "m", "--base-url", local.base_url,
                     "--input-price", "1", "--output-price", "1"]) == 0
        capsys.readouterr()
        assert main(["-w", ws, "tiers", "import", _tier_file(tmp_path / "t.json", other.base_url),
                     "--allow-new-origin"]) == 0
        assert "New origin confirmed: tier 1 moves from" in capsys.readouterr().err
        assert main(["-w", ws, "tiers", "test", "1"]) == 0
        assert _hits(other) >= 1
        # the same origin again (a new model, say) is no change of origin
        assert main(["-w", ws, "tiers", "import", _tier_file(tmp_path / "t.json", other.base_url)]) == 0
        assert "New origin" not in capsys.readouterr().err


def test_typing_the_address_is_a_confirmation(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_TIER1_API_KEY", KEY)
    ws = str(tmp_path / "ws")
    with WitnessServer() as other:
        assert main(["-w", ws, "tiers", "import", _tier_file(tmp_path / "t.json", other.base_url)]) == 0
        assert "tier 1 is new here" in capsys.readouterr().err
        assert main(["-w", ws, "tiers", "test", "1"]) != 0 and _hits(other) == 0
        assert main(["-w", ws, "tiers", "set", "1", "--threshold", "0.4"]) == 0
        assert main(["-w", ws, "tiers", "test", "1"]) != 0 and _hits(other) == 0
        assert main(["-w", ws, "tiers", "set", "1", "--base-url", other.base_url]) == 0
        assert main(["-w", ws, "tiers", "test", "1"]) == 0 and _hits(other) >= 1
    capsys.readouterr()


# -- *.localhost is this machine only if it resolves there (checked, not assumed) -----------------

def _resolver(monkeypatch, answers: dict[str, list[list[str]]]):
    """Each lookup of a name takes the next answer from its list (the last one repeats)."""
    from cascade_studio.services import loopback

    real = loopback._getaddrinfo

    def fake(host, port):
        if host in answers:
            queue = answers[host]
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return real(host, port)

    monkeypatch.setattr(loopback, "_getaddrinfo", fake)


def test_a_localhost_name_resolving_elsewhere_is_not_this_machine(tmp_path, capsys, monkeypatch):
    _resolver(monkeypatch, {"evil.localhost": [["203.0.113.7"]]})
    ws = str(tmp_path / "ws")
    with WitnessServer() as witness:
        url = f"http://evil.localhost:{witness.base_url.rsplit(':', 1)[1]}"
        assert main(["-w", ws, "tiers", "set", "1", "--model", "m", "--base-url", url,
                     "--input-price", "1", "--output-price", "1"]) == 0
        capsys.readouterr()
        from cascade_studio.services.secrets import SecretStore, transport_label
        from cascade_studio.store.tiers import TierRepository
        from cascade_studio.store.workspace import Workspace

        SecretStore().set_key(url, KEY)
        with Workspace.open(tmp_path / "ws") as w:
            tier = TierRepository(w).get(1)
        assert transport_label(tier) == "refused"
        source = SecretStore().resolve(tier)
        assert source.source == "refused" and "resolves to 203.0.113.7, which is not this machine" in source.reason
        assert main(["-w", ws, "tiers", "test", "1"]) != 0
        assert witness.requests == []
    capsys.readouterr()


def test_a_localhost_name_is_checked_again_when_connecting(tmp_path, monkeypatch):
    """DNS rebinding: loopback when the key is looked up, another host when connecting: not connected."""
    import asyncio

    from cascade_studio.core.tiers import Provider, Tier
    from cascade_studio.services.connection import test_connection
    from cascade_studio.services.secrets import SecretStore

    with WitnessServer() as witness:
        port = witness.base_url.rsplit(":", 1)[1]
        url = f"http://app.localhost:{port}"
        tier = Tier(tier=1, model="m", base_url=url, provider=Provider.COMPATIBLE, timeout_s=5)
        store = SecretStore(environ={})
        store.set_key(url, KEY)
        _resolver(monkeypatch, {"app.localhost": [["127.0.0.1"]]})
        ok = asyncio.run(test_connection(tier, store))
        assert ok.ok and _hits(witness) >= 1  # a name that is this machine works
        before = len(witness.requests)
        from cascade_studio.services import loopback

        lookups = []

        def rebinding(host, port):  # the key's check asks without a port, the connection with one
            lookups.append(port)
            return ["127.0.0.1"] if port is None else ["127.0.0.1", "198.51.100.9"]

        monkeypatch.setattr(loopback, "_getaddrinfo", rebinding)
        result = asyncio.run(test_connection(tier, store))
        assert not result.ok and "198.51.100.9, which is not this machine" in result.message
        assert None in lookups and int(port.split("/")[0]) in lookups  # checked twice: key lookup, connection
        assert len(witness.requests) == before


def test_the_exported_snippet_checks_a_localhost_name_too(tmp_path, monkeypatch):
    import socket

    from cascade_studio.services.policy import export_policy
    from tests.gateway.helpers import tiers_at

    snippet = export_policy(tiers_at("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), tmp_path / "policy.json")
    namespace: dict = {"__file__": str(snippet), "__name__": "policy_apply"}
    exec(compile(snippet.read_text(), str(snippet), "exec"), namespace)
    answers = {"evil.localhost": "203.0.113.7", "app.localhost": "127.0.0.1"}
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(2, 1, 6, "", (answers[host], 0))])
    loopback = namespace["_loopback"]
    assert loopback("127.0.0.1") and loopback("app.localhost") and not loopback("evil.localhost")
    assert not loopback("example.com")
