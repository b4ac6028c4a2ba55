"""Issue 15: API keys go only where the user sent them. A witness server records every
Authorization header; a key it receives that the user did not send there is the bug."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from cascade_studio.cli import main
from cascade_studio.core.tiers import Provider, Tier, is_loopback_host, is_openai_url, transport_problem
from cascade_studio.services.clients import KeyWithheldError, describe_error, make_async_client
from cascade_studio.services.policy import export_policy
from cascade_studio.services.secrets import SecretStore
from tests.services.witness import WitnessServer

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "resources" / "bfcl" / "BFCL_v4_simple_python.json"
OPENAI_KEY = "sk-openai-secret-0123456789"
AWS_KEY = "aws-secret-abcdefghijklmnop"


def bearer_hits(witness: WitnessServer, *keys: str) -> list[str]:
    return [a for a in witness.auth_headers if a and any(k in a for k in keys)]


@pytest.mark.parametrize("url, openai_host", [
    ("https://api.openai.com/v1", True),
    ("https://api.openai.com:443/v1", True),
    ("https://API.OPENAI.COM/v1", True),
    ("http://api.openai.com/v1", False),
    ("http://127.0.0.1:18099/api.openai.com/v1", False),
    ("https://api.openai.com.evil.example/v1", False),
    ("https://evil.example/?x=api.openai.com", False),
    ("https://user:pw@api.openai.com/v1", False),
    ("https://api.openai.com@evil.example/v1", False),
    ("https://api.openai.com:8443/v1", False),
    ("not a url", False),
])
def test_openai_host_is_parsed_not_searched(url, openai_host):
    assert is_openai_url(url) is openai_host


def test_plain_http_only_to_this_machine():
    for host in ("localhost", "127.0.0.1", "127.9.9.9", "[::1]", "app.localhost"):
        assert transport_problem(f"http://{host}:8000/v1") is None, host
    for host in ("10.0.0.5", "192.168.1.20", "gpu-box", "example.com", "[fe80::1]"):
        problem = transport_problem(f"http://{host}:8000/v1")
        assert problem and "clear text" in problem, host
        assert transport_problem(f"http://{host}:8000/v1", allow_insecure=True) is None
    assert transport_problem("https://gpu-box/v1") is None
    assert "user name" in transport_problem("https://me:pw@gpu-box/v1")
    assert not is_loopback_host("127.0.0.1.evil.example")


def test_repro_openai_key_sent_to_a_url_containing_its_host(tmp_path, capsys, monkeypatch):
    """Repro 1: a base URL that merely contains 'api.openai.com' got OPENAI_API_KEY over plain http."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    ws = str(tmp_path / "ws")
    with WitnessServer() as witness:
        url = f"{witness.origin}/api.openai.com/v1"
        assert main(["-w", ws, "tiers", "set", "1", "--model", "gpt-4o-mini", "--base-url", url]) == 0
        capsys.readouterr()
        assert main(["-w", ws, "tiers", "list", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["provider"] == "compatible"
        assert main(["-w", ws, "keys", "status", "--json"]) == 0
        row = json.loads(capsys.readouterr().out)["tiers"][0]
        assert row["source"] == "none" and not row["has_key"]
        assert main(["-w", ws, "tasks", "import", str(TASKS)]) == 0
        main(["-w", ws, "collect", "--tier", "1", "--limit", "3"])
        assert bearer_hits(witness, OPENAI_KEY) == []
        # even naming the variable explicitly does not unbind it from OpenAI's host
        assert main(["-w", ws, "tiers", "set", "1", "--key-env", "OPENAI_API_KEY"]) == 0
        main(["-w", ws, "collect", "--tier", "1", "--limit", "3"])
        assert bearer_hits(witness, OPENAI_KEY) == []
    capsys.readouterr()


def tier_file(path: Path, url: str, env: str, insecure: bool = False) -> Path:
    path.write_text(json.dumps({"tiers": [
        {"tier": 1, "provider": "compatible", "base_url": url, "model": "m", "input_price": "1",
         "output_price": "1", "api_key_env": env, "allow_insecure": insecure},
        {"tier": 2, "provider": "compatible", "base_url": url, "model": "m", "input_price": "1",
         "output_price": "1"},
    ]}), encoding="utf-8")
    return path


def test_repro_imported_tier_file_chooses_the_secret(tmp_path, capsys, monkeypatch):
    """Repro 2: a tier file named any environment variable as the key for any host."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_KEY)
    ws = str(tmp_path / "ws")
    with WitnessServer() as witness:
        assert main(["-w", ws, "tasks", "import", str(TASKS)]) == 0
        for env in ("OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY"):
            capsys.readouterr()
            assert main(["-w", ws, "tiers", "import", str(tier_file(tmp_path / "t.json", witness.base_url, env))]) == 0
            err = capsys.readouterr().err
            assert "Dropped" in err and env in err and "No API key for tier 1, 2" in err
            assert main(["-w", ws, "tiers", "list", "--json"]) == 0
            assert json.loads(capsys.readouterr().out)[0]["api_key_env"] == ""
            main(["-w", ws, "collect", "--tier", "1", "--limit", "2"])
        assert bearer_hits(witness, OPENAI_KEY, AWS_KEY) == []
        # the user confirms: a variable the user trusts goes to the loopback host it names...
        tier_file(tmp_path / "t.json", witness.base_url, "AWS_SECRET_ACCESS_KEY")
        assert main(["-w", ws, "tiers", "import", str(tmp_path / "t.json"), "--trust-key-env"]) == 0
        assert "Kept" in capsys.readouterr().err
        # (the first import made these tiers: their origin is new until confirmed, issue 33)
        assert main(["-w", ws, "tiers", "confirm-origin", "1"]) == 0
        assert main(["-w", ws, "collect", "--tier", "1", "--limit", "2"]) == 0
        assert len(bearer_hits(witness, AWS_KEY)) == 2
        # ...but OPENAI_API_KEY never leaves for another host, trusted or not
        tier_file(tmp_path / "t.json", witness.base_url, "OPENAI_API_KEY")
        assert main(["-w", ws, "tiers", "import", str(tmp_path / "t.json"), "--trust-key-env"]) == 0
        main(["-w", ws, "collect", "--tier", "1", "--limit", "4"])
        assert bearer_hits(witness, OPENAI_KEY) == []
    capsys.readouterr()


def test_imported_insecure_permission_needs_confirmation(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    tier_file(tmp_path / "t.json", "http://10.99.0.1:8000/v1", "", insecure=True)
    assert main(["-w", ws, "tiers", "import", str(tmp_path / "t.json")]) == 0
    assert "plain http" in capsys.readouterr().err
    assert main(["-w", ws, "keys", "status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["tiers"]
    assert rows[0]["source"] == "refused" and "clear text" in rows[0]["hint"]
    assert main(["-w", ws, "tiers", "import", str(tmp_path / "t.json"), "--trust-key-env"]) == 0
    capsys.readouterr()
    assert main(["-w", ws, "keys", "status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["tiers"]
    assert rows[0]["transport"] == "http (INSECURE, allowed)" and rows[1]["source"] == "refused"


def test_tiers_set_refuses_plain_http_to_another_machine(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    args = ["-w", ws, "tiers", "set", "1", "--model", "m", "--input-price", "1", "--output-price", "1"]
    assert main([*args, "--base-url", "http://192.168.1.20:8000/v1"]) != 0
    err = capsys.readouterr().err
    assert "clear text" in err and "--allow-insecure" in err
    assert main([*args, "--base-url", "http://192.168.1.20:8000/v1", "--allow-insecure"]) == 0
    assert main([*args, "--base-url", "http://localhost:8000/v1", "--no-allow-insecure"]) == 0
    assert main(["-w", ws, "keys", "status"]) == 0
    assert "http://localhost:8000/v1" in capsys.readouterr().out


async def test_withheld_key_sends_nothing(memory_keyring):
    secrets = SecretStore(environ={"CASCADE_STUDIO_TIER1_API_KEY": "sk-tier-one-secret"})
    tier = Tier(tier=1, model="m", provider=Provider.COMPATIBLE, base_url="http://10.99.0.1:8000/v1")
    source = secrets.resolve(tier)
    assert source.key is None and source.source == "refused"
    with pytest.raises(KeyWithheldError) as err:
        make_async_client(tier, secrets)
    kind, message = describe_error(err.value, tier)
    assert kind == "insecure" and "No request was sent" in message and "sk-tier-one" not in message


async def test_redirect_never_carries_the_key(memory_keyring):
    key = "sk-redirect-secret-987654321"
    with WitnessServer() as target, WitnessServer(redirect_to=None) as first:
        first.redirect_to = target.origin  # another origin (another port)
        secrets = SecretStore(environ={})
        secrets.set_key(first.base_url, key)
        tier = Tier(tier=1, model="m", provider=Provider.COMPATIBLE, base_url=first.base_url)
        async with make_async_client(tier, secrets) as client:
            with pytest.raises(openai.APIStatusError) as err:
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            kind, message = describe_error(err.value, tier)
            assert kind == "redirect" and target.origin in message
            with pytest.raises(openai.APIStatusError):
                await client.models.list()
        assert first.auth_headers == [f"Bearer {key}"] * 2  # the typed address got it, as asked
        assert target.requests == []  # nothing, key or not, followed the redirect


def test_policy_snippet_takes_keys_only_from_its_command_line(tmp_path, monkeypatch):
    tiers = [Tier(tier=1, model="m", provider=Provider.COMPATIBLE, base_url="http://127.0.0.1:9/v1",
                  api_key_env="AWS_SECRET_ACCESS_KEY"),
             Tier(tier=2, model="gpt-4o", provider=Provider.OPENAI, base_url="https://api.openai.com/v1")]
    snippet = export_policy(tiers, tmp_path / "policy.json")
    doc = json.loads((tmp_path / "policy.json").read_text())
    assert all("api_key_env" not in t for t in doc["tiers"])
    namespace: dict = {"__file__": str(snippet), "__name__": "policy_apply"}
    exec(compile(snippet.read_text(), str(snippet), "exec"), namespace)
    key_for = namespace["key_for"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    t1, t2 = doc["tiers"]
    assert key_for(t1) == "sk-no-key"  # the JSON cannot name a variable
    assert key_for(t1, {1: "AWS_SECRET_ACCESS_KEY"}) == AWS_KEY  # the command line can
    assert key_for(t1, {1: "OPENAI_API_KEY"}) == "sk-no-key"  # but not send OpenAI's key elsewhere
    assert key_for(t2) == OPENAI_KEY
    monkeypatch.setenv("CASCADE_STUDIO_TIER1_API_KEY", "sk-tier1-documented")
    assert key_for(t1) == "sk-tier1-documented"
    with pytest.raises(SystemExit):
        key_for({**t1, "base_url": "http://10.0.0.1/v1"})


def test_tiers_set_logprobs_and_no_key_flags(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    assert main(["-w", ws, "tiers", "set", "1", "--model", "llama", "--base-url", "http://localhost:8000/v1",
                 "--input-price", "0", "--output-price", "0", "--keyless", "--logprobs", "off",
                 "--top-logprobs", "20", "--without-logprobs", "answer"]) == 0
    capsys.readouterr()
    assert main(["-w", ws, "tiers", "list", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["no_key"], row["logprobs"], row["top_logprobs"], row["without_logprobs"]) == (True, "off", 20, "answer")
    assert main(["-w", ws, "keys", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tiers"][0]["source"] == "not needed"
    assert main(["-w", ws, "tiers", "set", "1", "--top-logprobs", "21"]) != 0
    assert "top_logprobs" in capsys.readouterr().err
    assert main(["-w", ws, "tiers", "set", "1", "--base-url", "https://gpu.example/v1"]) != 0
    assert "no_key" in capsys.readouterr().err
