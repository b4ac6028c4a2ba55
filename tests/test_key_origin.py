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
