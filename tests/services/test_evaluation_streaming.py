"""Issue 22: evaluation reads, of each trajectory's ~35 KB of logprobs, only the first decision
token's alternatives (stored beside it at save time, derived in batches for older rows), and goes
through the tasks in bounded batches, with the same figures as from the full logprobs."""

from __future__ import annotations

import asyncio

from cascade_studio.core import agreement as ag
from cascade_studio.services import evaluation as ev
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store import trajectories as trajectories_store
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace


def collected(folder, url, limit=40) -> Workspace:
    prepare_demo(folder, url)
    ws = Workspace.open(folder)
    ids = select_task_ids(ws, limit=limit)
    for tier in TierRepository(ws).list():
        run, _ = start_or_resume(ws, tier, ids, {})
        asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
    return ws


def evaluate(ws, student=1):
    tiers = {t.tier: t for t in TierRepository(ws).list()}
    ids = [r[0] for r in ws.conn.execute("SELECT DISTINCT task_id FROM trajectories ORDER BY task_id")]
    return asyncio.run(ev.evaluate(ws, tiers[3], tiers[student], ids, SecretStore(), use_embeddings=False,
                                   record=False))


def test_kl_from_the_stored_decision_token_equals_the_kl_from_the_full_logprobs(tmp_path, sandbox_thread):
    ws = collected(tmp_path / "ws", sandbox_thread.base_url)
    repo = TrajectoryRepository(ws)
    assert repo.count() == ws.conn.execute("SELECT count(*) FROM trajectory_decisions").fetchone()[0] == 120
    tiers = {t.tier: t for t in TierRepository(ws).list()}
    report = evaluate(ws)
    t_sides, s_sides = ev.latest_sides(ws, tiers[3]), ev.latest_sides(ws, tiers[1])
    with_kl = 0
    for r in report.results:
        teacher, student = (repo.get(sides[r.task_id].trajectory_id)[0] for sides in (t_sides, s_sides))
        assert teacher.logprobs and student.logprobs  # real-size rows: the sandbox sends logprobs
        expected = ag.decision_kl(teacher.logprobs, teacher.tool_name, student.logprobs, student.tool_name, 2.0)
        assert r.kl == expected
        with_kl += expected is not None
    assert with_kl > 30


def test_older_rows_are_derived_in_batches_and_batches_change_nothing(tmp_path, sandbox_thread, monkeypatch):
    ws = collected(tmp_path / "ws", sandbox_thread.base_url)
    first = evaluate(ws)
    # a workspace from before schema step 13: no decision rows; small batches everywhere
    ws.conn.execute("DELETE FROM trajectory_decisions")
    monkeypatch.setattr(ev, "BATCH", 7)
    monkeypatch.setattr(trajectories_store, "DERIVE_BATCH", 3)
    statements: list[str] = []
    ws.conn.set_trace_callback(statements.append)
    second = evaluate(ws)
    assert [r.to_json() for r in second.results] == [r.to_json() for r in first.results]
    assert second.summary == first.summary and second.similarity_method == first.similarity_method
    derived = ws.conn.execute("SELECT count(*) FROM trajectory_decisions").fetchone()[0]
    assert derived == 2 * len(first.results)  # the rows evaluation needed, stored for next time
    assert any("p.logprobs FROM trajectories" in s for s in statements)  # from its payloads
    statements.clear()
    third = evaluate(ws)
    assert [r.to_json() for r in third.results] == [r.to_json() for r in first.results]
    # derived once: now nothing reads the logprobs column
    assert not [s for s in statements if "trajector" in s and "logprobs" in s]


def test_kept_verdicts_give_the_figures_that_computing_them_gives(tmp_path, sandbox_thread):
    from cascade_studio.services.tradeoffs import load_outcomes

    ws = collected(tmp_path / "ws", sandbox_thread.base_url)
    ws.conn.execute("UPDATE trajectories SET correct = NULL")
    computed = evaluate(ws)
    load_outcomes(ws, TierRepository(ws).list())  # keeps every verdict against the expected answers
    assert ws.conn.execute("SELECT count(*) FROM trajectories WHERE correct IS NOT NULL").fetchone()[0] == 120
    kept = evaluate(ws)
    assert [r.to_json() for r in kept.results] == [r.to_json() for r in computed.results]
    assert kept.summary == computed.summary and computed.summary["overall"]["accuracy"]["tasks"] == 40
    # the kept verdict is the one used: flip one and its task follows
    tiers = {t.tier: t for t in TierRepository(ws).list()}
    side = next(iter(ev.latest_sides(ws, tiers[1]).items()))
    ws.conn.execute("UPDATE trajectories SET correct = 1 - correct WHERE id = ?", (side[1].trajectory_id,))
    flipped = {r.task_id: r for r in evaluate(ws).results}[side[0]]
    assert flipped.student_correct is (not {r.task_id: r for r in computed.results}[side[0]].student_correct)


def test_collection_keeps_each_answers_verdict_as_trade_offs_judges_it(tmp_path, sandbox_thread):
    from cascade_studio.services.tradeoffs import load_outcomes

    ws = collected(tmp_path / "ws", sandbox_thread.base_url)
    kept = dict(ws.conn.execute("SELECT id, correct FROM trajectories"))
    assert len(kept) == 120 and None not in kept.values()  # judged as each answer was saved
    ws.conn.execute("UPDATE trajectories SET correct = NULL")
    load_outcomes(ws, TierRepository(ws).list())  # judges them all again, the Trade-offs way
    assert dict(ws.conn.execute("SELECT id, correct FROM trajectories")) == kept
