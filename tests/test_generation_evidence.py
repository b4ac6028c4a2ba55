"""Issue 13, the evidence side: each evaluation names the generations it measured; a fine-tuned
model is evaluated beside the tier's current one before it takes the tier; the old and the new
generation of a student are compared on the same tasks. Against the sandbox over real HTTP,
through the CLI (the same services the GUI uses)."""

from __future__ import annotations

import json
import sqlite3

from cascade_studio.core.tiers import generation_id
from cascade_studio.store import migrations
from cascade_studio.store.evaluations import history
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.test_generations import cli, setup


def test_the_generations_step_names_older_evaluations_by_their_models():
    conn = sqlite3.connect(":memory:")
    step = 16  # the evaluations' generations
    for script in migrations.MIGRATIONS[:step - 1]:
        for statement in migrations._split(script):
            conn.execute(statement)
    conn.execute("INSERT INTO evaluations (created_at, teacher_tier, teacher_model, student_tier, student_model, "
                 "tasks, agreement, metrics) VALUES ('2026-01-01T00:00:00+00:00', 2, 'gpt-4o', 1, 'gpt-4o-mini', 5, "
                 "0.8, '{}')")
    for statement in migrations._split(migrations.MIGRATIONS[step - 1]):
        conn.execute(statement)
    assert conn.execute("SELECT teacher_generation, student_generation FROM evaluations").fetchone() == (
        "legacy:gpt-4o", "legacy:gpt-4o-mini")


def test_history_names_generations_and_the_generations_compare(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    setup(ws, sandbox_thread.base_url, capsys)
    base = ["evaluate", "--student", "1", "--all-tasks", "--limit", "12", "--no-embeddings", "--collect", "--json"]
    code, out, _ = cli(capsys, ws, *base)
    old = json.loads(out)
    assert code == 0
    # one generation only: nothing to compare with, and the message says what to do
    code, _, err = cli(capsys, ws, "evaluate", "--student", "1", "--compare-generations", "--no-embeddings")
    assert code == 1 and "one generation only" in err and "change its model" in err
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4.1-mini")[0] == 0
    code, out, _ = cli(capsys, ws, *base)
    new = json.loads(out)
    assert code == 0

    code, out, _ = cli(capsys, ws, "evaluate", "--history", "--json")
    rows = json.loads(out)
    assert [r["student_generation"] for r in rows] == [old["student"]["generation"], new["student"]["generation"]]
    assert [r["student_model"] for r in rows] == ["gpt-4o-mini", "gpt-4.1-mini"]
    assert {r["teacher_generation"] for r in rows} == {old["teacher"]["generation"]}
    code, out, _ = cli(capsys, ws, "evaluate", "--history")
    assert code == 0 and new["student"]["generation"] in out and "gpt-4.1-mini" in out

    code, out, _ = cli(capsys, ws, "evaluate", "--student", "1", "--compare-generations", "--no-embeddings", "--json")
    comparison = json.loads(out)
    assert code == 0 and comparison["tasks"] == 12
    assert comparison["previous"]["model"] == "gpt-4o-mini" and comparison["current"]["model"] == "gpt-4.1-mini"
    assert comparison["previous"]["generation"] == old["student"]["generation"]
    assert comparison["current"]["generation"] == new["student"]["generation"]
    # the same tasks as the two evaluations: the same figures, and the per-task changes add up
    assert comparison["previous"]["overall"]["agreement"] == old["overall"]["agreement"]
    assert comparison["current"]["overall"]["agreement"] == new["overall"]["agreement"]
    moved = round((new["overall"]["agreement"] - old["overall"]["agreement"]) * 12)
    assert len(comparison["improved"]) - len(comparison["regressed"]) == moved
    code, out, _ = cli(capsys, ws, "evaluate", "--student", "1", "--compare-generations", "--no-embeddings")
    assert code == 0 and "previous generation" in out and "on the same 12 tasks" in out


def test_finetune_use_evaluates_first_and_the_gate_keeps_the_tier(tmp_path, capsys, sandbox_thread):
    sandbox_thread.config.job_seconds = 1.0
    ws = tmp_path / "ws"
    setup(ws, sandbox_thread.base_url, capsys)
    assert cli(capsys, ws, "collect", "--tier", "2", "--limit", "30")[0] == 0
    code, out, _ = cli(capsys, ws, "dataset", "build", "--out", str(tmp_path / "d.jsonl"), "--validation-share", "0.2",
                       "--json")
    built = json.loads(out)
    assert code == 0
    code, out, _ = cli(capsys, ws, "finetune", "start", "--dataset", built["path"], "--base-model", "gpt-4o-mini",
                       "--json")
    job = json.loads(out)
    assert code == 0 and cli(capsys, ws, "finetune", "watch", job["id"])[0] == 0
    code, out, err = cli(capsys, ws, "finetune", "use", job["id"], "--tier", "1", "--evaluate-first",
                         "--min-agreement", "1.01")
    assert code == 3 and "left as it is" in err and "validation tasks of dataset" in out
    with Workspace.open(ws) as w:
        assert TierRepository(w).get(1).model == "gpt-4o-mini"  # not switched
        rows = history(w)
    assert {r["student_model"] for r in rows} == {"gpt-4o-mini", rows[-2]["student_model"]}
    assert rows[-2]["student_model"].startswith("ft:gpt-4o-mini")  # the new model first, then the current one
    code, out, _ = cli(capsys, ws, "finetune", "use", job["id"], "--tier", "1", "--evaluate-first")
    assert code == 0 and "now uses ft:gpt-4o-mini" in out
    assert "before: gpt-4o-mini: agreement" in out and "now: ft:gpt-4o-mini" in out
    with Workspace.open(ws) as w:
        tier = TierRepository(w).get(1)
        assert history(w)[-2]["student_generation"] == generation_id(tier)  # what was measured is what is used
