"""The Together key goes only to Together's https host (or a server on this machine given
explicitly as the API root); TOGETHER_API_KEY is bound to Together's host as OPENAI_API_KEY is to
OpenAI's; a redirect does not carry the key on."""

from __future__ import annotations

import pytest

from cascade_studio.core.finetune import JobSpec
from cascade_studio.core.tiers import Provider, Tier, is_together_url
from cascade_studio.services.finetune import tracker
from cascade_studio.services.finetune.together_backend import (
    TogetherError,
    TogetherFineTuneBackend,
    TogetherKeyError,
)
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from tests.services.test_finetune_together import MODEL, openai_dataset
from tests.services.witness import WitnessServer

ENV_KEY = "tk-env-together-0123456789"


@pytest.mark.parametrize("url, together", [
    ("https://api.together.xyz/v1", True),
    ("https://api.together.ai/v1", True),
    ("https://API.TOGETHER.XYZ:443/v1", True),
    ("http://api.together.xyz/v1", False),
    ("https://api.together.xyz.evil.example/v1", False),
    ("https://evil.example/api.together.xyz/v1", False),
    ("https://user:pw@api.together.xyz/v1", False),
    ("https://api.together.xyz:8443/v1", False),
])
def test_together_host_is_parsed_not_searched(url, together):
    assert is_together_url(url) is together


@pytest.mark.parametrize("url", ["https://evil.example/v1", "http://10.0.0.5:8000/v1",
                                 "https://api.together.xyz.evil.example/v1", "https://user:pw@api.together.xyz/v1"])
def test_no_key_for_other_hosts(url):
    secrets = SecretStore(environ={"TOGETHER_API_KEY": ENV_KEY})
    secrets.set_key(url, "tk-stored-for-that-host-0123", session_only=True)  # even a key stored for it
    with pytest.raises(TogetherKeyError, match="sent nowhere else. No request was sent"):
        TogetherFineTuneBackend(url, secrets)


def test_env_key_only_for_togethers_host():
    secrets = SecretStore(environ={"TOGETHER_API_KEY": ENV_KEY})
    assert secrets.together_key("https://api.together.xyz/v1").source == "env:TOGETHER_API_KEY"
    assert secrets.together_key("http://127.0.0.1:9/v1").source == "none"  # a local server: its own key only
    with pytest.raises(TogetherKeyError, match="keys set http://127.0.0.1:9/v1"):
        TogetherFineTuneBackend("http://127.0.0.1:9/v1", secrets)
    # a tier at Together's host uses it; a tier elsewhere that names it does not get it
    at_together = Tier(tier=1, provider=Provider.COMPATIBLE, base_url="https://api.together.xyz/v1", model="m")
    assert secrets.resolve(at_together).source == "env:TOGETHER_API_KEY"
    elsewhere = Tier(tier=1, provider=Provider.COMPATIBLE, base_url="https://evil.example/v1", model="m",
                     api_key_env="TOGETHER_API_KEY")
    assert not secrets.resolve(elsewhere).found


async def test_a_local_server_gets_its_own_key_never_the_env_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", ENV_KEY)
    ws = Workspace.open(tmp_path / "ws")
    with WitnessServer() as witness:
        secrets = SecretStore()
        secrets.set_key(witness.base_url, "tk-local-witness-0123456789")
        with pytest.raises(TogetherError):  # the witness is no Together server; what matters is what it heard
            await tracker.start_job(ws, JobSpec(MODEL, openai_dataset(tmp_path / "t.jsonl")), None, secrets,
                                    backend_name="together", base_url=witness.base_url)
        assert witness.auth_headers and set(witness.auth_headers) == {"Bearer tk-local-witness-0123456789"}
    with WitnessServer() as target, WitnessServer(redirect_to=target.origin) as redirector:
        secrets = SecretStore()
        secrets.set_key(redirector.base_url, "tk-redirected-0123456789")
        with pytest.raises(TogetherError, match="redirect"):
            await tracker.start_job(ws, JobSpec(MODEL, openai_dataset(tmp_path / "t.jsonl")), None, secrets,
                                    backend_name="together", base_url=redirector.base_url)
        assert target.auth_headers == []
    ws.close()
