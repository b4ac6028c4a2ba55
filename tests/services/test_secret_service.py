"""One test against the real Secret Service (gnome-keyring under dbus-run-session, as .ci/run starts it).

Set CASCADE_STUDIO_REQUIRE_SECRET_SERVICE=1 (CI does) to make a missing Secret Service a failure."""

import os

import pytest

from cascade_studio.services.secrets import SecretStore

pytestmark = pytest.mark.secret_service


def _secret_service_backend():
    try:
        from keyring.backends.SecretService import Keyring
    except Exception as exc:  # pragma: no cover
        return None, f"SecretService backend unavailable: {exc}"
    backend = Keyring()
    try:
        backend.priority  # noqa: B018 - raises when no D-Bus session or no secretstorage
    except Exception as exc:
        return None, f"no Secret Service on D-Bus: {exc}"
    return backend, ""


def test_real_secret_service_round_trip():
    backend, why = _secret_service_backend()
    if backend is None:
        if os.environ.get("CASCADE_STUDIO_REQUIRE_SECRET_SERVICE") == "1":
            pytest.fail(why)
        pytest.skip(why)
    store = SecretStore(backend=backend)
    info = store.info()
    assert info.usable and info.secure, info.message
    url = "http://127.0.0.1:9/v1"
    store.set_key(url, "sk-real-secret-service-test-123")
    try:
        assert store.keyring_key(url) == "sk-real-secret-service-test-123"
    finally:
        store.delete_key(url)
    assert store.keyring_key(url) is None
