"""Tier operations shared by the GUI and the CLI: edit with catalog defaults, export, import."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cascade_studio import __version__
from cascade_studio.core.errors import UserError
from cascade_studio.core.jsonl import JsonProblem
from cascade_studio.core.jsonl import loads as safe_loads
from cascade_studio.core.prices import PriceCatalog
from cascade_studio.core.tiers import (
    OPENAI_BASE_URL,
    Provider,
    Tier,
    TierError,
    is_openai_url,
    key_destination,
    transport_problem,
    validate_tier_set,
)
from cascade_studio.services import events
from cascade_studio.services.input_files import read_text
from cascade_studio.services.output_files import write_text
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

EXPORT_FORMAT = "cascade-studio/tiers@1"


class TierServiceError(UserError):
    pass


def guess_provider(base_url: str) -> Provider:
    if is_openai_url(base_url):
        return Provider.OPENAI
    return Provider.COMPATIBLE


def apply_catalog_prices(tier: Tier, catalog: PriceCatalog) -> Tier:
    price = catalog.lookup(tier.model)
    if price is None:
        return tier
    return tier.replace(
        input_price=price.input_per_m, output_price=price.output_per_m, cached_price=price.cached_input_per_m
    )


def set_tier(ws: Workspace, catalog: PriceCatalog, tier_no: int, **options: Any) -> Tier:
    """Create or update tier `tier_no`; options left None keep their values.

    When the model changes (or the tier is new) and no price is given, prices come from the catalog.
    """
    updated, tiers = planned_tier(ws, catalog, tier_no, **options)
    save_tiers(ws, tiers)
    return updated


def save_tiers(ws: Workspace, tiers: list[Tier]) -> None:
    """Replace the workspace's tiers (the Tiers page's Save, `tiers set`, imports) and say so."""
    TierRepository(ws).replace_all(tiers)
    events.publish(events.TIERS, ws)


def undo_tier_change(ws: Workspace, change_id: int | None = None) -> tuple[int, str]:
    """Put the tier set back as it was before change `change_id` (default: the newest change not
    undone yet): a switch, a threshold, a removal. The undo is a change of its own (it can be
    reverted in turn). (the undo's history id, what it did in words)"""
    from cascade_studio.core.tier_changes import describe_change

    repo = TierRepository(ws)
    change = repo.last_undoable() if change_id is None else repo.change(change_id)
    if change is None:
        raise TierServiceError("nothing to undo: the tier set has no earlier change" if change_id is None else
                               f"no tier change {change_id}; see `cascade-studio tiers history`")
    current = repo.list()
    now = {t.tier: t for t in current}
    # the built-in sandbox listens on a new port at each start: a sandbox tier put back follows the running one
    wanted = [t.replace(base_url=now[t.tier].base_url) if t.provider == Provider.SANDBOX and t.tier in now
              and now[t.tier].provider == Provider.SANDBOX else t for t in change.before]
    if [t.to_json() for t in current] == [t.to_json() for t in wanted]:
        raise TierServiceError(f"the tiers are already as they were before change {change.id}")
    entry = repo.replace_all(wanted, undoes=change.id)
    events.publish(events.TIERS, ws)
    return entry or 0, describe_change(current, wanted)


def tier_history(ws: Workspace, limit: int = 50) -> list[dict[str, Any]]:
    """The newest changes first, each in words (`tiers history`, the GUI's Edit menu)."""
    from cascade_studio.core.tier_changes import describe_change

    return [{"id": c.id, "at": c.created_at, "change": describe_change(c.before, c.after), "undoes": c.undoes,
             "undone_by": c.undone_by} for c in TierRepository(ws).history(limit)]


def next_undo(ws: Workspace) -> str | None:
    """What Undo would put back, in words (None: nothing to undo)."""
    from cascade_studio.core.tier_changes import describe_change

    change = TierRepository(ws).last_undoable()
    return None if change is None else describe_change(change.after, change.before)


def planned_tier(ws: Workspace, catalog: PriceCatalog, tier_no: int, **options: Any) -> tuple[Tier, list[Tier]]:
    """What `set_tier` would make of tier `tier_no`, and the whole tier set then, checked, not saved
    (e.g. to evaluate a model before it takes the tier)."""
    repo = TierRepository(ws)
    existing = repo.get(tier_no)
    base = existing or Tier(tier=tier_no, base_url=OPENAI_BASE_URL)
    changes = {k: v for k, v in options.items() if v is not None}
    if "base_url" in changes and "provider" not in changes and base.provider != Provider.SANDBOX:
        changes["provider"] = guess_provider(changes["base_url"])
    if "base_url" in changes:
        changes["key_origin_pending"] = False  # the user typed the address: that is their confirmation
    if {"logprobs", "base_url", "model"} & changes.keys():
        changes["logprobs_unsupported"] = False  # a new server, model or explicit choice: ask again
    updated = base.replace(**changes)
    model_changed = existing is None or ("model" in changes and changes["model"] != existing.model)
    if model_changed and "demonstrations" not in changes:
        updated = updated.replace(demonstrations=None)  # another model starts plain (distil prompt it again)
    if model_changed and not {"input_price", "output_price"} & changes.keys():
        priced = apply_catalog_prices(updated, catalog)
        if priced is updated and existing is None:
            raise TierServiceError(
                f"The model {updated.model!r} is not in the price catalog; give --input-price and --output-price "
                "(USD per 1M tokens)."
            )
        if "cached_price" in changes:
            priced = priced.replace(cached_price=changes["cached_price"])
        updated = priced
    tiers = [t for t in repo.list() if t.tier != tier_no] + [updated]
    tiers.sort(key=lambda t: t.tier)
    issues = validate_tier_set(tiers)
    if issues:
        raise TierServiceError("; ".join(str(i) for i in issues))
    problem = transport_problem(updated.base_url, updated.allow_insecure)
    if problem:
        raise TierServiceError(f"tier {tier_no} base_url {problem} (--allow-insecure).")
    return updated, tiers


def export_tiers(ws: Workspace, target: Path) -> int:
    tiers = TierRepository(ws).list()
    doc = {
        "format": EXPORT_FORMAT,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "note": "API keys are never exported; set them again with `cascade-studio keys set`.",
        "tiers": [t.to_json() for t in tiers],
    }
    try:
        write_text(Path(target), json.dumps(doc, indent=2))
    except OSError as exc:
        raise TierServiceError(f"Cannot write {target}: {exc.strerror}. Check the folder and free disk space.") from exc
    return len(tiers)


def parse_tier_file(source: Path) -> list[Tier]:
    """A regular file's tiers (a folder or FIFO is refused unread); NaN, Infinity and deep nesting are
    refused, and so are numbers in the tiers that are not finite."""
    text = read_text(Path(source), lambda problem, line: TierServiceError(
        f"{source}{f':{line}' if line else ''}: {problem}."))
    try:
        doc = safe_loads(text)
    except JsonProblem as exc:
        raise TierServiceError(f"{source}{f':{exc.line}' if exc.line else ''} is not valid JSON: {exc.message}.") from None
    items = doc.get("tiers") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise TierServiceError(f"{source}: expected a 'tiers' list (as written by `tiers export`).")
    tiers: list[Tier] = []
    for index, item in enumerate(items):
        try:
            tier = Tier.from_json(item)
        except TierError as exc:
            raise TierServiceError(f"{source}: tier entry {index + 1}: {exc}") from None
        for name in ("timeout_s", "temperature", "threshold", "input_price", "output_price", "cached_price"):
            value = getattr(tier, name)
            finite = value.is_finite() if isinstance(value, Decimal) else value is None or math.isfinite(value)
            if not finite:
                raise TierServiceError(f"{source}: tier entry {index + 1}: {name}: {value} is not a finite number")
        try:
            urlparse(tier.base_url)
        except ValueError as exc:
            raise TierServiceError(f"{source}: tier entry {index + 1}: base_url: not a URL ({exc})") from None
        tiers.append(tier)
    tiers.sort(key=lambda t: t.tier)
    issues = validate_tier_set(tiers)
    if issues:
        raise TierServiceError(f"{source}: " + "; ".join(str(i) for i in issues))
    return tiers


@dataclass(frozen=True)
class KeySetting:
    """What a tier file asks for about keys: a variable to read the key from, plain http."""

    tier: int
    sends_to: str
    api_key_env: str
    allow_insecure: bool

    def describe(self) -> str:
        parts = []
        if self.api_key_env:
            parts.append(f"read its key from the environment variable {self.api_key_env}")
        if self.allow_insecure:
            parts.append("send it over plain http (INSECURE)")
        return f"tier {self.tier}: {' and '.join(parts)}, to {self.sends_to}"


@dataclass(frozen=True)
class OriginChange:
    """An imported tier that would send its key somewhere new: from `old` (None: a tier number this
    workspace did not have) to `new`."""

    tier: int
    old: str | None
    new: str

    def describe(self, allowed: bool) -> str:
        moves = f"tier {self.tier} moves from {self.old} to {self.new}" if self.old else \
            f"tier {self.tier} is new here, at {self.new}"
        if allowed:
            return f"New origin confirmed: {moves}; its key variables are sent there."
        return (f"New origin: {moves}. Its key variables are withheld from {self.new} until you confirm it "
                f"(`cascade-studio tiers confirm-origin {self.tier}`, or import with --allow-new-origin).")


def origin_changes(ws: Workspace, tiers: list[Tier]) -> list[OriginChange]:
    """The tiers of a file whose key destination differs from that of the same tier in the workspace."""
    current = {t.tier: t for t in TierRepository(ws).list()}
    out = []
    for t in tiers:
        old = current.get(t.tier)
        old_origin = key_destination(old.base_url) if old else None
        if old_origin != key_destination(t.base_url):
            out.append(OriginChange(t.tier, old_origin, key_destination(t.base_url)))
    return out


def confirm_origin(ws: Workspace, tier_no: int) -> Tier:
    """The user confirms tier `tier_no`'s origin: its key variables may be sent there."""
    repo = TierRepository(ws)
    tier = repo.get(tier_no)
    if tier is None:
        raise TierServiceError(f"There is no tier {tier_no}.")
    if tier.key_origin_pending:
        tier = tier.replace(key_origin_pending=False)
        save_tiers(ws, [tier if t.tier == tier_no else t for t in repo.list()])
    return tier


@dataclass
class TierImport:
    tiers: list[Tier]
    key_settings: list[KeySetting]  # what the file asked for
    trusted: bool  # whether those settings were kept
    without_key: list[int] = field(default_factory=list)  # tiers that now have no key to send
    origin_changes: list[OriginChange] = field(default_factory=list)  # tiers whose keys' destination changes
    allowed_new_origins: bool = False

    def summary(self, source: Path) -> list[str]:
        lines = [f"Imported {len(self.tiers)} tiers from {source}"]
        if self.key_settings:
            verb = "Kept, as confirmed" if self.trusted else "Dropped (a tier file cannot choose where keys come from)"
            lines.append(f"{verb}: " + "; ".join(s.describe() for s in self.key_settings))
        for change in self.origin_changes:
            lines.append(change.describe(self.allowed_new_origins))
        if self.without_key:
            lines.append("No API key for tier " + ", ".join(str(n) for n in self.without_key)
                         + " yet: set one with `cascade-studio keys set URL` (or Set API key… on the Tiers page).")
        return lines


def key_settings_of(tiers: list[Tier]) -> list[KeySetting]:
    return [KeySetting(t.tier, key_destination(t.base_url), t.api_key_env, t.allow_insecure)
            for t in tiers if t.api_key_env or t.allow_insecure]


def import_tiers(ws: Workspace, source: Path, *, trust_key_settings: bool = False,
                 allow_new_origin: bool = False, secrets: SecretStore | None = None) -> TierImport:
    """Replace the workspace's tiers with those in `source`, all or nothing.

    A tier file is data from elsewhere: its key variables and plain-http permissions are kept only
    when the user confirmed them (`trust_key_settings`); otherwise they are dropped, so importing a
    file never decides which secret is sent to which host. Nor does it move a key: a tier whose
    origin changes gets no key variable there until the user confirms the new origin
    (`allow_new_origin`, or `confirm_origin` later); keys stored per host are not affected.
    """
    tiers = parse_tier_file(source)
    asked = key_settings_of(tiers)
    if not trust_key_settings:
        tiers = [t.replace(api_key_env="", allow_insecure=False) for t in tiers]
    changes = origin_changes(ws, tiers)
    moved = {c.tier for c in changes}
    current = {t.tier: t for t in TierRepository(ws).list()}
    tiers = [t.replace(key_origin_pending=(t.tier in moved and not allow_new_origin)
                       or (t.tier not in moved and current[t.tier].key_origin_pending)) for t in tiers]
    save_tiers(ws, tiers)
    report = TierImport(tiers, asked, trust_key_settings, origin_changes=changes, allowed_new_origins=allow_new_origin)
    if secrets is not None:
        report.without_key = [t.tier for t in tiers if not secrets.resolve(t).found]
    return report


def price_summary(t: Tier) -> dict[str, str | None]:
    def s(v: Decimal | None) -> str | None:
        return None if v is None else str(v)

    return {"input": s(t.input_price), "output": s(t.output_price), "cached": s(t.cached_price)}
