import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_studio.core.tradeoffs import (
    Outcomes,
    WhatIf,
    aiq,
    pareto_front,
    router_metrics,
    simulate,
    sweep,
    tier_figures,
    what_if,
)


def outcomes(conf, quality, cost=None, latency=None, cats=None):
    conf = np.asarray(conf, dtype=float)
    n, k = conf.shape
    cost = np.tile([0.001 * 10 ** j for j in range(k)], (n, 1)) if cost is None else np.asarray(cost, float)
    latency = np.tile([100.0 * (j + 1) for j in range(k)], (n, 1)) if latency is None else np.asarray(latency, float)
    return Outcomes([f"t{i}" for i in range(n)], cats or ["c"] * n, list(range(1, k + 1)), cost, latency,
                    np.asarray(quality, float), conf)


def test_cascade_pays_every_tier_tried_and_routing_pays_one():
    o = outcomes([[0.9, 0.9, np.nan], [0.2, 0.9, np.nan], [0.2, 0.1, np.nan]],
                 [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    cas = simulate(o, [0.5, 0.5], "cascade")
    assert cas.answered_share == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert cas.escalation_rate == pytest.approx([2 / 3, 1 / 3])
    assert cas.cost_per_request_usd == pytest.approx((0.001 + 0.011 + 0.111) / 3)
    assert cas.latency_mean_ms == pytest.approx((100 + 300 + 600) / 3)
    assert cas.quality == 1.0
    rout = simulate(o, [0.5, 0.5], "routing")
    assert rout.cost_per_request_usd == pytest.approx((0.001 + 0.01 + 0.1) / 3)
    assert rout.latency_mean_ms == pytest.approx(200)
    nan = outcomes([[np.nan, 0.0]], [[1, 1]])
    assert simulate(nan, [0.0]).answered_share == [0.0, 1.0]  # missing confidence escalates


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(2, 3), st.integers(0, 2**31 - 1), st.sampled_from(["cascade", "routing"]))
def test_sweep_equals_simulating_each_point(n, k, seed, mode):
    rng = np.random.default_rng(seed)
    conf = rng.random((n, k))
    conf[rng.random((n, k)) < 0.1] = np.nan
    o = outcomes(conf, rng.integers(0, 2, (n, k)), rng.random((n, k)), rng.random((n, k)) * 1000)
    grid = np.linspace(0, 1, 7)
    sw = sweep(o, grid, mode)
    for i, t1 in enumerate(grid):
        seconds = [None] if k == 2 else list(enumerate(grid))
        for item in seconds:
            thresholds = [t1] if k == 2 else [t1, item[1]]
            at = (i,) if k == 2 else (i, item[0])
            sim = simulate(o, thresholds, mode)
            assert sw.cost[at] == pytest.approx(sim.cost_per_request_usd)
            assert sw.quality[at] == pytest.approx(sim.quality)
            assert sw.latency[at] == pytest.approx(sim.latency_mean_ms)
            assert sw.escalation[at] == pytest.approx(sim.escalation_rate[0])


def test_pareto_front():
    cost = np.array([1.0, 2.0, 3.0, 2.5, 0.5])
    quality = np.array([0.5, 0.7, 0.9, 0.6, 0.5])
    assert pareto_front(cost, quality).tolist() == [4, 1, 2]


def test_router_metrics_on_a_perfect_router():
    # the weak model is right on half the tasks and is sure exactly when right: a perfect cascade
    conf = [[0.9, np.nan]] * 50 + [[0.1, np.nan]] * 50
    quality = [[1, 1]] * 50 + [[0, 1]] * 50
    o = outcomes(conf, quality, [[1.0, 10.0]] * 100)
    m = router_metrics(o)
    assert m["cpt50"] == pytest.approx(0.25) or m["cpt50"] == pytest.approx(0.5)
    assert m["cpt80"] == pytest.approx(0.5)
    assert m["apgr"] == pytest.approx(0.75)  # PGR rises linearly to 1 at 50% calls, then stays 1
    assert 0 < m["aiq"] <= 1.0
    # a random router: quality grows linearly with cost -> AIQ is the mean of the two qualities
    assert aiq(np.array([0.0, 1.0]), np.array([0.2, 0.6])) == pytest.approx(0.4)


def brute_force_router(o, mode="cascade"):
    """Every threshold at each distinct confidence (and past all of them), through simulate()."""
    conf = o.confidence[:, 0]
    q_weak, q_strong = o.quality[:, 0].mean(), o.quality[:, -1].mean()
    points = {(0.0, q_weak)}
    for t in [*np.unique(conf[~np.isnan(conf)]), np.inf]:
        sim = simulate(o, [t] + [np.inf] * (len(o.tiers) - 2), mode)
        points.add((1.0 - sim.answered_share[0], sim.quality))
    share, quality = map(np.array, zip(*sorted(points), strict=True))
    pgr = (quality - q_weak) / (q_strong - q_weak)
    apgr = float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(share)))
    cpt = {x: min((c for c, p in zip(share, pgr, strict=True) if p >= x - 1e-12), default=None) for x in (0.5, 0.8)}
    return apgr, cpt[0.5], cpt[0.8]


@settings(max_examples=60)
@given(st.lists(st.tuples(st.sampled_from([0.05, 0.1, 0.2, 0.5, 0.5, 0.9, np.nan]), st.integers(0, 1),
                          st.integers(0, 1)), min_size=3, max_size=60))
def test_router_metrics_are_exact_against_brute_force(rows):
    o = outcomes([[c, np.nan] for c, _, _ in rows], [[a, b] for _, a, b in rows])
    if abs(o.quality[:, 1].mean() - o.quality[:, 0].mean()) < 1e-12:
        return
    apgr, cpt50, cpt80 = brute_force_router(o)
    m = router_metrics(o)
    assert m["apgr"] == pytest.approx(apgr)
    assert m["cpt50"] == pytest.approx(cpt50) if cpt50 is not None else m["cpt50"] is None
    assert m["cpt80"] == pytest.approx(cpt80) if cpt80 is not None else m["cpt80"] is None


def test_bunched_confidences_do_not_jump_to_the_next_grid_point():
    # 1,000 tasks whose weak confidences bunch between two 0.01 grid points: a grid sees the call
    # share jump from 0% to 90%; the exact thresholds see every step in between.
    rng = np.random.default_rng(7)
    conf = np.concatenate([rng.uniform(0.9401, 0.9499, 900), np.full(100, 0.99)])
    right = (conf > 0.946).astype(float)  # the less sure half of the bunch is wrong
    o = outcomes(np.column_stack([conf, np.full(1000, np.nan)]), np.column_stack([right, np.ones(1000)]))
    m = router_metrics(o)
    apgr, cpt50, cpt80 = brute_force_router(o)
    assert m["cpt50"] == pytest.approx(cpt50) and 0.2 < m["cpt50"] < 0.3
    assert m["cpt80"] == pytest.approx(cpt80)
    assert m["apgr"] == pytest.approx(apgr)
    # three tiers: the cheapest vs the teacher, said so
    three = outcomes(np.column_stack([conf, conf, np.full(1000, np.nan)]),
                     np.column_stack([right, right, np.ones(1000)]))
    m3 = router_metrics(three)
    assert m3["cpt50"] == pytest.approx(m["cpt50"]) and "teacher" in m3["note"]


def test_tier_figures_and_what_if():
    o = outcomes([[0.9, np.nan]] * 6 + [[0.1, np.nan]] * 4, [[1, 1]] * 6 + [[0, 1]] * 4,
                 cats=["a"] * 6 + ["b"] * 4)
    figs = tier_figures(o)
    assert figs[0]["tier"] == 1 and figs[0]["quality"] == 0.6 and figs[1]["latency_p95_ms"] == 200
    base = what_if(o, [0.5], WhatIf(monthly_volume=1000))
    assert base["teacher_only_monthly_usd"] == pytest.approx(10.0)
    assert base["monthly_run_cost_usd"] == pytest.approx(1000 * (0.001 + 0.4 * 0.01))
    assert base["quality"] == 1.0 and base["break_even_month"] == 0
    mix = what_if(o, [0.5], WhatIf(monthly_volume=1000, mix={"a": 0.0, "b": 1.0}))
    assert mix["monthly_run_cost_usd"] == pytest.approx(1000 * 0.011)
    trained = what_if(o, [0.5], WhatIf(monthly_volume=1000, training_cost_usd=50, amortize_months=10))
    assert trained["monthly_training_usd"] == 5 and trained["break_even_month"] == 10
    cheaper = what_if(o, [0.5], WhatIf(monthly_volume=1000, price_scale={2: 0.5}, batch_discount=0.5))
    assert cheaper["teacher_only_monthly_usd"] == pytest.approx(2.5)


def test_a_tier_without_confidence_escalates_or_keeps_as_its_rule_says():
    o = outcomes([[np.nan, np.nan]] * 4, [[1, 1], [0, 1], [1, 1], [1, 1]], [[1.0, 10.0]] * 4)
    assert simulate(o, [0.5]).answered_share == [0.0, 1.0]
    assert tier_figures(o)[0]["without_confidence"] == 4
    o.keep_without_confidence = [True, False]
    sim = simulate(o, [0.5])
    assert sim.answered_share == [1.0, 0.0] and sim.quality == 0.75
    assert tier_figures(o)[0]["without_confidence_rule"] == "keeps the answer"
    assert sweep(o, np.linspace(0, 1, 11)).escalation.tolist() == [0.0] * 11
    w = what_if(o, [0.5], WhatIf(monthly_volume=100))
    assert w["teacher_only_monthly_usd"] == pytest.approx(1000) and w["monthly_run_cost_usd"] == pytest.approx(100)


def test_answers_without_real_time_latency_are_left_out_of_latency_figures():
    # tier 2 answered through the Batch API for half of the tasks (no latency): never counted as 0 ms
    lat = [[100.0, 300.0], [100.0, 300.0], [100.0, np.nan], [100.0, np.nan]]
    o = outcomes([[0.9, np.nan], [0.1, np.nan], [0.9, np.nan], [0.1, np.nan]], [[1, 1]] * 4, latency=lat)
    figs = tier_figures(o)
    assert figs[1]["latency_p50_ms"] == 300.0 and figs[1]["latency_excluded"] == 2
    sim = simulate(o, [0.5])  # tasks 1 and 3 escalate; task 3's path has no latency
    assert sim.latency_excluded == 1 and sim.latency_mean_ms == pytest.approx((100 + 400 + 100) / 3)
    sw = sweep(o, np.linspace(0, 1, 11))
    assert sw.latency[5] == pytest.approx(sim.latency_mean_ms)
    assert sw.latency[0] == pytest.approx(100.0)  # nothing escalates: every path is known
    full = outcomes([[0.9, np.nan], [0.1, np.nan]] * 2, [[1, 1]] * 4, latency=[[100.0, 300.0]] * 4)
    assert sweep(full, np.linspace(0, 1, 11)).latency[5] == pytest.approx(simulate(full, [0.5]).latency_mean_ms)
    three = outcomes([[0.9, 0.9, np.nan], [0.1, 0.9, np.nan], [0.1, 0.1, np.nan]], [[1, 1, 1]] * 3,
                     latency=[[10.0, 20.0, np.nan], [10.0, 20.0, np.nan], [10.0, 20.0, np.nan]])
    s3 = simulate(three, [0.5, 0.5])
    assert s3.latency_excluded == 1 and s3.latency_mean_ms == pytest.approx((10 + 30) / 2)
    assert sweep(three, np.linspace(0, 1, 11)).latency[5, 5] == pytest.approx(s3.latency_mean_ms)
