"""Production figures from the requests the gateway logged (after `traffic import`): requests over
time, the share answered per tier, cost against teacher-only, latency, and live agreement from the
shadow samples with a drift warning. One function for the Production page and `traffic report --json`."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cascade_studio.core.money import micro_to_usd

MIN_SHADOW_SAMPLES = 10  # fewer samples than this say too little to warn about


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _bucket(stamp: str, width: str) -> str:
    """The start of the hour (or day) of a UTC ISO timestamp, as ISO text."""
    try:
        t = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp[:13]
    t = t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    if width == "day":
        t = t.replace(hour=0)
    return t.isoformat().replace("+00:00", "Z")


def production_report(rows: Sequence[Sequence[Any]], *, alert_level: float = 0.8,
                      evaluated: dict[int, float] | None = None, bucket: str = "hour") -> dict[str, Any]:
    """`rows`: (time, category, answered_by, escalated, latency_ms, cost_micro, teacher_only_micro,
    shadow_agree) per request, oldest first (store.production.SUMMARY_COLUMNS)."""
    n = len(rows)
    answered = Counter(r[2] for r in rows if r[2] is not None)
    failed = sum(1 for r in rows if r[2] is None)
    cost = sum(int(r[5]) for r in rows)
    teacher_only = sum(int(r[6]) for r in rows if r[6] is not None)
    priced = [r for r in rows if r[6] is not None]
    cost_priced = sum(int(r[5]) for r in priced)
    latencies = [float(r[4]) for r in rows if r[2] is not None]
    series = Counter(_bucket(r[0], bucket) for r in rows)
    live: dict[int, dict[str, Any]] = {}
    for tier in sorted({r[2] for r in rows if r[7] is not None and r[2] is not None}):
        verdicts = [r[7] for r in rows if r[2] == tier and r[7] is not None]
        live[tier] = {"samples": len(verdicts), "agreement": sum(verdicts) / len(verdicts)}
    warnings = []
    for tier, figures in live.items():
        if figures["samples"] >= MIN_SHADOW_SAMPLES and figures["agreement"] < alert_level:
            before = (evaluated or {}).get(tier)
            was = f" (the evaluation measured {before:.0%})" if before is not None else ""
            warnings.append(
                f"Tier {tier} agrees with the teacher on {figures['agreement']:.0%} of {figures['samples']} shadow "
                f"samples of live traffic{was}, below your alert level of {alert_level:.0%}: production has drifted "
                "from what the student learned. Collect teacher answers for the hard cases and build the next dataset.")
    return {
        "requests": n, "failed": failed, "escalated": sum(1 for r in rows if r[3]),
        "first": rows[0][0] if rows else None, "last": rows[-1][0] if rows else None,
        "answered_share": {tier: answered[tier] / n for tier in sorted(answered)} if n else {},
        "cost_usd": str(micro_to_usd(cost)), "teacher_only_usd": str(micro_to_usd(teacher_only)),
        # savings over the requests whose teacher-only cost is known (every answered one)
        "savings_share": (1 - cost_priced / teacher_only) if teacher_only else None,
        "latency_p50_ms": _percentile(latencies, 50), "latency_p95_ms": _percentile(latencies, 95),
        "series": sorted(series.items()), "bucket": bucket,
        "live_agreement": live, "drift_warnings": warnings,
    }
