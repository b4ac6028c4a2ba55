import logging
import os

import keyring
import keyring.backends.fail
import pytest

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.secrets import (
    SANDBOX_KEY,
    SERVICE,
    RedactSecrets,
    SecretStore,
    SecretStoreError,
    describe_backend,
    endpoint_id,
)

KEY = "sk-test-1234567890abcdef"


def tier(n=1, url="https://api.openai.com/v1", provider=Provider.OPENAI, env=""):
    return Tier(tier=n, model="m", base_url=url, provider=provider, api_key_env=env)


def test_endpoint_id_normalises():
    assert endpoint_id("HTTP://LocalHost:8000/v1/") == "http://localhost:8000/v1"
    assert endpoint_id("https://api.openai.com/v1") == "https://api.openai.com/v1"


def test_keyring_round_trip(memory_keyring):
    store = SecretStore()
    assert store.set_key("http://localhost:8000/v1/", KEY) == "keyring"
    assert memory_keyring.store[(SERVICE, "http://localhost:8000/v1")] == KEY
    src = store.resolve(tier(url="http://localhost:8000/v1", provider=Provider.COMPATIBLE))
    assert (src.key, src.source) == (KEY, "keyring")
    store.delete_key("http://localhost:8000/v1")
    assert not store.resolve(tier(url="http://localhost:8000/v1", provider=Provider.COMPATIBLE)).found


def test_resolution_order():
    env = {"CASCADE_STUDIO_TIER2_API_KEY": "sk-env-tier-2", "OPENAI_API_KEY": "sk-openai-env", "MY_KEY": "sk-mine"}
    store = SecretStore(environ=env)
    store.set_key("https://api.openai.com/v1", KEY)
    assert store.resolve(tier(2)).source == "env:CASCADE_STUDIO_TIER2_API_KEY"
    assert store.resolve(tier(1, env="MY_KEY")).key == "sk-mine"
    assert store.resolve(tier(1)).source == "keyring"
    store.delete_key("https://api.openai.com/v1")
    assert store.resolve(tier(1)).source == "env:OPENAI_API_KEY"
    # OPENAI_API_KEY is never sent to other servers
    assert not store.resolve(tier(1, url="http://localhost:1/v1", provider=Provider.COMPATIBLE)).found
    assert store.resolve(tier(1, url="http://127.0.0.1:5/v1", provider=Provider.SANDBOX)).key == SANDBOX_KEY


def test_no_keyring_backend_says_so_and_offers_alternatives():
    store = SecretStore(backend=keyring.backends.fail.Keyring())
    info = store.info()
    assert not info.usable and "environment variable" in info.message and "session-only" in info.message
    with pytest.raises(SecretStoreError) as err:
        store.set_key("https://api.openai.com/v1", KEY)
    assert KEY not in str(err.value)
    assert store.set_key("https://api.openai.com/v1", KEY, session_only=True) == "session"
    assert store.resolve(tier()).source == "session"


def test_plaintext_backends_are_refused():
    class FakeAlt(keyring.backend.KeyringBackend):
        priority = 1

        def get_password(self, s, u):
            return None

        def set_password(self, s, u, p):
            raise AssertionError("must not write to a file-based keyring")

        def delete_password(self, s, u):
            pass

    FakeAlt.__module__ = "keyrings.alt.file"
    info = describe_backend(FakeAlt())
    assert info.usable and not info.secure
    with pytest.raises(SecretStoreError):
        SecretStore(backend=FakeAlt()).set_key("https://api.openai.com/v1", KEY)


def test_bad_keys_rejected_without_echo():
    store = SecretStore()
    for bad in ("", "   ", "sk-abc def"):
        with pytest.raises(SecretStoreError) as err:
            store.set_key("https://api.openai.com/v1", bad)
        assert "sk-abc" not in str(err.value)


def test_status_never_reveals_key():
    store = SecretStore(environ={})
    store.set_key("https://api.openai.com/v1", KEY)
    rows = store.status([tier(1), tier(2, url="http://localhost:1/v1", provider=Provider.COMPATIBLE),
                         tier(3, url="http://x:1/v1", provider=Provider.COMPATIBLE)])
    assert rows[0]["has_key"] and rows[0]["source"] == "keyring"
    assert rows[0]["sends_to"] == "https://api.openai.com:443" and rows[0]["transport"] == "https"
    assert not rows[1]["has_key"] and "keys set" in rows[1]["hint"] and rows[1]["transport"] == "http (this machine)"
    assert rows[2]["source"] == "refused" and "clear text" in rows[2]["hint"]
    assert KEY not in repr(rows)


def test_log_filter_redacts_keys():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling with %s and Bearer %s", (KEY, "abcdefghijkl"),
                               None)
    RedactSecrets().filter(record)
    assert KEY not in record.getMessage() and "abcdefghijkl" not in record.getMessage()


def test_env_var_default_is_not_os_environ_copy(monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_TIER1_API_KEY", "sk-from-env-xyz")
    assert SecretStore().resolve(tier(1)).key == "sk-from-env-xyz"
    assert os.environ["CASCADE_STUDIO_TIER1_API_KEY"] == "sk-from-env-xyz"
