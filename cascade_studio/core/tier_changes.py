"""What a change of the tier set did, in words (the tier history, Edit > Undo, `tiers history`)."""

from __future__ import annotations

from cascade_studio.core.tiers import Tier

# the fields worth naming, in the order they are named; the others are "settings"
_NAMED = (("model", "model"), ("base_url", "endpoint"), ("threshold", "threshold"),
          ("confidence_method", "confidence"), ("max_concurrency", "concurrency"))


def _value(tier: Tier, field: str) -> str:
    value = getattr(tier, field)
    return str(getattr(value, "value", value))


def tier_change(old: Tier, new: Tier) -> str | None:
    """'tier 2: model gpt-4o -> ft:...' (None: nothing changed)."""
    if old.to_json() == new.to_json():
        return None
    parts = [f"{label} {_value(old, f)} -> {_value(new, f)}" for f, label in _NAMED if _value(old, f) != _value(new, f)]
    return f"tier {new.tier}: " + (", ".join(parts) if parts else "settings")


def describe_change(before: list[Tier], after: list[Tier]) -> str:
    """Each tier added, removed or changed, e.g. 'tier 3 removed (gpt-4o); tier 1: threshold 0.8 -> 0.7'."""
    old, new = {t.tier: t for t in before}, {t.tier: t for t in after}
    parts: list[str] = []
    for no in sorted(old.keys() | new.keys()):
        if no not in new:
            parts.append(f"tier {no} removed ({old[no].model})")
        elif no not in old:
            parts.append(f"tier {no} added ({new[no].model})")
        else:
            change = tier_change(old[no], new[no])
            if change:
                parts.append(change)
    return "; ".join(parts) or "no change"
