"""Issue 32, `whatif --sweep` at 100k tasks: the fast reads give exactly what the previous formulation
gave. The latest ok row per task is now picked from one scan of the covering index (no GROUP BY, no
numbers written as text and parsed again), tiers that answered the same tasks are aligned once, and
category codes come from a dictionary built at C speed. The previous formulations are kept here as
the reference, on a workspace with mixed verdicts (stored, missing, right and wrong), unknown
latencies and confidences, a task collected again, rows of two generations and agent episodes."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from bench.scale import baseline_load_outcomes
from cascade_studio.cli import main
from cascade_studio.core.confidence import confidence_column
from cascade_studio.core.tiers import generation_keys, legacy_generation
from cascade_studio.core.tradeoffs import WhatIf, category_codes, tradeoff_report
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.tradeoffs import load_outcomes
from cascade_studio.store.numbers import parse_numbers
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository, _latest_per_task
from cascade_studio.store.workspace import Workspace

NUMERIC = ["cost_micro", "latency_ms", "prompt_tokens", "completion_tokens"]


def number_text(expr: str) -> str:
    """The reference's SQL: `expr` as text that parses back to the same number (a float with 17
    significant digits), `nan` for NULL, a word that does not parse for text."""
    return (f"CASE typeof({expr}) WHEN 'integer' THEN {expr} WHEN 'real' THEN printf('%!.17g', {expr}) "
            f"WHEN 'null' THEN 'nan' ELSE 'text' END")


def reference_latest_ok_arrays(ws, tier, numeric, generations):
    """latest_ok_arrays as it was: SQLite groups by task (max(id) with bare columns) and writes every
    value as text, numpy parses it."""
    gen = f" AND generation IN ({','.join('?' * len(generations))})" if generations else ""
    values = "".join(f", group_concat({number_text(c)})" for c in numeric)
    row = ws.conn.execute(
        f"SELECT count(*), group_concat(task_id, char(31)), group_concat(id){values} FROM (SELECT task_id, "
        f"max(id) AS id, {', '.join(numeric)} FROM trajectories INDEXED BY trajectories_latest "
        f"WHERE tier = ? AND status = 'ok'{gen} GROUP BY task_id)", (tier, *(generations or ()))).fetchone()
    n = row[0]
    return (row[1].split("\x1f") if n else [], {c: parse_numbers(t, np.float64) for c, t in zip(numeric, row[3:], strict=True)},
            parse_numbers(row[2], np.int64))


def test_latest_row_per_task_picks_as_group_by_does():
    """The latest row per task (largest id), in task id order: numpy's sort and the dictionary (ids numpy
    text would compare otherwise: a trailing NUL; or too long for fixed-width text) pick alike."""
    rng = np.random.default_rng(7)
    for names in (["b", "a", "é", "a~1", "B", "ab"], ["a", "a\0", "b\0\0", "b"], ["x" * 300, "y", "x"]):
        tasks = [names[i] for i in rng.integers(0, len(names), 200)]
        ids = rng.permutation(1000)[:200].tolist()
        best = {t: max(i for i, u in zip(ids, tasks, strict=True) if u == t) for t in set(tasks)}
        keep = _latest_per_task(tasks, ids)
        assert [tasks[i] for i in keep] == sorted(best) and [ids[i] for i in keep] == [best[t] for t in sorted(best)]


def reference_category_codes(categories):
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(c, len(index)) for c in categories), dtype=np.int64, count=len(categories))
    return list(index), codes


def baseline(ws, tiers, category=None):
    """The per-task loop of bench/scale.py, with the rule added since: a latency of 0 (a Batch API
    answer) is unknown."""
    out = baseline_load_outcomes(ws, tiers, category)
    out.latency = np.where(out.latency > 0, out.latency, np.nan)
    return out


def same(a, b):
    assert a.task_ids == b.task_ids and a.categories == b.categories and a.tiers == b.tiers
    assert (a.excluded, a.quality_basis) == (b.excluded, b.quality_basis)
    for name in ("cost", "latency", "quality", "confidence", "prompt_tokens", "completion_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def check_reads(ws, tiers):
    repo = TrajectoryRepository(ws)
    for t in tiers:
        cols = [*NUMERIC, confidence_column(t.confidence_method.value), "correct"]
        for gens in (generation_keys(t), None, generation_keys(t)[:1]):
            ids, values, traj = repo.latest_ok_arrays(t.tier, cols, gens)
            ref_ids, ref_values, ref_traj = reference_latest_ok_arrays(ws, t.tier, cols, gens)
            assert ids == ref_ids
            np.testing.assert_array_equal(traj, ref_traj)
            for c in cols:
                np.testing.assert_array_equal(values[c], ref_values[c], err_msg=c)


def test_fast_reads_equal_the_previous_formulation(tmp_path, sandbox_thread, capsys):
    prepare_demo(tmp_path, sandbox_thread.base_url)
    with Workspace.open(tmp_path) as ws:
        tiers = TierRepository(ws).list()
        ids = select_task_ids(ws, limit=30)
        for tier in tiers:
            run, _ = start_or_resume(ws, tier, ids if tier.tier != 2 else ids[:26], {})  # 4 tasks miss tier 2
            asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
        run, _ = start_or_resume(ws, tiers[0], ids[:6], {}, again=True)  # collected again: the newer row counts
        asyncio.run(CollectionRun(ws, tiers[0], SecretStore(), run).run())
        conn = ws.conn
        conn.execute("UPDATE trajectories SET correct = NULL WHERE id % 3 = 0")  # verdicts computed at load
        conn.execute("UPDATE trajectories SET latency_ms = 0 WHERE id % 7 = 1")  # Batch API: no real-time latency
        conn.execute("UPDATE trajectories SET conf_mean = NULL, conf_min = NULL, conf_tool = NULL WHERE id % 5 = 2")
        # an older generation of tier 3 (the model's legacy rows) beside its current one
        conn.execute("UPDATE trajectories SET generation = ? WHERE tier = 3 AND id % 4 = 0",
                     (legacy_generation(tiers[2].model),))
        # agent episodes: the finished episode is one row naming its episode, written after the rest
        top = conn.execute("SELECT max(id) FROM trajectories").fetchone()[0]
        cols = [r[1] for r in conn.execute("PRAGMA table_info(trajectories)") if r[1] not in ("id", "trial")]
        sel = ", ".join("'ep-' || id" if c == "episode" else "steps + 2" if c == "steps" else c for c in cols)
        conn.execute(f"INSERT INTO trajectories (id, trial, {', '.join(cols)}) SELECT id + {top}, 7, {sel} "
                     "FROM trajectories WHERE task_id IN (?, ?) AND status = 'ok'", (ids[7], ids[8]))
        assert conn.execute("SELECT count(*) FROM (SELECT task_id FROM trajectories WHERE tier = 1 AND status = 'ok' "
                            "GROUP BY task_id HAVING count(*) > 1)").fetchone()[0] >= 6
        assert conn.execute("SELECT count(*) FROM trajectories WHERE episode LIKE 'ep-%'").fetchone()[0] >= 6
        verdicts = conn.execute("SELECT count(*), sum(correct = 1), sum(correct = 0) FROM trajectories").fetchone()
        assert verdicts[1] and verdicts[2]  # right and wrong answers among the stored verdicts

        check_reads(ws, tiers)
        reference = baseline(ws, tiers)
        conn.execute("UPDATE trajectories SET correct = NULL WHERE id % 3 = 0")  # the baseline does not store
        new = load_outcomes(ws, tiers)
        same(new, reference)
        assert new.excluded == 4 and np.isnan(new.latency).any() and np.isnan(new.confidence).any()
        check_reads(ws, tiers)  # the verdicts stored at load read back the same way
        names, codes = category_codes(list(new.categories))
        ref_names, ref_codes = reference_category_codes(new.categories)
        assert names == ref_names and codes.tolist() == ref_codes.tolist()

        # every tier answered the same tasks: aligned once, in task id order without a sort
        run, _ = start_or_resume(ws, tiers[1], ids, {})
        asyncio.run(CollectionRun(ws, tiers[1], SecretStore(), run).run())
        new = load_outcomes(ws, tiers)
        same(new, baseline(ws, tiers))
        assert new.excluded == 0 and new.n == 30
        category = new.categories[-1]
        same(load_outcomes(ws, tiers, category), baseline(ws, tiers, category))
        thresholds = [t.threshold for t in tiers[:-1]]
        expected = tradeoff_report(baseline(ws, tiers), thresholds, WhatIf(), with_sweep=True)
    capsys.readouterr()
    assert main(["-w", str(tmp_path), "whatif", "--sweep", "--json"]) == 0
    assert capsys.readouterr().out == json.dumps(expected, indent=2, default=str) + "\n"  # byte for byte
