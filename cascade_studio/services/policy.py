"""Export the cascade policy: tiers, models, endpoints (never keys), thresholds, confidence
methods, plus a short Python snippet that applies it to a live request."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from cascade_studio import __version__
from cascade_studio.core.tiers import Tier, default_env_var

SNIPPET = '''"""Apply a Cascade Studio policy to a live request: ask tier 1, escalate while its confidence is
below the tier's threshold. Keys come from the environment variables named in the policy."""
import json, math, os, sys
from openai import OpenAI

policy = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), {policy_name!r})))


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


def answer(messages, tools=None):
    tiers = sorted(policy["tiers"], key=lambda t: t["tier"])
    for tier in tiers:
        client = OpenAI(base_url=tier["base_url"], api_key=os.environ.get(tier["api_key_env"], "sk-none"))
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
    tier, conf, message = answer([{{"role": "user", "content": " ".join(sys.argv[1:]) or "Hello"}}])
    print(f"answered by tier {{tier}} (confidence {{conf}}):", message.content or message.tool_calls)
'''


def policy_document(tiers: list[Tier], calibration: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    top = max(t.tier for t in tiers) if tiers else 0
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
            "api_key_env": t.api_key_env or default_env_var(t.tier), "timeout_s": t.timeout_s,
            "temperature": t.temperature, "calibration": (calibration or {}).get(t.tier),
        } for t in sorted(tiers, key=lambda x: x.tier)],
    }


def export_policy(tiers: list[Tier], target: Path, calibration: dict[int, dict[str, Any]] | None = None) -> Path:
    """Writes FILE (JSON) and FILE's stem + '_apply.py' next to it; returns the snippet's path."""
    target = Path(target)
    doc = policy_document(tiers, calibration)
    snippet = target.with_name(target.stem + "_apply.py")
    for path, text in ((target, json.dumps(doc, indent=2)), (snippet, SNIPPET.format(policy_name=target.name))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return snippet
