"""Issue 29: conversational tasks: the agent loop alternates agent <-> tools <-> user (scripted turns or
a user simulator, the sandbox playing it) until the user stops, a hand-off or the step limit; user
turns are inputs, never steps; the user's tokens are kept apart; a kill -9 mid-conversation resumes
without paying a turn twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cascade_studio.store.workspace import Workspace
from tests.agent.test_episodes import cli, copy_tools, episode


def setup(tmp_path, capsys, url, rows: list[dict]) -> Path:
    folder = copy_tools(tmp_path)
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", url, "--provider", "sandbox")[0] == 0
    code, _, err = cli(capsys, ws, "env", "add", "desk", "--python", str(folder / "desk_tools.py"), "--timeout", "120")
    assert code == 0, err
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps({"category": "desk", "tools": [], "environment": "desk", "max_steps": 8, **r})
                              for r in rows) + "\n")
    code, _, err = cli(capsys, ws, "tasks", "import", str(path))
    assert code == 0, err
    return ws


def opening(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_scripted_turns_and_a_simulated_user_until_it_stops(tmp_path, capsys, sandbox_thread):
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, [
        {"id": "scripted", "messages": opening("What is the weather in Paris?"),
         "user": {"turns": ["What is the weather in Rome?"]}},
        {"id": "simulated", "messages": opening("What is the weather in Paris?"),
         "user": {"instruction": "What is the weather in Rome?", "stop": "###DONE###"}},
    ])
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0 and json.loads(out)["done"] == 2, err
    # 4 agent calls each; the simulated user spoke twice (Rome, then its stop marker), the script costs nothing
    assert sandbox_thread.sandbox.request_count == 4 + 4 + 2
    for task_id in ("scripted", "simulated"):
        row, shown = episode(ws, capsys, task_id)
        assert row["end_reason"] == "user_stop" and row["steps"] == 4  # user turns add no step
        roles = [m["role"] for m in shown["messages"]]
        assert roles[:7] == ["user", "assistant", "tool", "assistant", "user", "assistant", "tool"]
        assert shown["messages"][4]["content"] == "What is the weather in Rome?"
        results = [r["arguments"]["city"] for s in shown["steps_detail"] for r in s["tool_results"]]
        assert results == ["Paris", "Rome"]
    row, shown = episode(ws, capsys, "simulated")
    assert "###DONE###" in shown["messages"][-1]["content"]
    # the user's tokens and cost are its own, not the agent's
    assert shown["user"]["prompt_tokens"] > 0 and shown["user"]["cost_micro"] > 0
    assert shown["prompt_tokens"] == sum(s["usage"]["prompt_tokens"] for s in shown["steps_detail"])
    assert all("_usage" not in m for m in shown["messages"])
    assert episode(ws, capsys, "scripted")[1].get("user") is None


def test_a_hand_off_and_the_step_limit_end_the_conversation(tmp_path, capsys, sandbox_thread):
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, [
        {"id": "handoff", "messages": opening("Please transfer me to a human agent."),
         "user": {"turns": ["Thanks."]}},
        {"id": "limit", "messages": opening("What is the weather in Paris?"), "max_steps": 3,
         "user": {"instruction": "What is the weather in Rome?\nWhat is the weather in Oslo?"}},
        {"id": "limit2", "messages": opening("What is the weather in Paris?"), "max_steps": 2,
         "user": {"instruction": "What is the weather in Rome?"}},
    ])
    assert cli(capsys, ws, "collect", "--tier", "1")[0] == 0
    row, shown = episode(ws, capsys, "handoff")
    assert row["end_reason"] == "handoff" and row["steps"] == 1
    assert shown["steps_detail"][0]["tool_results"][0]["name"] == "transfer_to_human_agents"
    row, _ = episode(ws, capsys, "limit")
    assert row["end_reason"] == "step_limit" and row["steps"] == 3
    # at the limit after the agent's answer, the user is not asked (a turn no step could follow)
    row, shown = episode(ws, capsys, "limit2")
    assert row["end_reason"] == "step_limit" and shown["user_turns"] == 0 and shown.get("user") is None


def test_kill_9_mid_conversation_resumes_without_paying_a_turn_twice(tmp_path, capsys, sandbox_thread):
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, [
        {"id": "c1", "messages": opening("Add a note to the notebook saying buy milk"),
         "user": {"instruction": "What is the weather in Rome?"}}])
    folder = tmp_path / "env"
    (folder / "hang").touch()  # the weather tool hangs: the run is killed while it runs, at step 3
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "cascade_studio", "-w", str(ws), "collect", "--tier", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and sandbox_thread.sandbox.request_count < 4:
            time.sleep(0.05)
        assert sandbox_thread.sandbox.request_count == 4  # 3 agent steps and the user's one turn, all paid
        with Workspace.open(ws) as w:
            deadline = time.time() + 10
            while time.time() < deadline and w.conn.execute("SELECT count(*) FROM episode_steps").fetchone()[0] < 3:
                time.sleep(0.05)
            assert w.conn.execute("SELECT count(*) FROM episode_steps").fetchone()[0] == 3
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    (folder / "hang").unlink()
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0 and json.loads(out)["done"] == 1, err
    # only the answer after the weather and the user's stop: no agent step, no user turn paid twice
    assert sandbox_thread.sandbox.request_count == 6
    row, shown = episode(ws, capsys, "c1")
    assert row["end_reason"] == "user_stop" and row["steps"] == 4
    users = [m["content"] for m in shown["messages"] if m["role"] == "user"]
    assert users[:2] == ["Add a note to the notebook saying buy milk", "What is the weather in Rome?"]
    assert len(users) == 3 and "###STOP###" in users[2]


def test_a_task_user_is_checked_on_import(tmp_path, capsys):
    ws = tmp_path / "ws"
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "x", "category": "c", "messages": opening("hi"), "tools": [],
                                "environment": "desk", "user": {"turns": ["a"], "instruction": "b"}}) + "\n")
    code, _, err = cli(capsys, ws, "tasks", "import", str(path))
    assert code == 1 and "user" in err and "either turns" in err


def test_the_loop_and_the_run_form_no_import_circle():
    import ast

    root = Path(__file__).resolve().parents[2] / "cascade_studio" / "services"
    for name in ("agent/episodes.py", "agent/user.py", "model_calls.py"):
        tree = ast.parse((root / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "cascade_studio.services.collector" not in imported, name
