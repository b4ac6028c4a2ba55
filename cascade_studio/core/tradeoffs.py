"""Trade-offs: per-tier figures, the cascade/routing simulator, threshold sweeps with the Pareto
frontier and router metrics, and monthly what-if projections. numpy, no I/O.

Conventions: tiers are ordered cheapest first; the last is the teacher. A tier's answer is kept
when its confidence >= its threshold; a missing confidence (NaN) always escalates.
- cascade: tiers are tried in order; every tier tried is paid; latencies add up.
- routing: a router picks one tier up front from the same confidence signals (as if a trained
  router predicted them); only the chosen tier is paid and waited for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Outcomes:
    """Per-task outcomes of each tier, aligned by task (rows) and tier (columns)."""

    task_ids: list[str]
    categories: list[str]
    tiers: list[int]
    cost: np.ndarray  # USD per request, shape (n, k)
    latency: np.ndarray  # ms
    quality: np.ndarray  # 0..1
    confidence: np.ndarray  # 0..1 or NaN
    prompt_tokens: np.ndarray | None = None
    completion_tokens: np.ndarray | None = None
    excluded: int = 0  # tasks without an outcome for every tier (never imputed)
    quality_basis: str = "agreement"
    # per tier: True when a missing confidence keeps the answer (the tier's "without logprobs" rule
    # is "answer"); by default a missing confidence escalates
    keep_without_confidence: list[bool] | None = None

    @property
    def n(self) -> int:
        return len(self.task_ids)

    def subset(self, rows: np.ndarray) -> Outcomes:
        return Outcomes([self.task_ids[i] for i in rows], [self.categories[i] for i in rows], self.tiers,
                        self.cost[rows], self.latency[rows], self.quality[rows], self.confidence[rows],
                        None if self.prompt_tokens is None else self.prompt_tokens[rows],
                        None if self.completion_tokens is None else self.completion_tokens[rows],
                        self.excluded, self.quality_basis, self.keep_without_confidence)

    def decision_confidence(self) -> np.ndarray:
        """Confidence as the escalation rule reads it: a missing one is -inf (escalates) or +inf
        (kept), per tier."""
        keep = self.keep_without_confidence or [False] * len(self.tiers)
        fill = np.array([np.inf if k else -np.inf for k in keep], dtype=float)
        return np.where(np.isnan(self.confidence), fill[None, :], self.confidence)


def percentile(values: np.ndarray, q: float, weights: np.ndarray | None = None) -> float:
    """Percentile over the known values (NaN: no real-time figure, e.g. a Batch API answer)."""
    known = ~np.isnan(values)
    if not known.all():
        values, weights = values[known], (None if weights is None else weights[known])
    if len(values) == 0:
        return float("nan")
    if weights is None:
        return float(np.percentile(values, q))
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, q / 100 * cum[-1])]) if cum[-1] > 0 else float("nan")


def tier_figures(o: Outcomes) -> list[dict[str, Any]]:
    out = []
    for j, tier in enumerate(o.tiers):
        c, lat = o.cost[:, j], o.latency[:, j]
        tokens = None
        if o.prompt_tokens is not None and o.completion_tokens is not None:
            tokens = float(np.mean(o.prompt_tokens[:, j] + o.completion_tokens[:, j])) if o.n else None
        out.append({
            "tier": tier, "requests": o.n,
            "cost_per_request_usd": float(np.mean(c)) if o.n else None,
            "cost_p50_usd": percentile(c, 50) if o.n else None, "cost_p95_usd": percentile(c, 95) if o.n else None,
            "latency_p50_ms": percentile(lat, 50) if o.n else None,
            "latency_p95_ms": percentile(lat, 95) if o.n else None,
            "tokens_per_request": tokens, "quality": float(np.mean(o.quality[:, j])) if o.n else None,
            "without_confidence": int(np.isnan(o.confidence[:, j]).sum()),
            "latency_excluded": int(np.isnan(lat).sum()),  # no real-time latency (Batch API): left out
            "without_confidence_rule": "keeps the answer" if (o.keep_without_confidence or [False] * len(o.tiers))[j]
            else "escalates",
        })
    return out


# -- simulation at one operating point ------------------------------------------------------------
@dataclass
class Simulation:
    mode: str
    thresholds: list[float]
    tasks: int
    excluded: int
    cost_per_request_usd: float
    latency_mean_ms: float
    latency_p95_ms: float
    quality: float
    answered_share: list[float]  # share of requests answered by each tier
    escalation_rate: list[float]  # share of requests escalated past each non-final tier
    per_task_cost: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    per_task_latency: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    per_task_quality: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    latency_excluded: int = 0  # tasks whose path includes a tier without real-time latency

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("per_task_cost", "per_task_latency", "per_task_quality"):
            d.pop(k)
        return d


def answering_tier(o: Outcomes, thresholds: list[float]) -> np.ndarray:
    """Index (column) of the tier that answers each task."""
    k = len(o.tiers)
    chosen = np.full(o.n, k - 1)
    undecided = np.ones(o.n, dtype=bool)
    conf = o.decision_confidence()
    for j in range(k - 1):
        keep = undecided & (conf[:, j] >= thresholds[j])
        chosen[keep] = j
        undecided &= ~keep
    return chosen


def simulate(o: Outcomes, thresholds: list[float], mode: str = "cascade", weights: np.ndarray | None = None) -> Simulation:
    if len(thresholds) != len(o.tiers) - 1:
        raise ValueError(f"{len(o.tiers)} tiers need {len(o.tiers) - 1} thresholds, got {len(thresholds)}")
    chosen = answering_tier(o, thresholds)
    rows = np.arange(o.n)
    if mode == "cascade":
        tried = np.arange(len(o.tiers))[None, :] <= chosen[:, None]
        cost = (o.cost * tried).sum(axis=1)
        latency = np.where(tried, o.latency, 0.0).sum(axis=1)  # NaN when a tier tried has no real-time latency
    elif mode == "routing":
        cost = o.cost[rows, chosen]
        latency = o.latency[rows, chosen]
    else:
        raise ValueError("mode must be cascade or routing")
    quality = o.quality[rows, chosen]
    w = np.ones(o.n) if weights is None else weights
    total = w.sum() if o.n else 1.0
    timed = ~np.isnan(latency)
    timed_total = w[timed].sum()
    answered = [float(w[chosen == j].sum() / total) for j in range(len(o.tiers))]
    escalation = [float(w[chosen > j].sum() / total) for j in range(len(o.tiers) - 1)]
    return Simulation(mode, list(thresholds), o.n, o.excluded,
                      float((cost * w).sum() / total) if o.n else 0.0,
                      float((latency[timed] * w[timed]).sum() / timed_total) if timed_total > 0 else
                      (float("nan") if o.n else 0.0),
                      percentile(latency, 95, w) if o.n else 0.0,
                      float((quality * w).sum() / total) if o.n else 0.0, answered, escalation,
                      cost, latency, quality, int((~timed).sum()))


# -- sweeps ---------------------------------------------------------------------------------------
@dataclass
class Sweep:
    mode: str
    grid: np.ndarray  # threshold values, shape (g,)
    cost: np.ndarray  # mean cost per request: shape (g,) for 2 tiers, (g, g) for 3
    quality: np.ndarray
    latency: np.ndarray
    escalation: np.ndarray  # share escalated past tier 1


def sweep(o: Outcomes, grid: np.ndarray | None = None, mode: str = "cascade") -> Sweep:
    """Exact mean cost, quality and latency for every threshold (pair) on the grid in O(n + g^2):
    tasks are binned by the first grid index at which they escalate, then cumulative sums give
    each grid point's totals (no per-threshold pass over the tasks)."""
    g = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=float)
    n, k = o.n, len(o.tiers)
    if n == 0:
        shape = (len(g),) if k == 2 else (len(g), len(g))
        z = np.zeros(shape)
        return Sweep(mode, g, z, z, z, z)
    conf = o.decision_confidence()
    # task escalates past tier j at grid index m  <=>  conf < g[m]  <=>  m >= idx
    idx = [np.searchsorted(g, conf[:, j], side="right") for j in range(k - 1)]
    G = len(g)
    c, q, lat = o.cost, o.quality, o.latency
    unknown = np.isnan(lat)
    if unknown.any():
        latency = _sweep_known_latency(o, lat, unknown, mode, g)
        sw = sweep(Outcomes(o.task_ids, o.categories, o.tiers, o.cost, np.nan_to_num(lat), o.quality, o.confidence,
                            excluded=o.excluded, quality_basis=o.quality_basis,
                            keep_without_confidence=o.keep_without_confidence), g, mode)
        sw.latency = latency
        return sw

    def cum1(values: np.ndarray) -> np.ndarray:
        """Σ values over tasks escalated past tier 1 at each grid index."""
        return np.cumsum(np.bincount(idx[0], weights=values, minlength=G + 1)[:G])

    if k == 2:
        esc_c2, esc_q1, esc_q2 = cum1(c[:, 1]), cum1(q[:, 0]), cum1(q[:, 1])
        esc_l2, esc_n = cum1(lat[:, 1]), cum1(np.ones(n))
        if mode == "cascade":
            cost = c[:, 0].sum() + esc_c2
            latency = lat[:, 0].sum() + esc_l2
        else:
            cost = c[:, 0].sum() - cum1(c[:, 0]) + esc_c2
            latency = lat[:, 0].sum() - cum1(lat[:, 0]) + esc_l2
        quality = q[:, 0].sum() - esc_q1 + esc_q2
        return Sweep(mode, g, cost / n, quality / n, latency / n, esc_n / n)
    if k != 3:
        raise ValueError("sweeps cover two or three tiers")

    cell = idx[0] * (G + 1) + idx[1]  # each task's (tier 1, tier 2) escalation bin, flattened

    def cum2(values: np.ndarray) -> np.ndarray:
        """Σ values over tasks escalated past tiers 1 and 2 at each (i, j) grid point: a 2-D
        histogram (one bincount over the flattened bins), then cumulative sums along both axes."""
        h = np.bincount(cell, weights=values, minlength=(G + 1) ** 2).reshape(G + 1, G + 1)
        return np.cumsum(np.cumsum(h, axis=0), axis=1)[:G, :G]

    e1 = {name: cum1(v)[:, None] for name, v in (("c1", c[:, 0]), ("c2", c[:, 1]), ("q1", q[:, 0]), ("q2", q[:, 1]),
                                                  ("l1", lat[:, 0]), ("l2", lat[:, 1]), ("n", np.ones(n)))}
    e2 = {name: cum2(v) for name, v in (("c2", c[:, 1]), ("c3", c[:, 2]), ("q2", q[:, 1]), ("q3", q[:, 2]),
                                         ("l2", lat[:, 1]), ("l3", lat[:, 2]))}
    quality = q[:, 0].sum() - e1["q1"] + e1["q2"] - e2["q2"] + e2["q3"]
    if mode == "cascade":
        cost = c[:, 0].sum() + e1["c2"] + e2["c3"]
        latency = lat[:, 0].sum() + e1["l2"] + e2["l3"]
    else:
        cost = c[:, 0].sum() - e1["c1"] + e1["c2"] - e2["c2"] + e2["c3"]
        latency = lat[:, 0].sum() - e1["l1"] + e1["l2"] - e2["l2"] + e2["l3"]
    escalation = np.broadcast_to(e1["n"], (G, G))
    return Sweep(mode, g, cost / n, quality / n, latency / n, escalation / n)


def _sweep_known_latency(o: Outcomes, lat: np.ndarray, unknown: np.ndarray, mode: str, g: np.ndarray) -> np.ndarray:
    """Mean latency at every grid point over the tasks whose latency is known there (a task answered
    through a tier without real-time latency is left out): Σ known latency / number known, each
    computed as the sweep computes quality (a value per answering tier, mixed by the thresholds)."""
    known = ~unknown
    if mode == "cascade":
        k_path = np.cumprod(known, axis=1).astype(float)  # every tier tried so far is known
        l_path = np.cumsum(np.nan_to_num(lat), axis=1) * k_path
    else:
        k_path, l_path = known.astype(float), np.nan_to_num(lat) * known
    def mixed(values: np.ndarray) -> np.ndarray:  # noqa: E306 - the per-answering-tier values as quality
        return sweep(Outcomes(o.task_ids, o.categories, o.tiers, o.cost, np.zeros_like(lat), values, o.confidence,
                              excluded=o.excluded, keep_without_confidence=o.keep_without_confidence), g, mode).quality
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mixed(k_path) > 0, mixed(l_path) / mixed(k_path), np.nan)


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost (lower) and quality (higher),
    ordered by cost."""
    c, q = np.ravel(cost), np.ravel(quality)
    order = np.lexsort((-q, c))
    front, best = [], -np.inf
    for i in order:
        if q[i] > best + 1e-12:
            front.append(i)
            best = q[i]
    return np.array(front, dtype=int)


# -- router metrics (two tiers) --------------------------------------------------------------------
@dataclass
class RouterCurve:
    """The exact operating points of a two-tier router (the cheapest tier vs the teacher): one per
    distinct confidence of the cheap tier, plus both ends (everything to one model)."""

    share: np.ndarray  # share of requests that reach the strong model, ascending 0..1
    quality: np.ndarray
    cost: np.ndarray


def router_curve(o: Outcomes, mode: str = "cascade") -> RouterCurve:
    """O(n log n): tasks sorted by the cheap tier's confidence; escalating below a threshold sends
    a prefix of that order to the strong model, so cumulative sums give every point exactly."""
    n = o.n
    if n == 0:
        z = np.zeros(2)
        return RouterCurve(np.array([0.0, 1.0]), z, z)
    w, s = 0, len(o.tiers) - 1
    conf = o.decision_confidence()[:, w]
    order = np.argsort(conf, kind="stable")
    sorted_conf = conf[order]
    # escalating tasks with confidence < t for t at each distinct value, and past the largest
    m = np.append(np.searchsorted(sorted_conf, np.unique(sorted_conf), side="left"), n)

    def prefix(values: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(values[order])])[m]

    q, c = o.quality, o.cost
    quality = (q[:, w].sum() - prefix(q[:, w]) + prefix(q[:, s])) / n
    if mode == "cascade":
        cost = (c[:, w].sum() + prefix(c[:, s])) / n
    else:
        cost = (c[:, w].sum() - prefix(c[:, w]) + prefix(c[:, s])) / n
    return RouterCurve(m / n, quality, cost)


def router_metrics(o: Outcomes, mode: str = "cascade") -> dict[str, Any]:
    """APGR and CPT(50%), CPT(80%) as RouteLLM (Ong et al. 2024) defines them, over the exact
    per-task thresholds (every distinct confidence, not a grid): PGR(c) = (quality at call share c
    - weak quality) / (strong quality - weak quality); APGR is its area over c in [0, 1]; CPT(x) is
    the smallest share of strong-model calls whose PGR reaches x. AIQ as in RouterBench (Hu et al.
    2024): the area under the non-decreasing upper hull of the cost-quality points, divided by the
    cost range. With more than two tiers: the cheapest tier against the teacher."""
    out: dict[str, Any] = {"apgr": None, "cpt50": None, "cpt80": None, "aiq": None, "quality_gap": None,
                           "unstable": None}
    if len(o.tiers) < 2 or o.n == 0:
        return out
    w, s = 0, len(o.tiers) - 1
    q_weak, q_strong = float(np.mean(o.quality[:, w])), float(np.mean(o.quality[:, s]))
    curve = router_curve(o, mode)
    gap = q_strong - q_weak
    out["quality_gap"] = gap
    out["unstable"] = metrics_unstable(gap, o.n)
    if abs(gap) > 1e-12:
        pgr = (curve.quality - q_weak) / gap
        out["apgr"] = float(np.trapezoid(pgr, curve.share)) if hasattr(np, "trapezoid") else \
            float(np.trapz(pgr, curve.share))
        for name, target in (("cpt50", 0.5), ("cpt80", 0.8)):
            hit = np.nonzero(pgr >= target - 1e-12)[0]
            out[name] = float(curve.share[hit[0]]) if len(hit) else None
    c_weak, c_strong = float(np.mean(o.cost[:, w])), float(np.mean(o.cost[:, s]))
    out["aiq"] = aiq(np.concatenate([[c_weak], curve.cost, [c_strong]]),
                     np.concatenate([[q_weak], curve.quality, [q_strong]]))
    if len(o.tiers) > 2:
        out["note"] = "APGR/CPT/AIQ for the cheapest tier vs the teacher (two-tier definitions)"
    return out


STABLE_GAP_TASKS = 10  # PGR divides by the weak-strong gap: below this many tasks, one task moves APGR by > 0.1


def metrics_unstable(gap: float, tasks: int) -> str | None:
    """Why APGR and CPT are not to be trusted here (None: they are): PGR is (quality - weak) / (strong -
    weak), so when the two tiers differ on a handful of tasks, each task moves the metrics by a lot."""
    gap_tasks = abs(gap) * tasks
    if gap_tasks >= STABLE_GAP_TASKS - 1e-9:
        return None
    if gap_tasks < 0.5:
        return "the cheapest tier and the teacher score the same: APGR and CPT are undefined"
    return (f"the cheapest tier and the teacher differ by {abs(gap):.1%} (about {gap_tasks:.0f} of {tasks} tasks): "
            f"one task more or less moves APGR by about {1 / gap_tasks:.2f}; APGR and CPT are unstable here")


def _upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    hull: list[tuple[float, float]] = []
    for p in sorted(points):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def aiq(cost: np.ndarray, quality: np.ndarray) -> float | None:
    c, q = np.ravel(cost), np.ravel(quality)
    lo, hi = float(c.min()), float(c.max())
    if hi - lo <= 1e-15:
        return None
    hull = _upper_hull(list(zip(c.tolist(), q.tolist(), strict=True)))
    xs = np.array([h[0] for h in hull])
    ys = np.maximum.accumulate(np.array([h[1] for h in hull]))  # non-decreasing
    area = float(np.trapezoid(ys, xs)) if hasattr(np, "trapezoid") else float(np.trapz(ys, xs))
    return area / (hi - lo)


# -- what-if -------------------------------------------------------------------------------------
@dataclass
class WhatIf:
    monthly_volume: float = 1_000_000
    mix: dict[str, float] | None = None  # category -> share (None: as recorded)
    price_scale: dict[int, float] | None = None  # tier -> multiplier on its recorded cost
    batch_discount: float = 0.0  # fraction off every price (0.5 = all traffic via the Batch API)
    training_cost_usd: float = 0.0
    amortize_months: int = 12

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_CODES: list[tuple[list[str], list[str], np.ndarray]] = []  # the last few (categories, names, codes)


def category_codes(categories: list[str]) -> tuple[list[str], np.ndarray]:
    """(the distinct categories in order of first appearance, each row's index into them). Kept for
    the last few lists seen: a slider move re-prices the same outcomes (100k rows: ~20 ms once, then
    nothing, instead of ~110 ms of dictionary lookups per move)."""
    for seen, names, codes in _CODES:
        if seen is categories:
            return names, codes
    names = list(dict.fromkeys(categories))  # in order of first appearance, at C speed
    index = {c: i for i, c in enumerate(names)}
    codes = np.fromiter(map(index.__getitem__, categories), dtype=np.int64, count=len(categories))
    _CODES.insert(0, (categories, names, codes))
    del _CODES[4:]
    return names, codes


def category_counts(categories: list[str]) -> dict[str, int]:
    """{category: how many rows}, in order of first appearance."""
    names, codes = category_codes(categories)
    return dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True))


def mix_weights(o: Outcomes, mix: dict[str, float] | None) -> np.ndarray:
    """Per-row weights that give each category its share of `mix` (None: as recorded)."""
    if not mix:
        return np.ones(o.n)
    names, codes = category_codes(o.categories)
    counts = np.bincount(codes, minlength=len(names)).astype(float)
    known = set(names)
    total = sum(v for k, v in mix.items() if k in known) or 1.0
    per_category = np.array([mix.get(c, 0.0) for c in names], dtype=float) / total / np.maximum(counts, 1) * o.n
    return per_category[codes] if len(codes) else np.zeros(0)


def what_if(o: Outcomes, thresholds: list[float], scenario: WhatIf, mode: str = "cascade") -> dict[str, Any]:
    scaled = o.cost.copy()
    for j, tier in enumerate(o.tiers):
        scaled[:, j] *= (scenario.price_scale or {}).get(tier, 1.0)
    scaled *= 1.0 - scenario.batch_discount
    priced = Outcomes(o.task_ids, o.categories, o.tiers, scaled, o.latency, o.quality, o.confidence,
                      excluded=o.excluded, quality_basis=o.quality_basis,
                      keep_without_confidence=o.keep_without_confidence)
    w = mix_weights(o, scenario.mix)
    sim = simulate(priced, thresholds, mode, w)
    everything_up = Outcomes(o.task_ids, o.categories, o.tiers, scaled, o.latency, o.quality,
                             np.full_like(o.confidence, np.nan), excluded=o.excluded, quality_basis=o.quality_basis)
    teacher = simulate(everything_up, [2.0] * (len(o.tiers) - 1), "routing", w)  # everything to the teacher
    v = scenario.monthly_volume
    run_cost = sim.cost_per_request_usd * v
    amortized = scenario.training_cost_usd / max(1, scenario.amortize_months) if scenario.training_cost_usd else 0.0
    teacher_cost = teacher.cost_per_request_usd * v
    saving_per_month = teacher_cost - run_cost
    break_even = None
    if scenario.training_cost_usd <= 0:
        break_even = 0 if saving_per_month > 0 else None
    elif saving_per_month > 0:
        break_even = int(np.ceil(scenario.training_cost_usd / saving_per_month - 1e-9))
    return {
        "scenario": scenario.to_json(), "mode": mode, "thresholds": thresholds, "tasks": o.n, "excluded": o.excluded,
        "monthly_cost_usd": run_cost + amortized, "monthly_run_cost_usd": run_cost,
        "monthly_training_usd": amortized, "teacher_only_monthly_usd": teacher_cost,
        "monthly_savings_usd": teacher_cost - (run_cost + amortized), "break_even_month": break_even,
        "latency_p95_ms": sim.latency_p95_ms, "latency_mean_ms": sim.latency_mean_ms, "quality": sim.quality,
        "teacher_quality": teacher.quality, "answered_share": sim.answered_share,
        "escalation_rate": sim.escalation_rate,
    }


# -- the report (one function for the CLI's `whatif` and the Trade-offs page) ----------------------
SWEEP_POINTS = 101  # the cost-quality curve's threshold grid (0.00 .. 1.00)


def sweep_report(o: Outcomes, mode: str = "cascade", grid_points: int = SWEEP_POINTS) -> dict[str, Any]:
    """The curve's Pareto points on the threshold grid, and the router metrics (exact thresholds)."""
    sw = sweep(o, np.linspace(0, 1, grid_points), mode)
    front = pareto_front(sw.cost, sw.quality)
    cost, quality = np.ravel(sw.cost), np.ravel(sw.quality)
    points = [{"thresholds": [float(x) for x in np.atleast_1d(np.unravel_index(i, sw.cost.shape)) / (grid_points - 1)],
               "cost_per_request_usd": float(cost[i]), "quality": float(quality[i])} for i in front]
    return {"sweep": {"grid": sw.grid.tolist(), "points": points}, "metrics": router_metrics(o, mode)}


def operating_point(o: Outcomes, thresholds: list[float], scenario: WhatIf, mode: str = "cascade") -> dict[str, Any]:
    """The report's part that moves with the thresholds and the scenario: the cascade at `thresholds`
    and the monthly what-if (the Trade-offs page recomputes only this when a slider rests)."""
    return {"cascade": simulate(o, thresholds, mode).to_json(), "whatif": what_if(o, thresholds, scenario, mode)}


def tradeoff_report(o: Outcomes, thresholds: list[float], scenario: WhatIf, mode: str = "cascade",
                    with_sweep: bool = False) -> dict[str, Any]:
    """Per-tier figures, the cascade at `thresholds`, the monthly what-if and (optionally) the sweep
    with router metrics: what `whatif --json` prints and the Trade-offs page shows."""
    out: dict[str, Any] = {
        "tasks": o.n, "excluded": o.excluded, "quality_basis": o.quality_basis,
        "tiers": tier_figures(o),
        **operating_point(o, thresholds, scenario, mode),
    }
    if with_sweep:
        out.update(sweep_report(o, mode))
    return out
