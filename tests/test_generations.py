"""Issue 13: every figure belongs to the model that produced it; no money is spent twice.
Against the sandbox over real HTTP, through the CLI (the same services the GUI uses)."""

from __future__ import annotations

import json
from pathlib import Path

from cascade_studio.cli import main
from cascade_studio.store.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
BFCL = ROOT / "resources" / "bfcl" / "BFCL_v4_multiple.json"


def cli(capsys, ws, *args) -> tuple[int, str, str]:
    code = main(["-w", str(ws), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def setup(ws, url, capsys) -> None:
    for n, model in ((1, "gpt-4o-mini"), (2, "gpt-4o")):
        assert cli(capsys, ws, "tiers", "set", str(n), "--model", model, "--base-url", url, "--provider", "sandbox")[0] == 0
    assert cli(capsys, ws, "tasks", "import", str(BFCL))[0] == 0


def test_a_finished_run_is_not_paid_twice_and_again_is_explicit(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    setup(ws, sandbox_thread.base_url, capsys)
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--limit", "10", "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["requests"] == 10 and plan["already_collected"] == 0
    assert float(plan["estimated_cost_usd"]) > 0 and "no answers yet" in plan["output_basis"]
    assert sandbox_thread.sandbox.request_count == 0  # a dry run sends nothing
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--limit", "10", "--json")
    first = json.loads(out)
    assert code == 0 and first["done"] == 10 and first["generation"]
    sent = sandbox_thread.sandbox.request_count
    # the same run again: every task is already collected by this generation -> no request
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", "--limit", "10", "--json")
    again = json.loads(out)
    assert code == 0 and sandbox_thread.sandbox.request_count == sent
    assert again["skipped"] == 10 and again["tokens"] == 0 and "10 of 10 already collected; 0 to go" in err
    # a larger set: only the new tasks are sent, and the estimate now uses the tier's own answers
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--limit", "15", "--dry-run", "--json")
    plan = json.loads(out)
    assert plan["requests"] == 5 and plan["already_collected"] == 10 and "median" in plan["output_basis"]
    # on purpose: --again re-collects (and says so)
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", "--limit", "10", "--again", "--json")
    assert code == 0 and json.loads(out)["skipped"] == 0 and sandbox_thread.sandbox.request_count == sent + 10
    assert "again on purpose" in err


def test_a_new_model_gets_its_own_figures(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    setup(ws, sandbox_thread.base_url, capsys)
    for tier in ("1", "2"):
        assert cli(capsys, ws, "collect", "--tier", tier, "--limit", "12")[0] == 0
    code, out, _ = cli(capsys, ws, "evaluate", "--student", "1", "--all-tasks", "--no-embeddings", "--json")
    old = json.loads(out)
    assert code == 0 and old["overall"]["tasks"] == 12
    # the student's model changes (as `finetune use` does): its old answers no longer count
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4.1-mini")[0] == 0
    code, _, err = cli(capsys, ws, "evaluate", "--student", "1", "--all-tasks", "--no-embeddings", "--json")
    assert code == 1 and "--collect" in err
    assert cli(capsys, ws, "whatif", "--json")[0] == 1  # no outcome of the new generation yet
    code, out, _ = cli(capsys, ws, "evaluate", "--student", "1", "--all-tasks", "--limit", "12", "--no-embeddings",
                       "--collect", "--json")
    new = json.loads(out)
    assert code == 0 and new["overall"]["tasks"] == 12
    assert new["student"]["model"] == "gpt-4.1-mini" and new["student"]["generation"] != old["student"]["generation"]
    assert new["teacher"]["generation"] == old["teacher"]["generation"]
    # both generations stay as history; rows name theirs
    code, out, _ = cli(capsys, ws, "trajectories", "list", "--tier", "1", "--json")
    rows = json.loads(out)
    assert {r["model"] for r in rows if r["current_generation"]} == {"gpt-4.1-mini"}
    assert {r["model"] for r in rows if not r["current_generation"]} == {"gpt-4o-mini"}
    assert len({r["generation"] for r in rows}) == 2
    # a dataset of the student's tier uses the current generation only
    code, out, _ = cli(capsys, ws, "dataset", "build", "--tier", "1", "--out", str(tmp_path / "d.jsonl"), "--json")
    assert code == 0 and json.loads(out)["trajectories"] == 12
    with Workspace.open(ws) as w:
        ids = json.loads(w.conn.execute("SELECT trajectory_ids FROM datasets").fetchone()[0])
        models = {r[0] for r in w.conn.execute(
            f"SELECT model FROM trajectories WHERE id IN ({','.join('?' * len(ids))})", ids)}
    assert all(m.startswith("gpt-4.1-mini") for m in models)


def test_promotion_gate_and_per_task(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    setup(ws, sandbox_thread.base_url, capsys)
    base = ["evaluate", "--student", "1", "--all-tasks", "--limit", "10", "--no-embeddings", "--collect", "--json"]
    code, out, _ = cli(capsys, ws, *base, "--per-task")
    report = json.loads(out)
    assert code == 0 and len(report["per_task"]) == 10
    assert set(report["per_task"][0]) == {"task_id", "category", "teacher_correct", "student_correct",
                                          "tool_agreement", "args_agreement"}
    code, out, err = cli(capsys, ws, *base, "--min-agreement", "1.01")
    assert code == 3 and "falls short" in err and json.loads(out)["gate"]["passed"] is False
    code, out, _ = cli(capsys, ws, *base, "--min-agreement", "0")
    assert code == 0 and json.loads(out)["gate"]["passed"] is True


async def test_totals_after_a_resume_add_up_to_what_is_stored(tmp_path, sandbox):
    from cascade_studio.sandbox.faults import parse_faults
    from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.services.task_import import import_tasks
    from cascade_studio.store.tiers import TierRepository
    from tests.services.test_collector import make_tier

    ws = Workspace.open(tmp_path / "ws")
    import_tasks(ws, BFCL)
    tier = make_tier(sandbox.base_url)
    TierRepository(ws).replace_all([tier])
    ids = select_task_ids(ws, limit=30)
    sandbox.config.faults = parse_faults("500=0.5")
    run, _ = start_or_resume(ws, tier, ids, {})
    first = await CollectionRun(ws, tier, SecretStore(), run, max_attempts=1).run()
    assert first.status == "failed" and 0 < first.done < 30
    sandbox.config.faults = parse_faults("")
    again, resumed = start_or_resume(ws, tier, ids, {})
    second = await CollectionRun(ws, tier, SecretStore(), again).run()
    assert resumed and second.status == "done" and second.done == 30
    tokens, cost = ws.conn.execute("SELECT sum(prompt_tokens + completion_tokens), sum(cost_micro) FROM trajectories "
                                   "WHERE run_id = ? AND status = 'ok'", (run.id,)).fetchone()
    assert second.tokens < second.run_tokens == tokens == first.tokens + second.tokens
    assert second.run_cost_micro == cost == first.cost_micro + second.cost_micro
    ws.close()


def test_batch_answers_count_no_latency(tmp_path, capsys, sandbox_thread):
    """Issue 13 item 5: Batch API results carry no real-time latency; latency figures leave them out
    and say how many."""
    sandbox_thread.config.job_seconds = 0.5
    ws = tmp_path / "ws"
    setup(ws, sandbox_thread.base_url, capsys)
    assert cli(capsys, ws, "collect", "--tier", "2", "--limit", "6")[0] == 0
    assert cli(capsys, ws, "collect", "--tier", "1", "--limit", "6", "--batch")[0] == 0
    code, out, _ = cli(capsys, ws, "whatif", "--json")
    figures = {f["tier"]: f for f in json.loads(out)["tiers"]}
    assert code == 0 and figures[1]["latency_excluded"] == 6 and figures[2]["latency_excluded"] == 0
    assert figures[2]["latency_p50_ms"] > 0
