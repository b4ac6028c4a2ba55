"""The gateway's request log: one home for what a line holds, written by `cascade_studio.gateway` and
read back by `services.traffic` (`cascade-studio traffic import`).

Each line is one JSON object with `format` = FORMAT and `kind`:

- "request": `id`, `time` (UTC), `category`, `model` (asked for), `stream`, `answered_by` (tier, or
  null when every tier failed), `escalated`, `latency_ms` (the client's wait), `cost_micro` (every tier
  tried, as billed), `teacher_only_micro` (the answer's tokens at the teacher's prices), `shadow`
  (a teacher shadow sample was scheduled), `error` (when every tier failed), `attempts` (one per tier
  tried: `tier`, `model`, `generation`, `status` ok/failed/unusable, `kept`, `confidence`,
  `latency_ms`, `tries`, token counts, `cost_micro`, `error`), `content`.
- "shadow": `id` (the request's), `time`, `category`, `tier` (the tier that answered), `teacher` (an attempt),
  `agree` (the answers agree: same tools and arguments; null when the teacher failed), `content`.

`content` follows the privacy setting: "none" omits it, "hash" keeps SHA-256 digests of the messages,
tools and answer (repeats can be counted, nothing can be read), "full" keeps the messages, tools and
every tier's full response (what `traffic import` needs to make tasks and trajectories).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cascade_studio.core.agreement import args_agreement, tool_agreement

FORMAT = "cascade-studio/traffic@1"
CONTENT_MODES = ("none", "hash", "full")
DEFAULT_CONTENT = "hash"
DEFAULT_CATEGORY = "production"
HARD_CASE_TAG = "hard-case"  # the tag on the trajectories of a request the cascade escalated
ATTEMPT_STATUSES = ("ok", "failed", "unusable")


def digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def content_fields(mode: str, messages: list[Any], tools: list[Any], answer: dict[str, Any] | None,
                   responses: dict[int, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """What a log line keeps of a request's content under privacy `mode`."""
    if mode == "none":
        return None
    if mode == "hash":
        return {"messages_sha256": digest(messages), "tools_sha256": digest(tools),
                "answer_sha256": None if answer is None else digest(answer)}
    return {"messages": messages, "tools": tools, "answer": answer,
            "responses": {str(k): v for k, v in (responses or {}).items()}}


def category_of(metadata: Any) -> str:
    """The category a client gave in the request's `metadata.category`, else "production"."""
    if isinstance(metadata, dict):
        value = metadata.get("category")
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return DEFAULT_CATEGORY


def answers_agree(teacher_calls: list[dict[str, Any]], calls: list[dict[str, Any]]) -> bool:
    """A student's answer agrees with the teacher's: the same tools with the same arguments (the
    agreement the Trade-offs page and what-if use as quality)."""
    return tool_agreement(teacher_calls, calls) and args_agreement(teacher_calls, calls)[0]


class TrafficLineError(ValueError):
    """A log line that is not a gateway record; the message names the field."""


def check_line(row: Any) -> dict[str, Any]:
    """The record, checked enough to import: raises TrafficLineError naming the bad field."""
    if not isinstance(row, dict):
        raise TrafficLineError("not a JSON object")
    if row.get("format") != FORMAT:
        raise TrafficLineError(f"format: {str(row.get('format'))[:40]!r} is not {FORMAT!r}; is this a gateway log?")
    kind = row.get("kind")
    if kind not in ("request", "shadow"):
        raise TrafficLineError(f"kind: {str(kind)[:20]!r} is not 'request' or 'shadow'")
    if not isinstance(row.get("id"), str) or not row["id"]:
        raise TrafficLineError("id: missing")
    if not isinstance(row.get("time"), str):
        raise TrafficLineError("time: missing")
    attempts = row.get("attempts") if kind == "request" else [row.get("teacher")]
    if not isinstance(attempts, list) or not all(isinstance(a, dict) for a in attempts):
        raise TrafficLineError("attempts: must be a list of objects" if kind == "request" else "teacher: missing")
    for i, a in enumerate(attempts):
        if not isinstance(a.get("tier"), int) or a.get("status") not in ATTEMPT_STATUSES:
            raise TrafficLineError(f"attempts[{i}]: needs a tier number and a status ({', '.join(ATTEMPT_STATUSES)})")
        for key in ("cost_micro", "latency_ms"):
            if not isinstance(a.get(key, 0), int | float) or isinstance(a.get(key), bool):
                raise TrafficLineError(f"attempts[{i}].{key}: must be a number")
    if kind == "request":
        for key in ("latency_ms", "cost_micro"):
            if not isinstance(row.get(key), int | float) or isinstance(row.get(key), bool):
                raise TrafficLineError(f"{key}: must be a number")
        answered = row.get("answered_by")
        if answered is not None and not isinstance(answered, int):
            raise TrafficLineError("answered_by: must be a tier number or null")
    content = row.get("content")
    if content is not None and not isinstance(content, dict):
        raise TrafficLineError("content: must be an object or null")
    return row
