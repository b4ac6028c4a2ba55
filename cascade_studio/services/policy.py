"""Export the cascade policy: tiers, models, endpoints (never keys), thresholds, confidence
methods, plus a short Python snippet that applies it to a live request."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from cascade_studio import __version__
from cascade_studio.core.tiers import Tier, default_env_var, teacher_of
from cascade_studio.services.output_files import write_text

SNIPPET = '''"""Apply a Cascade Studio policy to a live request: ask tier 1, escalate while its confidence is
below the tier's threshold.

Keys never come from the policy file. Tier N's key is read from CASCADE_STUDIO_TIER<N>_API_KEY, or
from a variable you name on the command line (--key-env N=VAR, or key_env={{N: "VAR"}} in code);
OPENAI_API_KEY is used only for https://api.openai.com. A key is sent over plain http only to this
machine (loopback).
"""
import ipaddress, json, math, os, sys
from urllib.parse import urlparse
from openai import OpenAI

policy = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), {policy_name!r})))


def _loopback(host):
    host = (host or "").lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_for(tier, key_env=None):
    url = urlparse(tier["base_url"])
    if url.username or url.password or not (url.scheme == "https" or (url.scheme == "http" and _loopback(url.hostname))):
        raise SystemExit(f"tier {{tier['tier']}}: refusing to send a key to {{tier['base_url']}} (plain http to another machine)")
    openai_host = url.scheme == "https" and url.hostname == "api.openai.com" and url.port in (None, 443)
    names = [(key_env or {{}}).get(tier["tier"]), f"CASCADE_STUDIO_TIER{{tier['tier']}}_API_KEY"]
    if openai_host:
        names.append("OPENAI_API_KEY")
    for name in names:
        if name and (name != "OPENAI_API_KEY" or openai_host) and os.environ.get(name):
            return os.environ[name].strip()
    return "sk-no-key"  # local servers that need no key accept any value


def confidence(choice, method):
    tokens = (choice.logprobs and choice.logprobs.content) or []
    probs = [math.exp(t.logprob) for t in tokens]
    if not probs:
        return None
    if method == "min_token_prob":
        return min(probs)
    if method == "tool_name_prob":
        calls = choice.message.tool_calls or []
        if not calls:
            return probs[0]
        text = "".join(t.token for t in tokens)
        at = text.find(calls[0].function.name)
        if at < 0:
            return None
        spans, pos = [], 0
        for t in tokens:
            spans.append((pos, pos + len(t.token), t.logprob))
            pos += len(t.token)
        end = at + len(calls[0].function.name)
        return math.exp(sum(lp for s, e, lp in spans if e > at and s < end))
    return sum(probs) / len(probs)


def answer(messages, tools=None, key_env=None):
    tiers = sorted(policy["tiers"], key=lambda t: t["tier"])
    for tier in tiers:
        client = OpenAI(base_url=tier["base_url"], api_key=key_for(tier, key_env))
        kwargs = dict(model=tier["model"], messages=messages, logprobs=True, top_logprobs=5)
        if tools:
            kwargs["tools"] = tools
        response = client.chat.completions.create(**kwargs)
        choice = response.choices[0]
        conf = confidence(choice, tier["confidence_method"])
        is_last = tier is tiers[-1]
        if is_last or (conf is not None and conf >= tier["threshold"]):
            return tier["tier"], conf, choice.message


if __name__ == "__main__":
    args, key_env = sys.argv[1:], {{}}
    while len(args) >= 2 and args[0] == "--key-env":
        number, _, name = args[1].partition("=")
        key_env[int(number)] = name
        args = args[2:]
    tier, conf, message = answer([{{"role": "user", "content": " ".join(args) or "Hello"}}], key_env=key_env)
    print(f"answered by tier {{tier}} (confidence {{conf}}):", message.content or message.tool_calls)
'''


def policy_document(tiers: list[Tier], calibration: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    teacher = teacher_of(tiers)
    top = teacher.tier if teacher else 0
    return {
        "format": "cascade-studio/policy@1",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "mode": "cascade",
        "rule": "Ask tier 1 first; escalate to the next tier while the answer's confidence is below the tier's "
                "threshold; the top tier (the teacher) always answers.",
        "tiers": [{
            "tier": t.tier, "name": t.name, "role": "teacher" if t.tier == top else "student", "model": t.model,
            "provider": t.provider.value, "base_url": t.base_url, "simulated": t.simulated,
            "confidence_method": t.confidence_method.value, "threshold": None if t.tier == top else t.threshold,
            "key_env_default": default_env_var(t.tier), "timeout_s": t.timeout_s,
            "temperature": t.temperature, "calibration": (calibration or {}).get(t.tier),
        } for t in sorted(tiers, key=lambda x: x.tier)],
    }


def export_policy(tiers: list[Tier], target: Path, calibration: dict[int, dict[str, Any]] | None = None) -> Path:
    """Writes FILE (JSON) and FILE's stem + '_apply.py' next to it; returns the snippet's path."""
    target = Path(target)
    doc = policy_document(tiers, calibration)
    snippet = target.with_name(target.stem + "_apply.py")
    for path, text in ((target, json.dumps(doc, indent=2)), (snippet, SNIPPET.format(policy_name=target.name))):
        write_text(path, text)
    return snippet
