"""The inspector's views (store.trajectory_query): the ids it keeps are exactly what SQLite's own
ORDER BY gives, for every sort key, both directions, NULLs, ties and every kind of filter; and the
queries read the covering index, never a single-column index fetching rows at random."""

from __future__ import annotations

import random

import pytest

from cascade_studio.store import trajectory_query as tq
from cascade_studio.store.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("query")
    rng = random.Random(7)
    with Workspace.open(folder) as w:
        w.conn.execute("INSERT INTO runs (id, tier, model, status, task_ids, params, created_at, updated_at) "
                       "VALUES (1, 1, 'm', 'done', '[]', '{}', '', '')")
        rows = []
        for i in range(1500):
            conf = None if i % 11 == 0 else rng.choice([0.25, 0.5, rng.random(), 1e-05, 0.123456789012])
            rows.append((f"t{rng.randrange(400):04d}", rng.choice([1, 2, 3]), rng.choice(["m1", "m2"]),
                         rng.choice(["ok", "ok", "error"]), rng.choice(["a", "b", "c"]), rng.choice(["x", "y", None]),
                         rng.choice([0, 5, 17, rng.randrange(1000)]), rng.choice([0.0, 12.5, rng.random() * 900]),
                         conf, conf, None if conf is None else conf / 2, rng.choice([None, "accepted", "rejected"]),
                         rng.choice(["", "hard", "x,y"]), rng.choice([1, 1, 3]), rng.choice([None, "answered", "steps"]),
                         rng.randrange(100), rng.randrange(50), rng.choice(["g1", "g2"])))
        w.conn.executemany(
            "INSERT INTO trajectories (task_id, tier, model, status, category, tool_name, cost_micro, latency_ms, "
            "conf_mean, conf_min, conf_tool, curation, tags, steps, end_reason, prompt_tokens, completion_tokens, "
            "generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        yield w


def sqlite_order(ws, flt: tq.TrajectoryFilter) -> list[int]:
    """The reference: SQLite's ORDER BY over the same WHERE."""
    where, args = flt.where()
    key = flt.sort_key()
    direction = "DESC" if flt.descending else "ASC"
    order = f"{key} {direction}, id {direction}" if key else f"id {direction}"
    return [r[0] for r in ws.conn.execute(f"SELECT id FROM trajectories{where} ORDER BY {order}", args)]


FILTERS = [
    {},
    {"category": "a", "conf_min": 0.3},
    {"tier": 2, "status": "ok", "cost_max_micro": 100},
    {"curation": "none", "conf_max": 0.5, "confidence": "min_token_prob"},
    {"generations": {1: ("g1",), 2: ("g2", "g1")}},
    {"episode": "episodes", "min_steps": 2},
    {"search": "hard"},
    {"tool": "nothing-matches"},
]


@pytest.mark.parametrize("sort", sorted(tq.SORTABLE))
@pytest.mark.parametrize("descending", [False, True])
def test_every_sort_matches_sqlite(ws, sort, descending):
    for options in FILTERS:
        flt = tq.TrajectoryFilter(sort=sort, descending=descending, **options)
        ids = tq.matching_ids(ws, flt)
        assert ids.tolist() == sqlite_order(ws, flt), (sort, descending, options)


@pytest.mark.parametrize("confidence", ["mean_token_prob", "min_token_prob", "chosen_tool"])
def test_confidence_sort_follows_the_method(ws, confidence):
    flt = tq.TrajectoryFilter(sort="confidence", confidence=confidence, conf_min=0.1)
    assert tq.matching_ids(ws, flt).tolist() == sqlite_order(ws, flt)


def test_rows_by_id_reads_a_block(ws):
    ids = tq.matching_ids(ws, tq.TrajectoryFilter(sort="cost_micro", descending=True))
    block = tq.rows_by_id(ws, ids[:256].tolist())
    assert len(block) == 256 and all(block[i][0] == i for i in ids[:256].tolist())


def test_filters_and_sorts_read_the_covering_index(ws):
    """No plan walks a single-column index fetching rows at random (2 s at a million rows)."""
    ws.conn.execute("ANALYZE")
    for options in FILTERS[:6]:
        for sort in ("cost_micro", "confidence", "latency_ms", "id"):
            flt = tq.TrajectoryFilter(sort=sort, **options)
            where, args = flt.where()
            key = flt.sort_key()
            sql = f"SELECT group_concat(id) FROM trajectories{where}" if key is None else \
                tq.sorted_ids_sql(where, key, False)
            plan = " ".join(r[3] for r in ws.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            # a covering scan is fine (it fetches no row), and so is a single-column index searched for one
            # value (its rows come in rowid order), or walked whole without a filter (it covers the id)
            for index in ("conf", "cost", "latest", "tier_task", "tier_generation"):
                if where:
                    assert f"USING INDEX trajectories_{index} " not in plan + " ", (options, plan)
            if not options.get("category") and not options.get("tool"):
                assert "COVERING INDEX" in plan, (options, plan)


@pytest.mark.parametrize("aggregate_order_by", [False, True])
def test_both_forms_of_the_sorted_aggregate_and_the_fallback_match_sqlite(ws, monkeypatch, aggregate_order_by):
    """The ordered subquery (SQLite < 3.44), the aggregate's own ORDER BY (3.44+, where this SQLite has
    it) and the row-at-a-time fallback all give SQLite's order; the order check catches a wrong one."""
    import sqlite3

    if aggregate_order_by and sqlite3.sqlite_version_info < (3, 44, 0):
        pytest.skip(f"SQLite {sqlite3.sqlite_version} has no ORDER BY in aggregates")
    monkeypatch.setattr(tq, "AGGREGATE_ORDER_BY", aggregate_order_by)
    for sort in ("latency_ms", "model", "confidence", "tokens"):
        for descending in (False, True):
            for options in FILTERS[:4]:
                flt = tq.TrajectoryFilter(sort=sort, descending=descending, **options)
                assert tq.matching_ids(ws, flt).tolist() == sqlite_order(ws, flt), (sort, descending, options)
    flt = tq.TrajectoryFilter(sort="latency_ms")
    right = tq.matching_ids(ws, flt)
    assert tq._in_order(ws, right, "latency_ms", False) and not tq._in_order(ws, right[::-1].copy(), "latency_ms", False)
    assert tq._in_order(ws, right[::-1].copy(), "latency_ms", True)
    monkeypatch.setattr(tq, "_in_order", lambda *a: False)  # an SQLite that dropped the order: the fallback
    for sort in ("latency_ms", "task_id"):
        flt = tq.TrajectoryFilter(sort=sort, descending=True, category="a")
        assert tq.matching_ids(ws, flt).tolist() == sqlite_order(ws, flt)


def test_a_value_that_is_not_a_number_falls_back_to_sqlite(ws):
    """A hand-edited workspace may hold text in a numeric column: the order is still SQLite's."""
    ws.conn.execute("UPDATE trajectories SET latency_ms = 'n/a' WHERE id = 5")
    try:
        flt = tq.TrajectoryFilter(sort="latency_ms")
        assert tq.matching_ids(ws, flt).tolist() == sqlite_order(ws, flt)
    finally:
        ws.conn.execute("UPDATE trajectories SET latency_ms = 1.0 WHERE id = 5")
