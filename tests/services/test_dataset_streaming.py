"""Issue 22: a dataset build streams (pass 1: hashes and categories; pass 2: each file in batches)
and writes what the all-in-memory steps of core.datasets give for the same trajectories."""

from __future__ import annotations

import json

import orjson

from cascade_studio.core.datasets import SourceTrajectory, build_examples, stratified_split
from cascade_studio.services import datasets as dsvc
from cascade_studio.store.trajectories import TrajectoryRepository
from tests.services.test_evaluation_streaming import collected


def reference(ws, f: dsvc.DatasetFilters):
    latest = sorted(r[0] for r in ws.conn.execute(
        "SELECT max(id) FROM trajectories WHERE tier = 3 AND status = 'ok' GROUP BY task_id"))
    rows = sorted(TrajectoryRepository(ws).by_ids(latest, ("id", "task_id", "category", "request", "content",
                                                           "tool_calls", "logprobs")))
    trajs = [SourceTrajectory(r[1], r[2], orjson.loads(r[3])["messages"], orjson.loads(r[3]).get("tools") or [], r[4],
                              orjson.loads(r[5])) for r in rows]
    kept: list[str] = []
    examples, cats, dropped = build_examples(trajs, strategy=f.strategy, system_prompt=f.system_prompt, kept_task_ids=kept)
    train, valid = stratified_split(cats, f.validation_share, f.seed, kept)
    lp = {r[1]: None if r[6] is None else orjson.loads(r[6]) for r in rows}
    return ([examples[i] for i in train], [examples[i] for i in valid], [lp[kept[i]] for i in train],
            [kept[i] for i in valid], dropped, [r[0] for r in rows])


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_streamed_build_equals_the_in_memory_steps(tmp_path, sandbox_thread, monkeypatch):
    ws = collected(tmp_path / "ws", sandbox_thread.base_url)
    # duplicates of three prompts under other task ids (dedupe drops them)
    cols = [r[1] for r in ws.conn.execute("PRAGMA table_info(trajectories)") if r[1] not in ("id", "task_id")]
    ws.conn.execute(f"INSERT INTO trajectories (task_id, {', '.join(cols)}) SELECT task_id || '-again', "
                    f"{', '.join(cols)} FROM trajectories WHERE tier = 3 ORDER BY id LIMIT 3")
    ws.conn.execute("INSERT INTO trajectory_payloads (id, request, response, logprobs) SELECT n.id, p.request, "
                    "p.response, p.logprobs FROM trajectories n JOIN trajectories o ON n.task_id = o.task_id || '-again' "
                    "AND n.tier = o.tier AND n.run_id IS o.run_id JOIN trajectory_payloads p ON p.id = o.id")
    f = dsvc.DatasetFilters(validation_share=0.25, seed=5, system_prompt="Be exact", strategy="reasoning")
    train, valid, train_lp, valid_tasks, dropped, ids = reference(ws, f)
    assert dropped == 3
    monkeypatch.setattr(dsvc, "BATCH", 4)
    built = dsvc.build_dataset(ws, tmp_path / "small" / "train.jsonl", f)
    monkeypatch.undo()
    again = dsvc.build_dataset(ws, tmp_path / "big" / "train.jsonl", f)
    for b in (built, again):
        assert lines(b.path) == train and lines(b.validation_path) == valid
        assert [None if x is None else x["content"] for x in lines(b.teacher_logprobs)] == train_lp
        assert (b.examples, b.validation_examples, b.duplicates_dropped, b.trajectory_ids) == \
            (len(train), len(valid), 3, ids)
    assert dsvc.validation_task_ids(ws, again.id) == (again.id, valid_tasks)
    assert {p.name: p.read_bytes() for p in (tmp_path / "small").iterdir()} == \
        {p.name: p.read_bytes() for p in (tmp_path / "big").iterdir()}
    assert TrajectoryRepository(ws).any_logprobs(ids) and not TrajectoryRepository(ws).any_logprobs([])
