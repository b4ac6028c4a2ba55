"""Export and load the cascade policy (core.policy): tiers, models, endpoints (never keys), system
prompts, temperatures, request parameters, logprobs, thresholds and confidence methods.

Beside the JSON, export writes FILE_apply.py: a standalone snippet for quick trials. Its confidence
functions are the app's own (`core.confidence`'s source, copied in when the snippet is written), and
its requests carry each tier's system prompt, temperature, parameters and logprobs, so it decides
as the app measured. For production, serve the policy with the gateway (`cascade-studio serve`)."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from pathlib import Path
from typing import Any

from cascade_studio import __version__
from cascade_studio.core import confidence as confidence_module
from cascade_studio.core.jsonl import JsonProblem, loads
from cascade_studio.core.policy import FORMAT, Policy, PolicyError, policy_from_json, tier_entry
from cascade_studio.core.tiers import Tier, teacher_of
from cascade_studio.services.input_files import read_text
from cascade_studio.services.output_files import write_text

SNIPPET = '''"""Apply a Cascade Studio policy to a live request: ask tier 1, escalate while its confidence is
below the tier's threshold.

For production, serve the policy instead: `cascade-studio serve --policy {policy_name}` is an
OpenAI-compatible gateway that applies it, logs every request and brings hard cases home.

Keys never come from the policy file. Tier N's key is read from CASCADE_STUDIO_TIER<N>_API_KEY, or
from a variable you name on the command line (--key-env N=VAR, or key_env={{N: "VAR"}} in code);
OPENAI_API_KEY is used only for https://api.openai.com. A key is sent over plain http only to this
machine (loopback).
"""
import ipaddress, json, os, socket, sys
from urllib.parse import urlparse
from openai import OpenAI

policy = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), {policy_name!r})))


def _loopback(host):
    host = (host or "").lower().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host != "localhost" and not host.endswith(".localhost"):
        return False
    try:  # a name is this machine only when it resolves to loopback addresses alone: checked, not assumed
        found = {{info[4][0] for info in socket.getaddrinfo(host, None)}}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


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


# ---- the app's confidence functions (cascade_studio/core/confidence.py, copied when exported) ----
{confidence_source}
# ---------------------------------------------------------------------------------------------------


def confidence(choice, method):
    """The tier's confidence, computed by the app's own function over the answer's logprobs."""
    tokens = [t.model_dump() for t in ((choice.logprobs and choice.logprobs.content) or [])] or None
    calls = choice.message.tool_calls or []
    return confidences(tokens, calls[0].function.name if calls else None)[method]


def request_for(tier, messages, tools=None):
    """The request the tier was evaluated with: its system prompt, temperature, parameters, logprobs."""
    if tier.get("demonstrations"):
        raise SystemExit(f"tier {{tier['tier']}} is prompt-distilled: its demonstrations are applied by the gateway "
                         f"(cascade-studio serve --policy {policy_name}), not by this snippet")
    msgs = list(messages)
    if tier["system_prompt"] and not any(m.get("role") in ("system", "developer") for m in msgs):
        msgs.insert(0, {{"role": "system", "content": tier["system_prompt"]}})
    body = dict(model=tier["model"], messages=msgs, temperature=tier["temperature"], **tier["params"])
    if tier["logprobs"]:
        body.update(logprobs=True, top_logprobs=tier["top_logprobs"])
    if tools:
        body["tools"] = tools
    return body


def keeps(tier, conf, is_last):
    if is_last:
        return True
    if conf is None:
        return tier["without_logprobs"] == "answer"
    return conf >= tier["threshold"]


def answer(messages, tools=None, key_env=None):
    tiers = sorted(policy["tiers"], key=lambda t: t["tier"])
    for tier in tiers:
        client = OpenAI(base_url=tier["base_url"], api_key=key_for(tier, key_env), timeout=tier["timeout_s"])
        choice = client.chat.completions.create(**request_for(tier, messages, tools)).choices[0]
        conf = confidence(choice, tier["confidence_method"])
        if keeps(tier, conf, tier is tiers[-1]):
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


def policy_document(tiers: list[Tier], calibration: dict[int, dict[str, Any]] | None = None,
                    params: dict[int, dict[str, Any]] | None = None, name: str = "cascade",
                    episode_policy: str = "step") -> dict[str, Any]:
    teacher = teacher_of(tiers)
    top = teacher.tier if teacher else 0
    return {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "name": name,
        "mode": "cascade",
        "rule": "Ask tier 1 first; escalate to the next tier while the answer's confidence is below the tier's "
                "threshold; the top tier (the teacher) always answers.",
        "episode_rule": {"policy": episode_policy, "floor_header": "x-cascade-min-tier",
                         "episode_header": "x-cascade-episode"},
        "tiers": [tier_entry(t, teacher=t.tier == top, params=(params or {}).get(t.tier),
                             calibration=(calibration or {}).get(t.tier))
                  for t in sorted(tiers, key=lambda x: x.tier)],
    }


def snippet_text(policy_name: str) -> str:
    """The standalone snippet, with the app's confidence functions copied in."""
    source = inspect.getsource(confidence_module).replace("from __future__ import annotations\n", "")
    return SNIPPET.format(policy_name=policy_name, confidence_source=source.strip())


def export_policy(tiers: list[Tier], target: Path, calibration: dict[int, dict[str, Any]] | None = None, *,
                  episode_policy: str = "step") -> Path:
    """Writes FILE (JSON) and FILE's stem + '_apply.py' next to it; returns the snippet's path."""
    target = Path(target)
    doc = policy_document(tiers, calibration, episode_policy=episode_policy)
    snippet = target.with_name(target.stem + "_apply.py")
    for path, text in ((target, json.dumps(doc, indent=2)), (snippet, snippet_text(target.name))):
        write_text(path, text)
    return snippet


def load_policy(path: Path | str) -> Policy:
    """Read and check a policy file; every problem is a PolicyError naming the file and the fix."""
    path = Path(path)

    def error(problem: str, line: int | None = None) -> PolicyError:
        return PolicyError(f"{path}{f':{line}' if line else ''}: {problem}")

    text = read_text(path, error)
    try:
        doc = loads(text)
    except JsonProblem as exc:
        raise error(f"not valid JSON ({exc.message}); export the policy with `cascade-studio policy export FILE`",
                    exc.line) from None
    try:
        return policy_from_json(doc)
    except PolicyError as exc:
        raise error(str(exc)) from None
