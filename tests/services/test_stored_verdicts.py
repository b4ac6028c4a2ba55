"""Issue 22: the trade-offs' accuracy verdicts are computed once and kept with the trajectories
(`correct`), so loading outcomes again parses no tool calls; a task whose content changes clears its
trajectories' verdicts."""

from __future__ import annotations

import numpy as np

from cascade_studio.core.tasks import Task
from cascade_studio.services.tradeoffs import load_outcomes
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from tests.services.test_evaluation_streaming import collected


def test_verdicts_are_kept_and_cleared_when_the_task_changes(tmp_path, sandbox_thread, monkeypatch):
    ws = collected(tmp_path / "ws", sandbox_thread.base_url, limit=20)
    tiers = TierRepository(ws).list()
    first = load_outcomes(ws, tiers)
    assert first.quality_basis == "accuracy" and first.n == 20
    stored = ws.conn.execute("SELECT count(*), sum(correct IS NULL) FROM trajectories").fetchone()
    assert stored[0] == 60 and stored[1] == 0  # every verdict kept
    # a second load computes nothing: the BFCL check is not called, the figures are the same
    import cascade_studio.services.tradeoffs as tr

    monkeypatch.setattr(tr, "bfcl_correct", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
    second = load_outcomes(ws, tiers)
    assert np.array_equal(first.quality, second.quality)
    monkeypatch.undo()
    # the task's expected answer changes: its verdicts are cleared and computed again
    task = TaskRepository(ws).get(first.task_ids[0])
    flipped = Task(task.id, task.category, task.messages, task.tools, [{"no_such_tool": {}}], task.source)
    TaskRepository(ws).upsert([flipped])
    assert ws.conn.execute("SELECT count(*) FROM trajectories WHERE task_id = ? AND correct IS NULL",
                           (task.id,)).fetchone()[0] == 3
    third = load_outcomes(ws, tiers)
    row = third.task_ids.index(task.id)
    assert third.quality[row].tolist() == [0.0, 0.0, 0.0]  # nobody calls a tool that does not exist
    ws.close()
