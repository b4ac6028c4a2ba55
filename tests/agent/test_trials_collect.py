"""Issue 29: several episodes per task and tier generation, told apart by trial: `collect --trials N`,
and `evaluate` reports success per trial and pass^k per side."""

from __future__ import annotations

import json

from tests.agent.test_conversations import setup
from tests.agent.test_episodes import cli


def test_collect_trials_and_evaluate_pass_k(tmp_path, capsys, sandbox_thread):
    rows = [{"id": f"w{i}", "messages": [{"role": "user", "content": f"What is the weather in {city}?"}],
             "expected": {"final_answer": "sunny"}} for i, city in enumerate(("Paris",))]
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, rows)
    assert cli(capsys, ws, "tiers", "set", "2", "--model", "gpt-4.1", "--base-url", sandbox_thread.base_url,
               "--provider", "sandbox")[0] == 0
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--trials", "3", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["episodes"] == 3
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", "--trials", "3", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["done"] == 3 and summary["failed"] == 0, err
    listed = json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1])
    assert sorted((r["task_id"], r["trial"]) for r in listed) == [("w0", k) for k in range(3)]
    # collected trials are not paid again; one more trial each is
    sent = sandbox_thread.sandbox.request_count
    assert json.loads(cli(capsys, ws, "collect", "--tier", "1", "--trials", "3", "--json")[1])["skipped"] == 3
    assert sandbox_thread.sandbox.request_count == sent
    summary = json.loads(cli(capsys, ws, "collect", "--tier", "1", "--trials", "4", "--json")[1])
    assert summary["done"] == 4 and summary["skipped"] == 3
    assert cli(capsys, ws, "collect", "--tier", "2", "--trials", "2")[0] == 0
    code, out, err = cli(capsys, ws, "evaluate", "--student", "1", "--mode", "episodes", "--all-tasks", "--json")
    assert code == 0, err
    episodes = json.loads(out)["episodes"]
    student, teacher = episodes["student"], episodes["teacher"]
    assert student["episodes"] == 4 and teacher["episodes"] == 2
    assert set(student["success_by_trial"]) == {"0", "1", "2", "3"} and set(teacher["success_by_trial"]) == {"0", "1"}
    assert list(student["trials"]["pass_k"]) == ["1", "2", "3", "4"] and list(teacher["trials"]["pass_k"]) == ["1", "2"]
    assert student["judged_by"] == {"expected_answer": 4}
    assert episodes["compared"]["tasks"] == 1 and episodes["compared"]["basis"] == {"expected_answer": 1}
    # student trials 0..3 against teacher trials 0, 1: two by number, two against the teacher's first
    pairing = episodes["alignment"]["pairing"]
    assert (pairing["same_trial"], pairing["teacher_first_trial"]) == (2, 2) and episodes["alignment"]["episodes"] == 4
    code, _, err = cli(capsys, ws, "collect", "--tier", "1", "--trials", "2", "--batch")
    assert code == 2 and "--trials" in err
