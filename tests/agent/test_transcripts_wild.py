"""Issue 29: transcripts as agents run in the wild: user turns anywhere, recorded outcomes, unknown
figures that stay unknown, endings in words, and a task id that never changes silently."""

from __future__ import annotations

import json

import pytest

from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace
from tests.agent.test_episodes import cli

TOOLS = [{"type": "function", "function": {"name": n, "description": n, "parameters": {"type": "object"}}}
         for n in ("get_order", "transfer_to_human_agents")]


def call(cid: str, name: str = "get_order", args: str = '{"id": 7}') -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def chat(task_id: str, opening: str, *, trial: int = 0, handoff: bool = False, **extra) -> dict:
    tool = "transfer_to_human_agents" if handoff else "get_order"
    return {"task_id": task_id, "trial": trial, "category": "airline", "tools": TOOLS, **extra, "messages": [
        {"role": "system", "content": "You are an airline agent."},
        {"role": "user", "content": opening},
        {"role": "assistant", "content": "Sure, what is your order number?"},
        {"role": "user", "content": "It is 7."},
        {"role": "assistant", "content": None, "tool_calls": [call("c1", tool)]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "It has shipped. Anything else?"},
        {"role": "user", "content": "No thanks. ###STOP###"},
    ]}


def setup(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1",
               "--provider", "sandbox")[0] == 0
    return ws


def do_import(capsys, ws, path, *extra):
    tier = ("--tier", "1") if "--tier" not in extra else ()
    code, out, err = cli(capsys, ws, "trajectories", "import", str(path), *tier, "--format", "transcripts",
                         "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def stored_opening(ws, task_id: str) -> str:
    with Workspace.open(ws) as w:
        return TaskRepository(w).get(task_id).messages[1]["content"]


def rows_by_task(capsys, ws):
    return {(r["task_id"], r["trial"]): r for r in json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1])}


def show(capsys, ws, traj_id):
    return json.loads(cli(capsys, ws, "trajectories", "show", str(traj_id), "--json")[1])


def test_user_turns_anywhere_outcomes_and_unknown_figures(tmp_path, capsys):
    ws = setup(tmp_path, capsys)
    path = write(tmp_path / "wild.jsonl", [
        chat("t1", "Where is my order?", outcome={"reward": 1.0}, latency_ms=5400, cost_usd=0.0125,
             usage={"prompt_tokens": 900, "completion_tokens": 60}, end_reason="user_stop", model="gpt-4o"),
        chat("t2", "Where is my bag?", outcome={"reward": 0.5}),
        chat("t3", "I want a person", handoff=True, outcome={"success": False}, end_reason="user_stop"),
        chat("t4", "Help", end_reason="too_many_errors", outcome={"reward": 0}),
    ])
    result = do_import(capsys, ws, path)
    assert result["episodes"] == 4 and result["steps"] == 12 and result["user_turns"] == 8
    assert result["outcomes"] == 4 and result["unknown"] == {"usage": 3, "cost": 3, "latency": 3}
    rows = rows_by_task(capsys, ws)
    # a step is one assistant turn: user turns add none
    assert all(r["steps"] == 3 for r in rows.values())
    one, two = rows[("t1", 0)], rows[("t2", 0)]
    assert one["outcome"] == {"success": True, "reward": 1.0} and two["outcome"] == {"success": False, "reward": 0.5}
    assert one["cost_usd"] == "0.0125" and one["latency_ms"] == 5400 and one["prompt_tokens"] == 900
    # unknown stays unknown: null, never zero
    assert two["cost_usd"] is None and two["latency_ms"] is None and two["prompt_tokens"] is None
    assert one["end_reason"] == "user_stop" and two["end_reason"] == "user_stop"  # the user spoke last
    assert rows[("t3", 0)]["end_reason"] == "handoff"  # a hand-off tool reads as hand-off, not step_limit
    assert rows[("t4", 0)]["end_reason"] == "error" and rows[("t4", 0)]["status"] == "ok"  # a judged trial
    shown = show(capsys, ws, two["id"])
    assert shown["usage"] is None and shown["cost_usd"] is None and shown["latency_ms"] is None
    assert [m["role"] for m in shown["messages"]] == ["system", "user", "assistant", "user", "assistant", "tool",
                                                      "assistant", "user"]
    assert shown["steps_detail"][0]["user_turns"] == [{"role": "user", "content": "It is 7."}]
    text = cli(capsys, ws, "trajectories", "show", str(two["id"]))[1]
    assert "$unknown" in text and "unknown ms" in text and "user: It is 7." in text
    # user turns are inputs of a dataset, never targets
    out_file = tmp_path / "train.jsonl"
    assert cli(capsys, ws, "dataset", "build", "--out", str(out_file), "--tier", "1", "--validation-share", "0")[0] == 0
    example = json.loads(out_file.read_text().splitlines()[0])
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "tool", "assistant", "user"]
    assert all("weight" not in m for m in example["messages"] if m["role"] == "user")


def test_a_task_id_with_another_prompt_never_changes_silently(tmp_path, capsys):
    ws = setup(tmp_path, capsys)
    first = do_import(capsys, ws, write(tmp_path / "a.jsonl", [chat("t1", "Where is my order?")]))
    assert first["tasks_added"] == 1
    # the same task id, another opening: kept by default, said, and the episode keeps its own prompt
    second = do_import(capsys, ws, write(tmp_path / "b.jsonl", [chat("t1", "Hello, my order?")]))
    assert second["tasks_added"] == 0 and second["tasks_different"] == 1 and second["tasks_updated"] == 0
    text = cli(capsys, ws, "trajectories", "import", str(tmp_path / "b.jsonl"), "--tier", "1",
               "--format", "transcripts")[1]
    assert "1 task(s) differ from a line's prompt" in text
    assert stored_opening(ws, "t1") == "Where is my order?"
    rows = json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1])
    openings = sorted(show(capsys, ws, r["id"])["messages"][1]["content"] for r in rows)
    assert openings == ["Hello, my order?", "Where is my order?"]
    # replace: the task takes the file's prompt, and says so
    replaced = do_import(capsys, ws, write(tmp_path / "c.jsonl", [chat("t1", "Hi, order 7?")]), "--on-conflict",
                         "replace")
    assert replaced["tasks_updated"] == 1
    assert stored_opening(ws, "t1") == "Hi, order 7?"
    # new-id: stored under another id; the stored task stays
    renamed = do_import(capsys, ws, write(tmp_path / "d.jsonl", [chat("t1", "Yo, order?")]), "--on-conflict", "new-id")
    assert renamed["tasks_renamed"] == 1
    ids = {r["task_id"] for r in json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1])}
    assert any(i.startswith("t1~") for i in ids)
    assert stored_opening(ws, "t1") == "Hi, order 7?"


def test_trials_of_one_task_are_kept_apart(tmp_path, capsys):
    ws = setup(tmp_path, capsys)
    path = write(tmp_path / "trials.jsonl", [chat("t1", f"opening {k}", trial=k, outcome={"reward": k % 2})
                                             for k in range(4)])
    result = do_import(capsys, ws, path)
    assert result["episodes"] == 4 and result["trials"] == 4
    assert result["tasks_added"] == 1 and result["tasks_different"] == 1  # the openings differ between trials
    rows = rows_by_task(capsys, ws)
    assert sorted(rows) == [("t1", k) for k in range(4)]
    # a re-import updates in place
    do_import(capsys, ws, path)
    assert len(rows_by_task(capsys, ws)) == 4 == len(json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1]))


def test_a_bad_outcome_or_trial_is_refused_with_its_line(tmp_path, capsys):
    ws = setup(tmp_path, capsys)
    for bad, field in (({"outcome": {"reward": "high"}}, "outcome.reward"), ({"trial": -1}, "trial"),
                       ({"outcome": {"grade": 1}}, "outcome"), ({"latency_ms": -5}, "latency_ms")):
        path = write(tmp_path / "bad.jsonl", [chat("t1", "x"), {**chat("t2", "y"), **bad}])
        code, _, err = cli(capsys, ws, "trajectories", "import", str(path), "--tier", "1", "--format", "transcripts")
        assert code == 1 and f"bad.jsonl:2: {field}" in err, err
    assert json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1]) == []


def test_teacher_forced_requests_use_the_teacher_episodes_own_prompt(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    for tier, model in ((1, "gpt-4o"), (2, "gpt-4.1")):
        assert cli(capsys, ws, "tiers", "set", str(tier), "--model", model, "--base-url", sandbox_thread.base_url,
                   "--provider", "sandbox")[0] == 0
    do_import(capsys, ws, write(tmp_path / "teacher.jsonl", [chat("t1", "Where is my order?", model="gpt-4.1")]),
              "--tier", "2")
    # the student's file replaces the task's prompt: the teacher's episode keeps its own
    do_import(capsys, ws, write(tmp_path / "student.jsonl", [chat("t1", "Hello, my order?", model="gpt-4o")]),
              "--on-conflict", "replace")
    assert stored_opening(ws, "t1") == "Hello, my order?"
    code, _, err = cli(capsys, ws, "evaluate", "--student", "1", "--teacher", "2", "--mode", "steps", "--collect",
                       "--all-tasks", "--json")
    assert code == 0, err
    with Workspace.open(ws) as w:
        rows = w.conn.execute("SELECT call FROM episode_steps WHERE episode LIKE 'forced:%' ORDER BY step").fetchall()
    assert len(rows) == 3
    for (blob,) in rows:
        messages = json.loads(blob)["request"]["messages"]
        assert messages[1]["content"] == "Where is my order?"
    # at step 2 the student sees the user's answer to step 1 (an input), not a step of its own
    last = json.loads(rows[1][0])["request"]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]


def test_sides_judged_differently_are_not_compared(tmp_path, capsys):
    ws = tmp_path / "ws"
    for tier, model in ((1, "gpt-4o"), (2, "gpt-4.1")):
        assert cli(capsys, ws, "tiers", "set", str(tier), "--model", model, "--base-url", "http://127.0.0.1:9/v1",
                   "--provider", "sandbox")[0] == 0
    # the teacher's episodes carry the benchmark's reward; the student's nothing: text match only
    do_import(capsys, ws, write(tmp_path / "t.jsonl", [chat(f"t{i}", "Where is my order?", model="gpt-4.1",
                                                            outcome={"reward": i % 2}) for i in range(3)]), "--tier", "2")
    do_import(capsys, ws, write(tmp_path / "s.jsonl", [chat(f"t{i}", "Where is my order?", model="gpt-4o")
                                                       for i in range(3)]))
    code, out, err = cli(capsys, ws, "evaluate", "--student", "1", "--teacher", "2", "--mode", "episodes",
                         "--all-tasks", "--json")
    assert code == 0, err
    episodes = json.loads(out)["episodes"]
    assert episodes["teacher"]["judged_by"] == {"outcome": 3} and episodes["student"]["judged_by"] == {"text_match": 3}
    assert episodes["teacher"]["success_rate"] == pytest.approx(1 / 3) and episodes["student"]["success_rate"] == 1.0
    assert episodes["compared"]["tasks"] == 0 and episodes["compared"]["left_out_different_basis"] == 3
    text = cli(capsys, ws, "evaluate", "--student", "1", "--teacher", "2", "--mode", "episodes", "--all-tasks")[1]
    assert "not comparable" in text and "cost unknown and time unknown per episode" in text and "$0" not in text
