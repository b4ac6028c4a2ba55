"""OpenAI-compatible clients for tiers, and turning API errors into sentences a user can act on."""

from __future__ import annotations

import ssl

import openai
from openai._constants import DEFAULT_CONNECTION_LIMITS

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import Tier, default_env_var
from cascade_studio.services.bounded_http import (
    REFUSED_HEADER,
    AnswerTooLarge,
    WholeRequestTimeout,
    bounded_transport,
    needs_loopback,
)
from cascade_studio.services.secrets import SecretStore

__all__ = ["WholeRequestTimeout", "http_client", "make_async_client", "describe_error"]


class MissingKeyError(UserError):
    pass


class KeyWithheldError(MissingKeyError):
    """The tier has a key, or might, but its destination is not one a key may be sent to."""


def warm_up() -> None:
    """Load the HTTP stack's lazily imported modules (~50 ms) ahead of the first request, at a
    moment when nobody is waiting (the GUI calls this from a worker thread once it is idle)."""
    client = openai.DefaultAsyncHttpxClient(verify=False)
    del client


def http_client(base_url: str, *, max_answer_bytes: int | None = None,
                loopback_only: bool = False) -> openai.DefaultAsyncHttpxClient:
    """The HTTP client for a tier: redirects are not followed, so a request (and its key) only
    ever goes to the URL the user typed; a redirect becomes an error naming the new address. The
    request's timeout bounds the whole request, reading the answer included, and an answer over the
    cap is refused unread (bounded_http)."""
    return openai.DefaultAsyncHttpxClient(
        transport=bounded_transport(base_url, max_bytes=max_answer_bytes, loopback_only=loopback_only,
                                    limits=DEFAULT_CONNECTION_LIMITS),
        follow_redirects=False)


def make_async_client(tier: Tier, secrets: SecretStore, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    source = secrets.resolve(tier)
    if source.source == "refused":
        raise KeyWithheldError(f"{source.reason} No request was sent.")
    if not source.found:
        raise MissingKeyError(
            f"Tier {tier.tier} ({tier.display_name}) has no API key for {tier.base_url}. "
            f"Set one with 'Set API key…' (or `cascade-studio keys set {tier.base_url}`), "
            f"or export {tier.api_key_env or default_env_var(tier.tier)}."
        )
    return openai.AsyncOpenAI(
        api_key=source.key, base_url=tier.base_url.rstrip("/"), timeout=tier.timeout_s, max_retries=max_retries,
        http_client=http_client(tier.base_url, loopback_only=needs_loopback(tier.base_url, tier.allow_insecure)),
    )


def describe_error(exc: BaseException, tier: Tier | None = None) -> tuple[str, str]:
    """(kind, sentence) for an exception from the openai SDK. Never includes the key."""
    where = tier.base_url if tier else "the server"
    model = tier.model if tier else "the model"
    if isinstance(exc, KeyWithheldError):
        return "insecure", str(exc)
    if isinstance(exc, MissingKeyError):
        return "no_key", str(exc)
    if isinstance(exc, openai.AuthenticationError):
        return "bad_key", (f"401 Unauthorized from {where}: the API key was rejected. "
                           "Check the key (Set API key…) or the environment variable, and that it belongs to this server.")
    if isinstance(exc, openai.PermissionDeniedError):
        return "forbidden", f"403 Forbidden from {where}: the key has no access to {model}. Check the project's permissions."
    if isinstance(exc, openai.NotFoundError):
        return "not_found", (f"404 Not Found: {where} does not know the model {model!r} (or the base URL path is "
                             "wrong). Check the model id and that the base URL ends with /v1.")
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited", f"429 Too Many Requests from {where}: rate limit or quota exceeded. Wait, or lower the tier's limits."
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", (f"Timed out after the tier's {tier.timeout_s:g} s timeout waiting for {where} "
                           "(the timeout bounds the whole request, reading the answer included). "
                           "The server may be overloaded or slow, or raise the timeout." if tier
                           else "Request timed out.")
    if isinstance(exc, openai.APIConnectionError):
        cause = _root_cause(exc)
        if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in str(cause).upper() or "SSL" in type(cause).__name__.upper():
            return "tls", (f"TLS error talking to {where}: {cause}. Check the URL's scheme (http vs https) and the "
                           "server's certificate.")
        text = str(cause)
        if isinstance(cause, ConnectionRefusedError) or "refused" in text.lower() or "Errno 111" in text:
            return "refused", f"Connection refused by {where}: nothing is listening there. Is the server running, and is the port right?"
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return "dns", f"Cannot resolve the host in {where}. Check the spelling of the base URL."
        return "connection", f"Cannot connect to {where}: {cause or exc}. Check the base URL and your network."
    if isinstance(exc, AnswerTooLarge):
        return "too_large", str(exc)
    if isinstance(exc, openai.APIStatusError) and exc.response.headers.get(REFUSED_HEADER):
        return "too_large", _short(exc)
    if isinstance(exc, openai.APIStatusError) and 300 <= exc.status_code < 400:
        target = exc.response.headers.get("location", "another address")
        return "redirect", (f"{exc.status_code} redirect from {where} to {target}. Requests and keys are never "
                            "forwarded to another address; if that is the right server, set the tier's base URL "
                            "to it.")
    if isinstance(exc, openai.APIStatusError):
        return "server_error", f"{exc.status_code} from {where}: {_short(exc)}"
    if isinstance(exc, UserError) and str(exc):  # already worded for the user (e.g. Together's backend)
        return "error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


CONNECTION_FAILURES = ("Connection refused by ", "Cannot resolve the host in ", "Cannot connect to ",
                       "TLS error talking to ")  # how describe_error's connection sentences begin


def failure_summary(failed: int, answered: int, last_error: str) -> str:
    """A run's closing line when tasks failed: names the last error, and says plainly when nothing
    answered because the server could not be reached (e.g. a sandbox that is no longer running)."""
    tasks = "1 task" if failed == 1 else f"{failed} tasks"
    last_error = last_error.strip()
    if not last_error:
        return f"{tasks} failed after retries; run again to retry them."
    if answered == 0 and last_error.startswith(CONNECTION_FAILURES):
        return f"{tasks} failed, none answered: {last_error}"
    return f"{tasks} failed after retries; the last error: {last_error} Run again to retry them."


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None or exc.__context__ is not None:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        exc = nxt
    return exc


def _short(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)[:300]
    return str(exc)[:300]
