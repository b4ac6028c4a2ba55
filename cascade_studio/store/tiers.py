"""Tier rows in the workspace, and their history (every change keeps the set before it, so it can
be undone: services.tier_service.undo_tier_change)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from cascade_studio.core.demonstrations import PromptProgram
from cascade_studio.core.tiers import (
    ConfidenceMethod,
    LogprobsMode,
    Provider,
    Tier,
    WithoutLogprobs,
    validate_tier_set,
)
from cascade_studio.store.workspace import Workspace

_COLUMNS = (
    "tier, name, provider, base_url, model, input_price, output_price, cached_price, timeout_s, "
    "max_concurrency, rpm_limit, tpm_limit, temperature, system_prompt, confidence_method, threshold, api_key_env, "
    "allow_insecure, logprobs, top_logprobs, logprobs_unsupported, without_logprobs, no_key, demonstrations, key_origin_pending"
)


class TierRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def list(self) -> list[Tier]:
        rows = self.ws.conn.execute(f"SELECT {_COLUMNS} FROM tiers ORDER BY tier").fetchall()
        return [_row_to_tier(r) for r in rows]

    def get(self, tier_no: int) -> Tier | None:
        row = self.ws.conn.execute(f"SELECT {_COLUMNS} FROM tiers WHERE tier = ?", (tier_no,)).fetchone()
        return _row_to_tier(row) if row else None

    def replace_all(self, tiers: list[Tier], *, undoes: int | None = None, record: bool = True) -> int | None:
        """Save the whole tier set atomically after validating it as a set, and keep the set before
        in the tier history (a first set, or one that changes nothing, is not kept; nor, with
        `record=False`, a change that is not the user's, such as the demo following the sandbox's new
        port). `undoes`: the history entry this change undoes. The new history entry's id, or None."""
        issues = validate_tier_set(tiers)
        if issues:
            raise ValueError("; ".join(str(i) for i in issues))
        conn = self.ws.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = [t.to_json() for t in self.list()]
            after = [t.to_json() for t in sorted(tiers, key=lambda t: t.tier)]
            conn.execute("DELETE FROM tiers")
            for t in tiers:
                self._insert(t)
            entry = None
            if record and before and before != after:
                entry = conn.execute(
                    "INSERT INTO tier_history (created_at, before, after, undoes) VALUES (?, ?, ?, ?)",
                    (_now(), json.dumps(before), json.dumps(after), undoes)).lastrowid
                if undoes is not None:
                    conn.execute("UPDATE tier_history SET undone_by = ? WHERE id = ?", (entry, undoes))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        return entry

    def history(self, limit: int = 50) -> list[TierChange]:
        """The newest changes first."""
        rows = self.ws.conn.execute("SELECT id, created_at, before, after, undoes, undone_by FROM tier_history "
                                    "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_change(r) for r in rows]

    def change(self, change_id: int) -> TierChange | None:
        row = self.ws.conn.execute("SELECT id, created_at, before, after, undoes, undone_by FROM tier_history "
                                   "WHERE id = ?", (change_id,)).fetchone()
        return _change(row) if row else None

    def last_undoable(self) -> TierChange | None:
        """The newest change that is not an undo and was not undone."""
        row = self.ws.conn.execute("SELECT id, created_at, before, after, undoes, undone_by FROM tier_history "
                                   "WHERE undoes IS NULL AND undone_by IS NULL ORDER BY id DESC LIMIT 1").fetchone()
        return _change(row) if row else None

    def save(self, tier: Tier) -> None:
        """Insert or update one tier (validated together with the others)."""
        others = [t for t in self.list() if t.tier != tier.tier]
        self.replace_all(sorted([*others, tier], key=lambda t: t.tier))

    def mark_logprobs_unsupported(self, tier_no: int) -> None:
        """Remember that this tier's server fails when asked for logprobs ("auto" mode learned it)."""
        self.ws.conn.execute("UPDATE tiers SET logprobs_unsupported = 1 WHERE tier = ?", (tier_no,))

    def _insert(self, t: Tier) -> None:
        self.ws.conn.execute(
            f"INSERT INTO tiers ({_COLUMNS}, updated_at) VALUES ({', '.join('?' * 26)})",
            (
                t.tier, t.name, t.provider.value, t.base_url.strip(), t.model.strip(), str(t.input_price),
                str(t.output_price), None if t.cached_price is None else str(t.cached_price), t.timeout_s,
                t.max_concurrency, t.rpm_limit, t.tpm_limit, t.temperature, t.system_prompt,
                t.confidence_method.value, t.threshold, t.api_key_env, int(t.allow_insecure),
                t.logprobs.value, t.top_logprobs, int(t.logprobs_unsupported), t.without_logprobs.value, int(t.no_key),
                None if t.demonstrations is None else json.dumps(t.demonstrations.to_json(), ensure_ascii=False),
                int(t.key_origin_pending),
                _now(),
            ),
        )


@dataclass(frozen=True)
class TierChange:
    """One change of the tier set: the sets before and after it."""

    id: int
    created_at: str  # UTC, ISO
    before: list[Tier]
    after: list[Tier]
    undoes: int | None  # the change this one undid
    undone_by: int | None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _change(r: tuple) -> TierChange:
    return TierChange(r[0], r[1], [Tier.from_json(t) for t in json.loads(r[2])],
                      [Tier.from_json(t) for t in json.loads(r[3])], r[4], r[5])


def _row_to_tier(r: tuple) -> Tier:
    return Tier(
        tier=r[0], name=r[1], provider=Provider(r[2]), base_url=r[3], model=r[4],
        input_price=Decimal(r[5]), output_price=Decimal(r[6]),
        cached_price=None if r[7] is None else Decimal(r[7]), timeout_s=r[8], max_concurrency=r[9],
        rpm_limit=r[10], tpm_limit=r[11], temperature=r[12], system_prompt=r[13],
        confidence_method=ConfidenceMethod(r[14]), threshold=r[15], api_key_env=r[16],
        allow_insecure=bool(r[17]), logprobs=LogprobsMode(r[18]), top_logprobs=r[19],
        logprobs_unsupported=bool(r[20]), without_logprobs=WithoutLogprobs(r[21]), no_key=bool(r[22]),
        demonstrations=None if r[23] is None else _program(r[23]),
        key_origin_pending=bool(r[24]),
    )


@lru_cache(maxsize=16)
def _program(text: str) -> PromptProgram:
    """A stored program, parsed once per process (tiers are listed often; the program, its index
    cache included, is immutable)."""
    return PromptProgram.from_json(json.loads(text))
