"""API keys: the OS keyring first, environment variables as the documented alternative.

Keys are stored per endpoint (the normalised base URL), so two tiers on the same server share
one key. Nothing here ever writes a key to a file, a log line or an exception message.
Resolution order for a tier: its own env var (CASCADE_STUDIO_TIER<N>_API_KEY or the name set on
the tier) -> the keyring -> a session-only key -> OPENAI_API_KEY (for https://api.openai.com only).
Before any of that, the destination is checked: a key goes over https, or over plain http only to
this machine, unless the user allowed plain http for the tier (`core.tiers.transport_problem`).
OPENAI_API_KEY is bound to OpenAI's host whichever way it is named, so a tier file that names it as
its key variable cannot send it elsewhere; TOGETHER_API_KEY likewise to Together's https hosts.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import (
    NO_KEY_PLACEHOLDER,
    OPENAI_KEY_ENV,
    TOGETHER_KEY_ENV,
    Provider,
    Tier,
    default_env_var,
    is_loopback_host,
    is_loopback_url,
    is_openai_url,
    is_together_url,
    key_destination,
    normalized_endpoint,
    transport_problem,
)

if TYPE_CHECKING:  # keyring is imported on first use: loading its backends costs ~150 ms at startup
    import keyring.backend

log = logging.getLogger(__name__)
SERVICE = "cascade-studio"
SANDBOX_KEY = "sk-sandbox-not-a-secret"  # the built-in sandbox accepts any non-empty key
TOGETHER_HOST_NAMES = "api.together.xyz or api.together.ai"


class SecretStoreError(UserError):
    pass


def endpoint_id(base_url: str) -> str:
    """The keyring's user name for a base URL (core.tiers.normalized_endpoint)."""
    return normalized_endpoint(base_url)


@dataclass(frozen=True)
class KeyringInfo:
    name: str
    usable: bool
    secure: bool
    message: str


@dataclass(frozen=True)
class KeySource:
    key: str | None
    source: str  # "env:NAME", "keyring", "session", "sandbox", "none", or "refused"
    reason: str = ""  # why no key is given out ("refused"), in words

    @property
    def found(self) -> bool:
        return bool(self.key)


def describe_backend(backend: keyring.backend.KeyringBackend | None = None) -> KeyringInfo:
    if backend is None:
        import keyring

        backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    cls = type(backend).__name__
    if "fail" in type(backend).__module__ or cls == "FailKeyring":
        return KeyringInfo(name, False, False,
                           "No OS keyring is available (no Secret Service, macOS Keychain or Windows Credential "
                           "Locker was found). Set the key in an environment variable (OPENAI_API_KEY or "
                           "CASCADE_STUDIO_TIER<N>_API_KEY) or enter a session-only key that is forgotten on exit. "
                           "On Linux, install and unlock gnome-keyring or KWallet to store keys.")
    if type(backend).__module__.startswith("keyrings.alt"):
        return KeyringInfo(name, True, False,
                           f"The keyring backend {name} stores keys in a file, not in the OS keyring. "
                           "Cascade Studio will not use it; use an environment variable or a session-only key.")
    try:
        priority = backend.priority  # type: ignore[attr-defined]
    except Exception:
        priority = 1
    if priority is not None and priority <= 0 and cls != "ChainerBackend":
        return KeyringInfo(name, False, False, f"The keyring backend {name} is not usable here.")
    return KeyringInfo(name, True, True, f"Keys are stored in the OS keyring ({cls}).")


class SecretStore:
    """Thin wrapper over `keyring` with session-only fallback and environment variables."""

    def __init__(self, backend: keyring.backend.KeyringBackend | None = None, environ: dict[str, str] | None = None):
        self._backend = backend
        self._session: dict[str, str] = {}
        self._lock = threading.Lock()
        self._environ = environ if environ is not None else os.environ

    @property
    def backend(self) -> keyring.backend.KeyringBackend:
        if self._backend is not None:
            return self._backend
        import keyring

        return keyring.get_keyring()

    def info(self) -> KeyringInfo:
        return describe_backend(self.backend)

    # -- storing -----------------------------------------------------------------------
    def set_key(self, base_url: str, key: str, *, session_only: bool = False) -> str:
        """Store a key; returns where it went ("keyring" or "session")."""
        key = key.strip()
        if not key:
            raise SecretStoreError("The key is empty; paste the API key from your provider's dashboard.")
        if any(c.isspace() for c in key):
            raise SecretStoreError("The key contains spaces or line breaks; paste only the key itself.")
        ep = endpoint_id(base_url)
        if session_only:
            with self._lock:
                self._session[ep] = key
            return "session"
        self._store(ep, key, "the key", " or use a session-only key")
        with self._lock:
            self._session.pop(ep, None)
        log.info("Stored an API key for %s in the OS keyring", ep)
        return "keyring"

    def delete_key(self, base_url: str) -> None:
        ep = endpoint_id(base_url)
        with self._lock:
            self._session.pop(ep, None)
        import keyring.errors

        try:
            self.backend.delete_password(SERVICE, ep)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"The OS keyring refused to delete the key ({type(exc).__name__}).") from None

    # -- other secrets (an environment's headers and variables) -------------------------
    def set_secret(self, account: str, value: str) -> None:
        """Store a secret that is not an API key (e.g. "env:NAME:header:Authorization") in the keyring."""
        self._store(account, value, account)

    def _store(self, account: str, value: str, what: str, alternative: str = "") -> None:
        info = self.info()
        if not info.usable or not info.secure:
            raise SecretStoreError(info.message)
        import keyring.errors

        try:
            self.backend.set_password(SERVICE, account, value)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"The OS keyring refused to store {what} ({type(exc).__name__}). "
                                   f"Unlock your keyring and try again{alternative}.") from None

    def get_secret(self, account: str) -> str | None:
        info = self.info()
        if not info.usable or not info.secure:
            return None
        import keyring.errors

        try:
            return self.backend.get_password(SERVICE, account)
        except keyring.errors.KeyringError as exc:
            log.warning("Keyring lookup failed: %s", type(exc).__name__)
            return None

    def delete_secret(self, account: str) -> None:
        import keyring.errors

        try:
            self.backend.delete_password(SERVICE, account)
        except keyring.errors.KeyringError:
            pass

    # -- reading -----------------------------------------------------------------------
    def keyring_key(self, base_url: str) -> str | None:
        info = self.info()
        if not info.usable or not info.secure:
            return None
        import keyring.errors

        try:
            return self.backend.get_password(SERVICE, endpoint_id(base_url))
        except keyring.errors.KeyringError as exc:
            log.warning("Keyring lookup failed: %s", type(exc).__name__)
            return None

    def resolve(self, tier: Tier) -> KeySource:
        problem = transport_problem(tier.base_url, tier.allow_insecure) or plain_http_problem(tier)
        if problem:
            return KeySource(None, "refused", f"Tier {tier.tier}'s base URL {problem}.")
        openai_host = is_openai_url(tier.base_url)
        together_host = is_together_url(tier.base_url)
        env_names = [n for n in (tier.api_key_env, default_env_var(tier.tier)) if n]
        withheld = ""
        for name in env_names:
            if (name == OPENAI_KEY_ENV and not openai_host) or (name == TOGETHER_KEY_ENV and not together_host):
                continue  # the OpenAI (Together) key goes to OpenAI (Together) only, whoever names it
            value = self._environ.get(name)
            if value and tier.key_origin_pending:
                withheld = withheld or name  # a key variable follows the tier, not the host: not to a new one
                continue
            if value:
                return KeySource(value.strip(), f"env:{name}")
        stored = self.keyring_key(tier.base_url)
        if stored:
            return KeySource(stored, "keyring")
        with self._lock:
            session = self._session.get(endpoint_id(tier.base_url))
        if session:
            return KeySource(session, "session")
        for bound_env, bound_host in ((OPENAI_KEY_ENV, openai_host), (TOGETHER_KEY_ENV, together_host)):
            value = self._environ.get(bound_env) if bound_host else None
            if value:
                return KeySource(value.strip(), f"env:{bound_env}")
        if tier.provider == Provider.SANDBOX:
            return KeySource(SANDBOX_KEY, "sandbox")
        if tier.no_key and is_loopback_host(urlparse(tier.base_url.strip()).hostname or ""):
            return KeySource(NO_KEY_PLACEHOLDER, "not needed")
        if withheld:
            return KeySource(None, "refused", origin_pending_reason(tier, withheld))
        return KeySource(None, "none")

    def together_key(self, base_url: str) -> KeySource:
        """The key for Together's fine-tuning API at `base_url`: only Together's https host, or a server
        on this machine named explicitly (a test server), is given one. The keyring (per endpoint) or a
        session key first; TOGETHER_API_KEY only for Together's own host."""
        if not (is_together_url(base_url) or is_loopback_url(base_url)):
            return KeySource(None, "refused", f"{base_url} is not Together's API (https://{TOGETHER_HOST_NAMES}) "
                                              "or a server on this machine; a Together key is sent nowhere else.")
        stored = self.keyring_key(base_url)
        if stored:
            return KeySource(stored, "keyring")
        with self._lock:
            session = self._session.get(endpoint_id(base_url))
        if session:
            return KeySource(session, "session")
        value = self._environ.get(TOGETHER_KEY_ENV) if is_together_url(base_url) else None
        if value and value.strip():
            return KeySource(value.strip(), f"env:{TOGETHER_KEY_ENV}")
        return KeySource(None, "none")

    def status(self, tiers: list[Tier]) -> list[dict[str, object]]:
        """Where each tier's key comes from and where it will be sent, without revealing it."""
        rows = []
        for t in tiers:
            src = self.resolve(t)
            rows.append({
                "tier": t.tier,
                "endpoint": endpoint_id(t.base_url),
                "sends_to": key_destination(t.base_url),
                "transport": transport_label(t),
                "has_key": src.found,
                "source": src.source,
                "hint": None if src.found else (src.reason or self.missing_key_hint(t)),
            })
        return rows

    def missing_key_hint(self, t: Tier) -> str:
        env = t.api_key_env or default_env_var(t.tier)
        info = self.info()
        if info.usable and info.secure:
            return f"run `cascade-studio keys set {t.base_url}` or set {env}"
        return f"set {env}, or enter a session-only key in the app (no OS keyring is available here)"

    def known_secrets(self) -> list[str]:
        """Session keys, for the log redaction filter."""
        with self._lock:
            return list(self._session.values())


def origin_pending_reason(t: Tier, variable: str) -> str:
    return (f"Tier {t.tier} was moved to {key_destination(t.base_url)} by a tier file import; the key in "
            f"{variable} is withheld from that new origin until you confirm it (`cascade-studio tiers "
            f"confirm-origin {t.tier}`, or import again with --allow-new-origin).")


def plain_http_problem(t: Tier) -> str | None:
    """For plain http without the user's leave: whether the host really is this machine now (a name
    like evil.localhost is resolved, not trusted; the connection checks again, `loopback`)."""
    from cascade_studio.services.bounded_http import needs_loopback
    from cascade_studio.services.loopback import not_loopback_reason

    if not needs_loopback(t.base_url, t.allow_insecure):
        return None
    parsed = urlparse(t.base_url.strip())
    reason = not_loopback_reason(parsed.hostname or "")
    if reason is None:
        return None
    return (f"would send the API key in clear text over http: {reason}; use https, or allow plain http for "
            "this tier explicitly (insecure)")


def transport_label(t: Tier) -> str:
    """How the key travels: "https", "http (this machine)", "http (INSECURE, allowed)" or "refused"."""
    if transport_problem(t.base_url, t.allow_insecure) or plain_http_problem(t):
        return "refused"
    if t.base_url.strip().lower().startswith("https://"):
        return "https"
    if transport_problem(t.base_url, False) is None:
        return "http (this machine)"
    return "http (INSECURE, allowed)"


class RedactSecrets(logging.Filter):
    """Belt and braces: mask anything that looks like an API key in log records."""

    import re as _re

    _PATTERN = _re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|tgp_v1_[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-\.]{8,})")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        redacted = self._PATTERN.sub("[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
