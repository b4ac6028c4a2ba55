"""Tier definitions: what model answers at each level of the cascade, and what it costs.

Tier numbers run 1..N (N <= 3); the highest-numbered tier is the teacher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from cascade_studio.core.demonstrations import DemonstrationsError, PromptProgram
from cascade_studio.core.errors import UserError
from cascade_studio.core.money import to_decimal

MAX_TIERS = 3
OPENAI_HOST = "api.openai.com"
OPENAI_BASE_URL = f"https://{OPENAI_HOST}/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
# Together AI: its API root and the hosts it answers on (the spec names .ai, its SDKs .xyz)
TOGETHER_HOSTS = ("api.together.xyz", "api.together.ai")
TOGETHER_BASE_URL = "https://api.together.xyz/v1"
TOGETHER_KEY_ENV = "TOGETHER_API_KEY"


class Provider(StrEnum):
    OPENAI = "openai"
    COMPATIBLE = "compatible"  # vLLM, Ollama, LM Studio, Together, ... any OpenAI-compatible server
    SANDBOX = "sandbox"  # the built-in simulated server

    @property
    def label(self) -> str:
        return {
            "openai": "OpenAI",
            "compatible": "OpenAI-compatible (vLLM, Ollama, LM Studio, Together, ...)",
            "sandbox": "Built-in sandbox (simulated)",
        }[self.value]


class ConfidenceMethod(StrEnum):
    MEAN_PROB = "mean_token_prob"
    MIN_PROB = "min_token_prob"
    TOOL_NAME_PROB = "tool_name_prob"

    @property
    def label(self) -> str:
        return {
            "mean_token_prob": "Mean token probability",
            "min_token_prob": "Minimum token probability",
            "tool_name_prob": "Probability of the chosen tool name",
        }[self.value]


class LogprobsMode(StrEnum):
    """Whether a tier's requests ask for logprobs. Some OpenAI-compatible servers refuse the field
    (400) or fail building them; "auto" asks, and on such a failure retries once without and
    remembers it for the tier."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class WithoutLogprobs(StrEnum):
    """What a student tier does when it has no confidence (no logprobs): escalate every request,
    or keep every answer (never escalate)."""

    ESCALATE = "escalate"
    ANSWER = "answer"


MAX_TOP_LOGPROBS = 20  # the API's limit
NO_KEY_PLACEHOLDER = "sk-no-key-needed"  # sent to local servers marked "no key needed"


# Well-known local servers, offered as presets in the editor.
ENDPOINT_PRESETS: dict[str, str] = {
    "OpenAI": OPENAI_BASE_URL,
    "vLLM (local)": "http://localhost:8000/v1",
    "Ollama (local)": "http://localhost:11434/v1",
    "LM Studio (local)": "http://localhost:1234/v1",
    "Together": TOGETHER_BASE_URL,
}


@dataclass
class Tier:
    tier: int
    name: str = ""
    provider: Provider = Provider.OPENAI
    base_url: str = OPENAI_BASE_URL
    model: str = ""
    input_price: Decimal = Decimal(0)  # USD per 1M input tokens
    output_price: Decimal = Decimal(0)  # USD per 1M output tokens
    cached_price: Decimal | None = None  # USD per 1M cached input tokens
    timeout_s: float = 60.0
    max_concurrency: int = 8
    rpm_limit: int | None = None  # requests per minute; None = unlimited
    tpm_limit: int | None = None  # tokens per minute; None = unlimited
    temperature: float = 0.0
    system_prompt: str = ""
    confidence_method: ConfidenceMethod = ConfidenceMethod.MEAN_PROB
    threshold: float = 0.5  # escalate when confidence < threshold
    api_key_env: str = ""  # optional environment variable holding this tier's key
    allow_insecure: bool = False  # the user accepted sending the key over plain http to a non-loopback host
    logprobs: LogprobsMode = LogprobsMode.AUTO
    top_logprobs: int = 5  # 0-20 alternatives per token: what soft-label distillation learns from
    logprobs_unsupported: bool = False  # learned in "auto" mode: the server failed when asked for them
    without_logprobs: WithoutLogprobs = WithoutLogprobs.ESCALATE
    no_key: bool = False  # a local server (loopback) that needs no key: a placeholder is sent
    # An import moved the tier to an origin the user has not confirmed: its key variables (the
    # tier's own and CASCADE_STUDIO_TIER<N>_API_KEY) are withheld from it until they do.
    key_origin_pending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # a prompt-distilled generation: demonstrations placed before each task (core.demonstrations)
    demonstrations: PromptProgram | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.model or f"Tier {self.tier}"

    @property
    def simulated(self) -> bool:
        return self.provider == Provider.SANDBOX

    @property
    def wants_logprobs(self) -> bool:
        if self.logprobs == LogprobsMode.AUTO:
            return not self.logprobs_unsupported
        return self.logprobs == LogprobsMode.ON

    def replace(self, **changes: Any) -> Tier:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Portable form (exports, CLI --json). Never contains a key, only where to find one."""
        return {
            "tier": self.tier,
            "name": self.name,
            "provider": self.provider.value,
            "base_url": self.base_url,
            "model": self.model,
            "input_price": str(self.input_price),
            "output_price": str(self.output_price),
            "cached_price": None if self.cached_price is None else str(self.cached_price),
            "timeout_s": self.timeout_s,
            "max_concurrency": self.max_concurrency,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "temperature": self.temperature,
            "system_prompt": self.system_prompt,
            "confidence_method": self.confidence_method.value,
            "threshold": self.threshold,
            "api_key_env": self.api_key_env,
            "allow_insecure": self.allow_insecure,
            "logprobs": self.logprobs.value,
            "top_logprobs": self.top_logprobs,
            "logprobs_unsupported": self.logprobs_unsupported,
            "without_logprobs": self.without_logprobs.value,
            "no_key": self.no_key,
            "simulated": self.simulated,
            **({} if self.demonstrations is None else {"demonstrations": self.demonstrations.to_json(index=True)}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tier:
        """Parse an exported tier; raises TierError naming the bad field."""
        if not isinstance(data, dict):
            raise TierError("tier", "each tier must be a JSON object")
        try:
            tier_no = int(data["tier"])
        except (KeyError, TypeError, ValueError):
            raise TierError("tier", "missing or not a whole number 1-3") from None

        def dec(key: str, default: Decimal | None) -> Decimal | None:
            value = data.get(key)
            if value is None or value == "":
                return default
            try:
                return to_decimal(value)
            except ValueError:
                raise TierError(key, f"{value!r} is not a number; give USD per 1M tokens, e.g. 2.50") from None

        def num(key: str, kind: type, default: Any) -> Any:
            value = data.get(key, default)
            if value is None:
                return None
            try:
                return kind(value)
            except (TypeError, ValueError):
                raise TierError(key, f"{value!r} is not a number") from None

        try:
            provider = Provider(data.get("provider", Provider.OPENAI.value))
        except ValueError:
            raise TierError("provider", f"unknown provider {data.get('provider')!r}; use openai, compatible or sandbox") from None
        try:
            method = ConfidenceMethod(data.get("confidence_method", ConfidenceMethod.MEAN_PROB.value))
        except ValueError:
            choices = ", ".join(m.value for m in ConfidenceMethod)
            raise TierError("confidence_method", f"unknown method; use one of {choices}") from None
        def choice(key: str, enum: type[StrEnum], default: StrEnum) -> Any:
            try:
                return enum(data.get(key, default.value))
            except ValueError:
                raise TierError(key, f"use one of {', '.join(e.value for e in enum)}") from None

        return cls(
            tier=tier_no,
            name=str(data.get("name", "")),
            provider=provider,
            base_url=str(data.get("base_url", OPENAI_BASE_URL)),
            model=str(data.get("model", "")),
            input_price=dec("input_price", Decimal(0)) or Decimal(0),
            output_price=dec("output_price", Decimal(0)) or Decimal(0),
            cached_price=dec("cached_price", None),
            timeout_s=num("timeout_s", float, 60.0),
            max_concurrency=num("max_concurrency", int, 8),
            rpm_limit=num("rpm_limit", int, None),
            tpm_limit=num("tpm_limit", int, None),
            temperature=num("temperature", float, 0.0),
            system_prompt=str(data.get("system_prompt", "")),
            confidence_method=method,
            threshold=num("threshold", float, 0.5),
            api_key_env=str(data.get("api_key_env", "") or ""),
            allow_insecure=data.get("allow_insecure") is True,
            logprobs=choice("logprobs", LogprobsMode, LogprobsMode.AUTO),
            top_logprobs=num("top_logprobs", int, 5),
            logprobs_unsupported=data.get("logprobs_unsupported") is True,
            without_logprobs=choice("without_logprobs", WithoutLogprobs, WithoutLogprobs.ESCALATE),
            no_key=data.get("no_key") is True,
            demonstrations=_program(data.get("demonstrations")),
        )


def _program(doc: Any) -> PromptProgram | None:
    if doc is None:
        return None
    try:
        return PromptProgram.from_json(doc)
    except DemonstrationsError as exc:
        raise TierError("demonstrations", str(exc)) from None


class TierError(UserError, ValueError):
    """A tier field is invalid. `field` names it; the message says how to fix it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


# How each field is named to a user (form labels, "Fix before saving" lines).
FIELD_LABELS = {
    "base_url": "Base URL", "model": "Model id", "input_price": "Input price", "output_price": "Output price",
    "cached_price": "Cached input price", "timeout_s": "Timeout", "max_concurrency": "Max concurrency",
    "rpm_limit": "Requests/min", "tpm_limit": "Tokens/min", "temperature": "Temperature",
    "threshold": "Threshold", "api_key_env": "Key variable", "provider": "Provider", "tier": "Tier",
    "top_logprobs": "Top logprobs", "no_key": "No key needed",
}


def field_label(field_name: str) -> str:
    return FIELD_LABELS.get(field_name, field_name)


@dataclass(frozen=True)
class ValidationIssue:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_base_url(url: str) -> str | None:
    url = url.strip()
    if not url:
        return "is empty; enter the server's API root, e.g. https://api.openai.com/v1 or http://localhost:8000/v1"
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        return f"{url!r} must start with http:// or https:// (e.g. http://localhost:8000/v1)"
    if not parsed.hostname:
        return f"{url!r} has no host name; e.g. http://localhost:8000/v1"
    try:
        parsed.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{url!r} has an invalid port; ports are 1-65535"
    if parsed.query or parsed.fragment:
        return f"{url!r} must not contain ?query or #fragment; give only the API root"
    if url.rstrip("/").endswith("/chat/completions"):
        return "points at an endpoint; give the API root instead (drop /chat/completions)"
    return None


def validate_tier(t: Tier) -> list[ValidationIssue]:
    """All problems with one tier, each naming the field and the fix."""
    issues: list[ValidationIssue] = []

    def bad(field_name: str, message: str) -> None:
        issues.append(ValidationIssue(field_name, message))

    if not 1 <= t.tier <= MAX_TIERS:
        bad("tier", f"must be 1-{MAX_TIERS}, got {t.tier}")
    if not t.model.strip():
        bad("model", "is empty; enter the model id the server expects, e.g. gpt-4o-mini")
    elif t.model != t.model.strip():
        bad("model", "has leading or trailing spaces; remove them")
    url_problem = validate_base_url(t.base_url)
    if url_problem:
        bad("base_url", url_problem)
    elif t.provider == Provider.OPENAI and not is_openai_url(t.base_url):
        bad("provider", f"is OpenAI but the base URL is not {OPENAI_BASE_URL}; choose 'OpenAI-compatible' instead")
    for name in ("input_price", "output_price", "cached_price"):
        value = getattr(t, name)
        if value is None:
            continue
        if not value.is_finite():
            bad(name, "must be a finite number of USD per 1M tokens")
        elif value < 0:
            bad(name, f"is negative ({value}); prices are USD per 1M tokens, 0 or more")
        elif value > 10_000:
            bad(name, f"{value} USD per 1M tokens looks wrong; prices are per 1M tokens, not per token")
    if not (t.timeout_s > 0 and t.timeout_s <= 3600):
        bad("timeout_s", "must be between 0 and 3600 seconds")
    if not 1 <= t.max_concurrency <= 1024:
        bad("max_concurrency", "must be 1-1024 parallel requests")
    for name in ("rpm_limit", "tpm_limit"):
        value = getattr(t, name)
        if value is not None and value <= 0:
            bad(name, "must be a positive number, or empty for no limit")
    if not 0.0 <= t.temperature <= 2.0:
        bad("temperature", "must be between 0 and 2")
    if not 0.0 <= t.threshold <= 1.0:
        bad("threshold", "must be between 0 and 1 (escalate when confidence is below it)")
    if not 0 <= t.top_logprobs <= MAX_TOP_LOGPROBS:
        bad("top_logprobs", f"must be 0-{MAX_TOP_LOGPROBS} (the API's limit)")
    if t.no_key and t.provider == Provider.OPENAI:
        bad("no_key", "OpenAI always needs a key; 'no key needed' is for local servers")
    elif t.no_key and not url_problem and not is_loopback_host(urlparse(t.base_url.strip()).hostname or ""):
        bad("no_key", "'no key needed' is only for a server on this machine (localhost, 127.0.0.1, ::1)")
    if t.api_key_env and not _ENV_NAME.match(t.api_key_env):
        bad("api_key_env", f"{t.api_key_env!r} is not a valid environment variable name")
    return issues


def validate_tier_set(tiers: list[Tier]) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    numbers = sorted(t.tier for t in tiers)
    if len(tiers) > MAX_TIERS:
        issues.append(ValidationIssue("tiers", f"at most {MAX_TIERS} tiers; remove one"))
    if len(set(numbers)) != len(numbers):
        issues.append(ValidationIssue("tier", "two tiers share a number; each tier number is used once"))
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        issues.append(ValidationIssue("tier", f"tiers must be numbered 1..{len(numbers)} without gaps, got {numbers}"))
    for t in tiers:
        issues.extend(ValidationIssue(f"tier {t.tier} {i.field}", i.message) for i in validate_tier(t))
    return issues


def teacher_of(tiers: list[Tier]) -> Tier | None:
    return max(tiers, key=lambda t: t.tier) if tiers else None


def default_env_var(tier_no: int) -> str:
    """The documented per-tier environment variable for an API key."""
    return f"CASCADE_STUDIO_TIER{tier_no}_API_KEY"


# -- where keys may go -------------------------------------------------------------------------
# One home for the rules that decide whether a key may be sent to a URL. A substring test is not
# enough: "http://evil.example/api.openai.com/v1" contains the text but is not OpenAI.

def _is_https_host(url: str, hosts: tuple[str, ...]) -> bool:
    """https to one of `hosts` on the default port, with no user info."""
    try:
        parsed = urlparse(url.strip())
        port = parsed.port
    except ValueError:
        return False
    return (parsed.scheme.lower() == "https" and (parsed.hostname or "") in hosts
            and parsed.username is None and parsed.password is None and port in (None, 443))


def is_openai_url(url: str) -> bool:
    """True only for https://api.openai.com[:443]/..., with no user info."""
    return _is_https_host(url, (OPENAI_HOST,))


def is_together_url(url: str) -> bool:
    """True only for https://api.together.xyz|api.together.ai[:443]/..., with no user info."""
    return _is_https_host(url, TOGETHER_HOSTS)


def is_loopback_url(url: str) -> bool:
    """http(s) to this machine, without user info (a local test server given explicitly)."""
    try:
        parsed = urlparse(url.strip())
    except ValueError:
        return False
    return (parsed.scheme.lower() in ("http", "https") and is_loopback_host(parsed.hostname or "")
            and parsed.username is None and parsed.password is None)


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1: addresses that never leave this machine."""
    host = host.strip().lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalized_endpoint(base_url: str) -> str:
    """A base URL in one spelling: scheme://host[:port]/path, lower-case host, no trailing slash
    (the keyring's user name for an endpoint, and part of a tier's generation)."""
    parsed = urlparse(base_url.strip())
    host = (parsed.hostname or "").lower()
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme.lower()}://{host}{port}{parsed.path.rstrip('/')}"


def key_destination(url: str) -> str:
    """The origin a key is sent to (scheme://host:port), for audits and messages."""
    try:
        parsed = urlparse(url.strip())
        port = parsed.port
    except ValueError:
        return url.strip()
    scheme = parsed.scheme.lower()
    port = port or {"https": 443, "http": 80}.get(scheme)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def transport_problem(base_url: str, allow_insecure: bool = False) -> str | None:
    """Why a key must not be sent to this URL, or None when it may.

    Keys travel over https, or over plain http only to this machine (loopback), unless the user
    explicitly allowed plain http for the tier.
    """
    try:
        parsed = urlparse(base_url.strip())
    except ValueError:
        return f"{base_url!r} is not a valid URL"
    if parsed.username is not None or parsed.password is not None:
        return "contains a user name or password; give the API root without credentials"
    if parsed.scheme.lower() == "https":
        return None
    if parsed.scheme.lower() == "http" and (is_loopback_host(parsed.hostname or "") or allow_insecure):
        return None
    return (f"would send the API key in clear text over http to {key_destination(base_url)}, another machine; "
            "use https, or allow plain http for this tier explicitly (insecure: anyone on the network can read the key)")


# -- generations ---------------------------------------------------------------------------------
# A tier's generation is what decides its answers. Every trajectory records the generation that
# produced it; figures, datasets and skip decisions use the tier's current generation only.

def generation_params(t: Tier) -> dict[str, Any]:
    """The settings that decide a tier's answers: model, endpoint, system prompt, temperature. The
    built-in sandbox answers the same wherever it listens (a new port every start), so its endpoint
    is "sandbox": restarting the demo does not turn its answers into history."""
    endpoint = "sandbox" if t.provider == Provider.SANDBOX else normalized_endpoint(t.base_url)
    params: dict[str, Any] = {"model": t.model.strip(), "endpoint": endpoint, "system_prompt": t.system_prompt,
                              "temperature": float(t.temperature)}
    if t.demonstrations is not None:  # a prompt-distilled generation (tiers without keep their ids)
        params["demonstrations"] = t.demonstrations.fingerprint()
        params["demonstrations_mode"] = f"{t.demonstrations.mode}, k={t.demonstrations.k}"
    return params


def generation_id(t: Tier) -> str:
    """A short stable id of `generation_params` (12 hex digits)."""
    blob = json.dumps(generation_params(t), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


LEGACY_PREFIX = "legacy:"


def legacy_generation(model: str) -> str:
    """Trajectories recorded before generations existed carry "legacy:MODEL" (the run's model);
    they count for the generation with the same model (what was known then)."""
    return LEGACY_PREFIX + model.strip()


def generation_keys(t: Tier) -> tuple[str, ...]:
    """The generation values that belong to the tier's current generation (a prompt-distilled one
    never claims the model's legacy rows: those were answered without its demonstrations)."""
    if t.demonstrations is not None:
        return (generation_id(t),)
    return generation_id(t), legacy_generation(t.model)
