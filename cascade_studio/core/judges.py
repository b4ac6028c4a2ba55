"""Judges: a model that grades what matching cannot (free text, conversations, whole episodes).

A judge is a workspace entry (name, endpoint, model, key rules as for tiers, prices) with a prompt
template the user can read and edit. Three kinds:

- reference: is the candidate answer equivalent to the reference (the teacher's or the expected
  one)? pass/fail with a short reason;
- pairwise: which of two answers is better, or a tie; asked in both orders, counted only when the
  two verdicts agree (else a tie), to cancel position bias;
- rubric: a score on a scale the user names (e.g. "fail,pass" or "1-5"), for one answer or one
  whole episode (did the agent achieve the user's goal?).

Templates name their inputs as `{question}`, `{reference}`, `{candidate}`, `{answer_a}`,
`{answer_b}`, `{episode}` and `{scale}`; each input is written between markers
(`<<<CANDIDATE>>>` ... `<<<END>>>`) so that neither the judge nor a parser confuses an answer's own
text with the instructions. A verdict the judge's answer does not give clearly is "unparseable":
recorded, counted and shown, never a pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import (
    Provider,
    Tier,
    is_loopback_host,
    is_openai_url,
    normalized_endpoint,
    validate_base_url,
)


class JudgeKind(StrEnum):
    REFERENCE = "reference"
    PAIRWISE = "pairwise"
    RUBRIC = "rubric"


class Structured(StrEnum):
    """Whether requests ask for JSON-schema structured outputs: "auto" asks and, when the server
    refuses the field, falls back to a parsed answer for the rest of the run."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


PASS, FAIL = "pass", "fail"
A, B, TIE = "A", "B", "tie"
UNPARSEABLE = "unparseable"
FIELDS = ("question", "reference", "candidate", "answer_a", "answer_b", "episode", "scale")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEFAULT_TEMPLATES = {
    JudgeKind.REFERENCE: (
        "You grade an AI assistant's answer against a reference answer for the same request.\n"
        "Decide whether the candidate answer is equivalent to the reference for this request: it gives the "
        "same facts, ids, numbers and conclusion (wording, order, politeness and extra detail do not matter; "
        "a missing or contradicting fact does).\n\n"
        "Request:\n{question}\n\nReference answer:\n{reference}\n\nCandidate answer:\n{candidate}\n\n"
        "Reply with a JSON object {\"verdict\": \"pass\" or \"fail\", \"reason\": one short sentence}, or, if you "
        "cannot reply in JSON, a last line `VERDICT: pass` or `VERDICT: fail`."),
    JudgeKind.PAIRWISE: (
        "You compare two answers of AI assistants to the same request and say which is better: more correct "
        "first, then more complete, then clearer. Length alone is not better. Say tie when neither is better.\n"
        "{reference}\n"
        "Request:\n{question}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\n"
        "Reply with a JSON object {\"verdict\": \"A\", \"B\" or \"tie\", \"reason\": one short sentence}, or a last "
        "line `VERDICT: A`, `VERDICT: B` or `VERDICT: tie`."),
    JudgeKind.RUBRIC: (
        "You grade an AI agent's work for a user. Score whether it achieved what the user asked for: the right "
        "actions with the right details, nothing the user did not ask for, and a final answer that reports "
        "it truthfully.\n\nScale (worst to best): {scale}\n\n"
        "Request:\n{question}\n\n{reference}\nWhat the agent did and answered:\n{episode}{candidate}\n\n"
        "Reply with a JSON object {\"verdict\": one value of the scale, \"reason\": one short sentence}, or a last "
        "line `VERDICT: <value>`."),
}


@dataclass
class Judge:
    name: str
    kind: JudgeKind = JudgeKind.REFERENCE
    provider: Provider = Provider.OPENAI
    base_url: str = "https://api.openai.com/v1"
    model: str = ""
    input_price: Decimal = Decimal(0)  # USD per 1M input tokens
    output_price: Decimal = Decimal(0)
    api_key_env: str = ""  # optional environment variable holding the judge's key
    allow_insecure: bool = False
    no_key: bool = False
    timeout_s: float = 60.0
    max_concurrency: int = 8
    scale: str = "fail,pass"  # rubric: values worst to best ("fail,pass", "1-5", "bad,ok,good")
    pass_at: str = ""  # rubric: the lowest value that counts as a pass ("" = the default for the scale)
    template: str = ""  # "" = the kind's default template
    structured: Structured = Structured.AUTO
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Judge:
        return dataclasses.replace(self, **changes)

    @property
    def simulated(self) -> bool:
        return self.provider == Provider.SANDBOX

    @property
    def prompt_template(self) -> str:
        return self.template or DEFAULT_TEMPLATES[self.kind]

    @property
    def template_version(self) -> str:
        """The template's identity: 8 hex digits of its text. Editing the template makes a new version,
        and verdicts of another version are never reused."""
        return hashlib.sha256(self.prompt_template.encode()).hexdigest()[:8]

    @property
    def generation(self) -> str:
        """What decides the judge's verdicts besides the template: model, endpoint, kind and scale."""
        endpoint = "sandbox" if self.simulated else normalized_endpoint(self.base_url)
        blob = json.dumps({"model": self.model.strip(), "endpoint": endpoint, "kind": self.kind.value,
                           "scale": self.scale_values, "pass_at": self.pass_value}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def scale_values(self) -> list[str]:
        return scale_values(self.scale)

    @property
    def pass_value(self) -> str:
        values = self.scale_values
        if self.pass_at:
            return self.pass_at
        if len(values) <= 2:
            return values[-1]
        return values[(2 * len(values)) // 3]

    def passes(self, value: str) -> bool | None:
        """Whether a verdict counts as a pass (reference: pass; rubric: at or above pass_at);
        None for an unparseable verdict or a pairwise one."""
        if self.kind == JudgeKind.REFERENCE:
            return {PASS: True, FAIL: False}.get(value)
        if self.kind == JudgeKind.RUBRIC:
            values = self.scale_values
            if value not in values:
                return None
            return values.index(value) >= values.index(self.pass_value)
        return None

    def connection_tier(self) -> Tier:
        """The judge's endpoint as a tier (tier number 0), for the key rules and the client that tiers
        use: the same keyring entry per endpoint, the same transport checks."""
        return Tier(tier=0, name=f"judge {self.name}", provider=self.provider, base_url=self.base_url,
                    model=self.model, input_price=self.input_price, output_price=self.output_price,
                    timeout_s=self.timeout_s, max_concurrency=self.max_concurrency,
                    api_key_env=self.api_key_env or judge_env_var(self.name), allow_insecure=self.allow_insecure,
                    no_key=self.no_key)

    def to_json(self) -> dict[str, Any]:
        """Portable form (CLI --json). Never a key, only where to find one."""
        return {"name": self.name, "kind": self.kind.value, "provider": self.provider.value,
                "base_url": self.base_url, "model": self.model, "input_price": str(self.input_price),
                "output_price": str(self.output_price), "api_key_env": self.api_key_env or judge_env_var(self.name),
                "allow_insecure": self.allow_insecure, "no_key": self.no_key, "timeout_s": self.timeout_s,
                "max_concurrency": self.max_concurrency, "scale": self.scale_values, "pass_at": self.pass_value,
                "structured": self.structured.value, "template_version": self.template_version,
                "template_edited": bool(self.template), "generation": self.generation, "simulated": self.simulated}


class JudgeError(UserError, ValueError):
    pass


def judge_env_var(name: str) -> str:
    """The documented environment variable for a judge's key (CASCADE_STUDIO_JUDGE_<NAME>_API_KEY)."""
    return "CASCADE_STUDIO_JUDGE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_API_KEY"


def scale_values(scale: str) -> list[str]:
    """"1-5" -> ["1", ..., "5"]; "fail,pass" -> ["fail", "pass"] (worst to best)."""
    text = (scale or "").strip()
    m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
    if m and int(m.group(1)) < int(m.group(2)) <= int(m.group(1)) + 20:
        return [str(v) for v in range(int(m.group(1)), int(m.group(2)) + 1)]
    return [v.strip() for v in text.split(",") if v.strip()]


def validate_judge(j: Judge) -> list[str]:
    """Every problem with a judge, each naming the field and the fix."""
    issues = []
    if not _NAME.match(j.name or ""):
        issues.append("name: use 1-64 letters, digits, '.', '_' or '-' (e.g. gpt4o-ref)")
    if not j.model.strip():
        issues.append("model: is empty; give the judge's model id, e.g. gpt-4o")
    url_problem = validate_base_url(j.base_url)
    if url_problem:
        issues.append(f"base_url: {url_problem}")
    elif j.provider == Provider.OPENAI and not is_openai_url(j.base_url):
        issues.append("provider: is OpenAI but the base URL is not https://api.openai.com/v1; use compatible")
    if j.no_key and not url_problem:
        from urllib.parse import urlparse

        if not is_loopback_host(urlparse(j.base_url.strip()).hostname or ""):
            issues.append("no_key: 'no key needed' is only for a server on this machine")
    for name in ("input_price", "output_price"):
        value = getattr(j, name)
        if not value.is_finite() or value < 0 or value > 10_000:
            issues.append(f"{name}: give USD per 1M tokens, 0 or more")
    if j.api_key_env and not _ENV_NAME.match(j.api_key_env):
        issues.append(f"api_key_env: {j.api_key_env!r} is not a valid environment variable name")
    values = j.scale_values
    if j.kind == JudgeKind.RUBRIC:
        if len(values) < 2 or len(set(values)) != len(values):
            issues.append("scale: name at least two distinct values, worst to best: 'fail,pass' or '1-5'")
        elif j.pass_at and j.pass_at not in values:
            issues.append(f"pass_at: {j.pass_at!r} is not a value of the scale ({', '.join(values)})")
    missing = [f for f in required_fields(j.kind) if "{" + f + "}" not in j.prompt_template]
    if missing:
        issues.append("template: must contain " + ", ".join("{" + f + "}" for f in missing))
    if not 0 < j.timeout_s <= 3600:
        issues.append("timeout_s: must be between 0 and 3600 seconds")
    if not 1 <= j.max_concurrency <= 256:
        issues.append("max_concurrency: must be 1-256")
    return issues


def required_fields(kind: JudgeKind) -> tuple[str, ...]:
    return {JudgeKind.REFERENCE: ("candidate", "reference"), JudgeKind.PAIRWISE: ("answer_a", "answer_b"),
            JudgeKind.RUBRIC: ("scale",)}[kind]


# -- requests ------------------------------------------------------------------------------------------
def marked(name: str, value: str) -> str:
    return f"<<<{name.upper()}>>>\n{value}\n<<<END>>>"


def render(template: str, inputs: dict[str, str]) -> str:
    """The prompt: each `{field}` replaced by its input between markers; a field without an input
    becomes empty (the reference of a rubric without one, say)."""
    out = template
    for name in FIELDS:
        value = inputs.get(name)
        out = out.replace("{" + name + "}", marked(name, value) if value else "")
    return out


def inputs_hash(kind: JudgeKind, inputs: dict[str, str]) -> str:
    """The identity of one judgement's inputs (with the judge's generation and template version,
    the key a verdict is stored under)."""
    blob = json.dumps({"kind": kind.value, **{k: v for k, v in sorted(inputs.items()) if v}},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def verdict_values(judge: Judge) -> list[str]:
    if judge.kind == JudgeKind.REFERENCE:
        return [PASS, FAIL]
    if judge.kind == JudgeKind.PAIRWISE:
        return [A, B, TIE]
    return judge.scale_values


def response_format(judge: Judge) -> dict[str, Any]:
    """The JSON-schema structured output a judge's answer must follow."""
    return {"type": "json_schema", "json_schema": {
        "name": f"judge_{judge.kind.value}", "strict": True,
        "schema": {"type": "object", "additionalProperties": False, "required": ["verdict", "reason"],
                   "properties": {"verdict": {"type": "string", "enum": verdict_values(judge)},
                                  "reason": {"type": "string"}}}}}


def build_request(judge: Judge, prompt: str, *, structured: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": judge.model.strip(), "messages": [{"role": "user", "content": prompt}],
                            "temperature": 0}
    if structured:
        body["response_format"] = response_format(judge)
    return body


@dataclass(frozen=True)
class Verdict:
    value: str  # one of the kind's values, or "unparseable"
    reason: str = ""

    @property
    def parsed(self) -> bool:
        return self.value != UNPARSEABLE


_LINE = re.compile(r"verdict\s*[:=]\s*\**\s*([A-Za-z0-9._-]+)", re.I)


def parse_verdict(judge: Judge, text: str | None) -> Verdict:
    """The verdict in a judge's answer: a JSON object {"verdict", "reason"} (structured output, or
    JSON in the text), else the last `VERDICT: x` line. Anything else is unparseable, never a pass."""
    allowed = {v.lower(): v for v in verdict_values(judge)}
    text = (text or "").strip()
    if not text:
        return Verdict(UNPARSEABLE, "empty answer")
    candidates = [text]
    m = re.search(r"\{.*\}", text, re.S)
    if m and m.group() != text:
        candidates.append(m.group())
    for blob in candidates:
        try:
            obj = json.loads(blob)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("verdict") is not None:
            value = allowed.get(str(obj["verdict"]).strip().lower())
            reason = str(obj.get("reason") or "")[:500]
            return Verdict(value, reason) if value else Verdict(UNPARSEABLE, f"verdict {obj['verdict']!r} is not "
                                                                              "on the scale")
    lines = _LINE.findall(text)
    if lines:
        value = allowed.get(lines[-1].strip().rstrip(".").lower())
        if value:
            return Verdict(value, text[:300])
    return Verdict(UNPARSEABLE, text[:300])


def combine_pairwise(first: str, swapped: str) -> str:
    """A pair asked as (A, B) and then as (B, A): the answer is A or B only when both orders name the
    same answer; otherwise (position bias, disagreement, an unparseable side) a tie."""
    unswapped = {A: B, B: A}.get(swapped, swapped)
    if first == unswapped and first in (A, B):
        return first
    if first == UNPARSEABLE or swapped == UNPARSEABLE:
        return UNPARSEABLE if first == swapped else TIE
    return TIE


# -- calibration against people --------------------------------------------------------------------------
def label_passes(label: str, judge: Judge) -> bool | None:
    """A person's label as pass/fail: good/accepted pass, bad/rejected fail, a score of the judge's
    scale at or above its pass value passes (another score: compared on a 1-5 reading, 4 or more)."""
    text = (label or "").strip().lower()
    if text in ("good", "accepted", "accept", PASS):
        return True
    if text in ("bad", "rejected", "reject", FAIL):
        return False
    if judge.kind == JudgeKind.RUBRIC and text in [v.lower() for v in judge.scale_values]:
        return judge.passes(next(v for v in judge.scale_values if v.lower() == text))
    try:
        return float(text) >= 4
    except ValueError:
        return None


def confusion(truth: list[bool], predicted: list[bool]) -> list[list[int]]:
    """[[tn, fp], [fn, tp]]: rows are the people's labels (fail, pass), columns the judge's verdicts."""
    m = [[0, 0], [0, 0]]
    for t, p in zip(truth, predicted, strict=True):
        m[int(t)][int(p)] += 1
    return m


def cohen_kappa(truth: list[bool], predicted: list[bool]) -> float | None:
    """Cohen's kappa of two raters over the same items: (observed - chance agreement) / (1 - chance).
    None without items, and None when both raters put every item in one class (chance agreement is
    1: kappa is undefined; scikit-learn's cohen_kappa_score gives nan there)."""
    n = len(truth)
    if n == 0:
        return None
    m = confusion(truth, predicted)
    observed = (m[0][0] + m[1][1]) / n
    expected = sum((m[k][0] + m[k][1]) * (m[0][k] + m[1][k]) for k in (0, 1)) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def judge_to_spec(j: Judge) -> dict[str, Any]:
    """The stored form of a judge (the workspace's `judges.spec`, exports): every setting, no key."""
    return {"name": j.name, "kind": j.kind.value, "provider": j.provider.value, "base_url": j.base_url,
            "model": j.model, "input_price": str(j.input_price), "output_price": str(j.output_price),
            "api_key_env": j.api_key_env, "allow_insecure": j.allow_insecure, "no_key": j.no_key,
            "timeout_s": j.timeout_s, "max_concurrency": j.max_concurrency, "scale": j.scale, "pass_at": j.pass_at,
            "template": j.template, "structured": j.structured.value}


def judge_from_spec(d: dict[str, Any]) -> Judge:
    """A judge from its stored or exported form; raises JudgeError naming the bad field."""
    if not isinstance(d, dict):
        raise JudgeError("a judge must be a JSON object")

    def choice(key: str, enum: type[StrEnum], default: StrEnum) -> Any:
        try:
            return enum(d.get(key) or default.value)
        except ValueError:
            raise JudgeError(f"{key}: use one of {', '.join(e.value for e in enum)}") from None

    try:
        return Judge(
            name=str(d.get("name") or ""), kind=choice("kind", JudgeKind, JudgeKind.REFERENCE),
            provider=choice("provider", Provider, Provider.OPENAI), base_url=str(d.get("base_url") or ""),
            model=str(d.get("model") or ""), input_price=Decimal(str(d.get("input_price") or 0)),
            output_price=Decimal(str(d.get("output_price") or 0)), api_key_env=str(d.get("api_key_env") or ""),
            allow_insecure=d.get("allow_insecure") is True, no_key=d.get("no_key") is True,
            timeout_s=float(d.get("timeout_s") or 60.0), max_concurrency=int(d.get("max_concurrency") or 8),
            scale=str(d.get("scale") or "fail,pass"), pass_at=str(d.get("pass_at") or ""),
            template=str(d.get("template") or ""), structured=choice("structured", Structured, Structured.AUTO))
    except (ArithmeticError, TypeError, ValueError) as exc:
        if isinstance(exc, JudgeError):
            raise
        raise JudgeError(f"a judge's prices, timeout or concurrency are not numbers: {exc}") from None
