"""load_outcomes on arrays gives exactly the Outcomes of the previous per-task loop (kept in
bench/scale.py as the benchmark's baseline): agreement and accuracy bases, a category, tasks
missing a tier, students that disagree with the teacher."""

import asyncio

import numpy as np
import orjson

from bench.scale import baseline_load_outcomes
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.tradeoffs import load_outcomes
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


def same(a, b):
    assert a.task_ids == b.task_ids and a.categories == b.categories and a.tiers == b.tiers
    assert (a.excluded, a.quality_basis, a.keep_without_confidence) == (b.excluded, b.quality_basis,
                                                                        b.keep_without_confidence)
    for name in ("cost", "latency", "quality", "confidence", "prompt_tokens", "completion_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_array_load_equals_the_loop(tmp_path, sandbox_thread):
    prepare_demo(tmp_path, sandbox_thread.base_url)
    with Workspace.open(tmp_path) as ws:
        ids = select_task_ids(ws, limit=40)
        tiers = TierRepository(ws).list()
        for tier in tiers:
            run, _ = start_or_resume(ws, tier, ids if tier.tier != 1 else ids[:35], {})  # 5 tasks miss tier 1
            asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
        progress = []
        new = load_outcomes(ws, tiers, progress=lambda done, of: progress.append((done, of)))
        same(new, baseline_load_outcomes(ws, tiers))
        assert new.quality_basis == "accuracy" and new.excluded == 5 and progress[-1] == (4, 4)
        category = new.categories[0]
        same(load_outcomes(ws, tiers, category), baseline_load_outcomes(ws, tiers, category))
        # agreement with the teacher: no expected answer for one task; some students' calls changed
        ws.conn.execute("UPDATE tasks SET expected = NULL WHERE id = ?", (new.task_ids[0],))
        rows = ws.conn.execute("SELECT id, tool_calls FROM trajectories WHERE tier < 3 ORDER BY id").fetchall()
        for i, (row_id, calls) in enumerate(rows):
            parsed = orjson.loads(calls)
            if parsed and i % 3 == 0:  # same calls, other spelling (key order, spacing): still agree
                changed = orjson.dumps([{"arguments": c.get("arguments"), "name": c.get("name")} for c in parsed])
            elif parsed and i % 3 == 1:
                changed = orjson.dumps([{**c, "arguments": {"x": i}} for c in parsed])
            else:
                continue
            ws.conn.execute("UPDATE trajectories SET tool_calls = ? WHERE id = ?", (changed.decode(), row_id))
        new = load_outcomes(ws, tiers)
        same(new, baseline_load_outcomes(ws, tiers))
        assert new.quality_basis == "agreement" and 0 < new.quality[:, 0].mean() < 1
        same(load_outcomes(ws, tiers[1:]), baseline_load_outcomes(ws, tiers[1:]))
        same(load_outcomes(ws, tiers, "no such category"), baseline_load_outcomes(ws, tiers, "no such category"))


def test_odd_ids_deleted_tasks_and_small_verdict_batches(tmp_path, sandbox_thread, monkeypatch):
    """The tasks' aggregate read falls back when an id holds its separator; trajectories of a task no longer
    in the workspace count as before; verdicts computed a few tasks at a time equal the loop's."""
    import cascade_studio.services.tradeoffs as tr
    from cascade_studio.store.tasks import TaskRepository
    from cascade_studio.store.trajectories import TrajectoryRepository

    prepare_demo(tmp_path, sandbox_thread.base_url)
    with Workspace.open(tmp_path) as ws:
        ids = select_task_ids(ws, limit=24)
        tiers = TierRepository(ws).list()
        for tier in tiers:
            run, _ = start_or_resume(ws, tier, ids, {})
            asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
        monkeypatch.setattr(tr, "VERDICT_BATCH", 5)
        same(load_outcomes(ws, tiers), baseline_load_outcomes(ws, tiers))
        assert ws.conn.execute("SELECT count(*) FROM trajectories WHERE correct IS NULL AND status = 'ok'"
                               ).fetchone()[0] == 0  # every batch stored its verdicts
        ws.conn.execute("DELETE FROM tasks WHERE id = ?", (ids[0],))  # its trajectories stay
        same(load_outcomes(ws, tiers), baseline_load_outcomes(ws, tiers))
        odd = ids[1] + "\x1fodd"
        ws.conn.execute("UPDATE tasks SET id = ? WHERE id = ?", (odd, ids[1]))
        ws.conn.execute("UPDATE trajectories SET task_id = ? WHERE task_id = ?", (odd, ids[1]))
        assert TaskRepository(ws).categories_and_expected_arrays() is None
        ids_read, values, _ = TrajectoryRepository(ws).latest_ok_arrays(1, ["cost_micro"])  # no separator there
        assert odd in ids_read and ids_read == sorted(ids_read) and len(values["cost_micro"]) == len(ids_read)
        same(load_outcomes(ws, tiers), baseline_load_outcomes(ws, tiers))
