"""The cascade policy: everything that decides a production answer, in one portable document.

Per tier: the model, endpoint, system prompt, temperature and other request parameters, whether it
asks for logprobs (and how many alternatives), the confidence method, the threshold and what a
student without confidence does; its prices (to log costs). The cascade mode says how tiers are
combined. Keys are never part of a policy: the gateway finds them in its environment or keyring.

Pure: parsing and checking a document, and the escalation rule the gateway applies. The same
`core.trajectory` functions that the app records trajectories with compute a tier's confidence and
cost, so production decides exactly as the evaluation that chose the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import (
    MAX_TIERS,
    LogprobsMode,
    Tier,
    TierError,
    WithoutLogprobs,
    generation_id,
    teacher_of,
    validate_tier_set,
)

FORMAT = "cascade-studio/policy@1"
MODES = ("cascade",)
EPISODE_POLICIES = ("step", "rest")  # core.episode_eval.POLICIES: the rule the what-if simulated  # routing needs a trained router; the gateway applies the cascade
# Request parameters a policy may fix per tier besides model, messages, temperature and logprobs.
PARAMS = ("top_p", "max_tokens", "max_completion_tokens", "frequency_penalty", "presence_penalty", "seed",
          "stop", "reasoning_effort", "parallel_tool_calls", "service_tier")
# What a client may add to its request: the task itself, never what decides how a tier answers.
CLIENT_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "max_tokens",
                 "max_completion_tokens", "stop", "user")


class PolicyError(UserError):
    """A policy file that cannot be served; the message names the field and the fix."""


@dataclass
class Policy:
    tiers: list[Tier]  # cheapest first; the last is the teacher (always answers)
    mode: str = "cascade"
    name: str = "cascade"  # the model name clients ask for (GET /v1/models)
    params: dict[int, dict[str, Any]] = field(default_factory=dict)  # per tier: PARAMS values
    # agent episodes (each request is a step): {"policy": "step"} cascades every step from the lowest
    # tier; {"policy": "rest"}: once a step went up to tier N, the episode's later steps start at N
    episode_rule: dict[str, Any] | None = None

    @property
    def episode_policy(self) -> str:
        return (self.episode_rule or {}).get("policy", "step")

    def tiers_from(self, floor: int | None) -> list[Tier]:
        """The tiers a step starts with: all of them, or (policy "rest") those at or above `floor`."""
        if self.episode_policy != "rest" or not floor:
            return self.tiers
        return [t for t in self.tiers if t.tier >= floor] or [self.teacher]

    @property
    def teacher(self) -> Tier:
        return self.tiers[-1]

    def is_teacher(self, tier: Tier) -> bool:
        return tier.tier == self.teacher.tier


def keeps(tier: Tier, confidence: float | None, *, is_teacher: bool) -> bool:
    """Whether a tier's answer is final: the teacher always is; a student when its confidence reaches
    its threshold; a student without confidence per its 'without logprobs' rule (the rule
    core.tradeoffs.Outcomes.decision_confidence applies to recorded answers)."""
    if is_teacher:
        return True
    if confidence is None:
        return tier.without_logprobs == WithoutLogprobs.ANSWER
    return confidence >= tier.threshold


def tier_entry(t: Tier, *, teacher: bool, params: dict[str, Any] | None = None,
               calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """One tier of a policy document (never a key, nor where to find one)."""
    return {
        "tier": t.tier, "name": t.name, "role": "teacher" if teacher else "student", "model": t.model,
        "provider": t.provider.value, "base_url": t.base_url, "simulated": t.simulated,
        "generation": generation_id(t),
        "system_prompt": t.system_prompt, "temperature": t.temperature, "params": dict(params or {}),
        "logprobs": t.wants_logprobs, "top_logprobs": t.top_logprobs,
        "confidence_method": t.confidence_method.value, "threshold": None if teacher else t.threshold,
        "without_logprobs": t.without_logprobs.value, "timeout_s": t.timeout_s, "no_key": t.no_key,
        "input_price": str(t.input_price), "output_price": str(t.output_price),
        "cached_price": None if t.cached_price is None else str(t.cached_price),
        "calibration": calibration,
        # a prompt-distilled student: its demonstrations (and, "nearest", the index they are chosen
        # by), applied by the gateway as collection applied them (core.demonstrations)
        "demonstrations": None if t.demonstrations is None else t.demonstrations.to_json(index=True),
    }


def policy_from_json(doc: Any) -> Policy:
    """Parse and check a policy document; raises PolicyError naming what is wrong and how to fix it."""
    if not isinstance(doc, dict):
        raise PolicyError("the policy must be a JSON object; export one with `cascade-studio policy export FILE`")
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise PolicyError(f"format: {fmt!r} is not {FORMAT!r}; export the policy again with this version of "
                          "Cascade Studio (`cascade-studio policy export FILE`)")
    mode = doc.get("mode", "cascade")
    if mode not in MODES:
        raise PolicyError(f"mode: {mode!r} cannot be served; the gateway applies 'cascade' (routing needs a "
                          "trained router)")
    entries = doc.get("tiers")
    if not isinstance(entries, list) or not entries:
        raise PolicyError("tiers: missing or empty; a policy needs at least one tier (the teacher)")
    tiers: list[Tier] = []
    params: dict[int, dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PolicyError(f"tiers[{i}]: must be an object")
        if "api_key" in entry or "api_key_env" in entry:
            raise PolicyError(f"tiers[{i}]: a policy never names a key or a key variable; remove it and give the "
                              f"gateway the key in its environment ({_env_hint(entry)}) or keyring")
        for key in ("model", "base_url"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise PolicyError(f"tiers[{i}].{key}: missing; each tier needs a model and a base_url")
        data = {k: v for k, v in entry.items() if k not in ("threshold", "logprobs", "allow_insecure")}
        data["logprobs"] = (LogprobsMode.ON if entry.get("logprobs", True) else LogprobsMode.OFF).value
        threshold = entry.get("threshold")
        data["threshold"] = 0.0 if threshold is None else threshold
        try:
            tier = Tier.from_json(data)
        except TierError as exc:
            raise PolicyError(f"tiers[{i}].{exc.field}: {exc.message}") from None
        p = entry.get("params") or {}
        if not isinstance(p, dict) or any(k not in PARAMS for k in p):
            unknown = sorted(set(p) - set(PARAMS)) if isinstance(p, dict) else p
            raise PolicyError(f"tiers[{i}].params: {unknown!r} not allowed; use only {', '.join(PARAMS)}")
        params[tier.tier] = dict(p)
        tiers.append(tier)
    tiers.sort(key=lambda t: t.tier)
    issues = validate_tier_set(tiers)
    if len(tiers) > MAX_TIERS or issues:
        raise PolicyError("; ".join(str(i) for i in issues) or f"at most {MAX_TIERS} tiers")
    teacher = teacher_of(tiers)
    for t, entry in zip(tiers, sorted(entries, key=lambda e: int(e["tier"])), strict=True):
        if t is not teacher and entry.get("threshold") is None:
            raise PolicyError(f"tier {t.tier}: threshold missing; a student needs one (0-1: escalate below it)")
    name = doc.get("name") or "cascade"
    if not isinstance(name, str):
        raise PolicyError("name: must be text (the model name clients ask for)")
    rule = doc.get("episode_rule")
    if rule is not None and not (isinstance(rule, dict) and rule.get("policy", "step") in EPISODE_POLICIES):
        raise PolicyError(f"episode_rule: {rule!r} is not {{\"policy\": \"step\"}} or {{\"policy\": \"rest\"}} (below "
                          "its threshold a step escalates that step, or the rest of the episode)")
    return Policy(tiers, mode, name, params, rule)


def _env_hint(entry: dict[str, Any]) -> str:
    try:
        return f"CASCADE_STUDIO_TIER{int(entry.get('tier'))}_API_KEY"
    except (TypeError, ValueError):
        return "CASCADE_STUDIO_TIER<N>_API_KEY"
