"""Issue 16: multi-step episodes whose tools really run (MCP), against the sandbox over real HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade_studio.cli import main
from cascade_studio.store.workspace import Workspace
from tests.ports import free_port, wait_listening

HERE = Path(__file__).resolve().parent


def cli(capsys, ws, *args) -> tuple[int, str, str]:
    code = main(["-w", str(ws), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def tasks_file(folder: Path, rows: list[tuple[str, str]], env: str = "desk", max_steps: int = 4) -> Path:
    path = folder / "tasks.jsonl"
    path.write_text("\n".join(json.dumps({
        "id": tid, "category": "desk", "messages": [{"role": "user", "content": prompt}], "tools": [],
        "environment": env, "max_steps": max_steps}) for tid, prompt in rows) + "\n")
    return path


def copy_tools(tmp_path: Path) -> Path:
    folder = tmp_path / "env"
    folder.mkdir()
    for name in ("desk_tools.py", "desk_server.py"):
        shutil.copy(HERE / name, folder / name)
    return folder


def setup(tmp_path, capsys, url, env_args, rows=None, max_steps=4):
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", url, "--provider", "sandbox")[0] == 0
    code, out, err = cli(capsys, ws, "env", "add", "desk", *env_args)
    assert code == 0, err
    assert "get_weather" in out
    rows = rows or [("w1", "What is the weather in Paris?"), ("w2", "Get the weather for Rome")]
    assert cli(capsys, ws, "tasks", "import", str(tasks_file(tmp_path, rows, max_steps=max_steps)))[0] == 0
    return ws


def episode(ws, capsys, task_id):
    code, out, _ = cli(capsys, ws, "trajectories", "list", "--json")
    row = next(r for r in json.loads(out) if r["task_id"] == task_id)
    code, out, _ = cli(capsys, ws, "trajectories", "show", str(row["id"]), "--json")
    assert code == 0
    return row, json.loads(out)


def check_weather_episode(ws, capsys, task_id, city):
    row, shown = episode(ws, capsys, task_id)
    assert row["steps"] == 2 and row["end_reason"] == "answered" and row["status"] == "ok"
    first, last = shown["steps_detail"]
    (result,) = first["tool_results"]
    # the stored result is exactly what the server returned
    assert json.loads(result["content"]) == {"city": city, "forecast": "sunny", "celsius": 21}
    assert result["name"] == "get_weather" and result["arguments"] == {"city": city} and not result["is_error"]
    assert last["tool_calls"] == [] and shown["final_answer"]
    # the conversation the model saw: user, assistant tool call, tool result, answer
    roles = [m["role"] for m in shown["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert shown["messages"][2]["tool_call_id"] == shown["messages"][1]["tool_calls"][0]["id"]
    return row, shown


def test_python_module_environment_runs_episodes(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--python", str(folder / "desk_tools.py")])
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["done"] == 2 and summary["failed"] == 0
    row, shown = check_weather_episode(ws, capsys, "w1", "Paris")
    check_weather_episode(ws, capsys, "w2", "Rome")
    # totals: two model calls, their tokens and cost add up
    assert shown["prompt_tokens"] == sum(s["usage"]["prompt_tokens"] for s in shown["steps_detail"])
    assert sandbox_thread.sandbox.request_count == 4
    # collected: a second run sends nothing
    assert cli(capsys, ws, "collect", "--tier", "1", "--json")[0] == 0
    assert sandbox_thread.sandbox.request_count == 4


def test_stdio_mcp_server_and_state_is_per_episode(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    rows = [("n1", "Add a note to the notebook saying buy milk"), ("n2", "Add a note to the notebook saying call Ana")]
    ws = setup(tmp_path, capsys, sandbox_thread.base_url,
               ["--stdio", f"{sys.executable} {folder / 'desk_server.py'}"], rows=rows)
    assert cli(capsys, ws, "collect", "--tier", "1")[0] == 0
    for task_id in ("n1", "n2"):
        row, shown = episode(ws, capsys, task_id)
        (result,) = shown["steps_detail"][0]["tool_results"]
        assert result["name"] == "add_note"
        assert result["content"] == "1 note(s)"  # a fresh session: the other episode's note is not there


def test_streamable_http_mcp_server(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(folder / "desk_server.py"), "--http", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--url", f"http://127.0.0.1:{port}/mcp"])
        code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
        assert code == 0 and json.loads(out)["done"] == 2
        check_weather_episode(ws, capsys, "w1", "Paris")
    finally:
        server.terminate()
        server.wait(10)


def test_a_hanging_tool_times_out_and_the_model_reads_why(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    (folder / "hang").touch()
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--python", str(folder / "desk_tools.py"), "--timeout", "1"],
               rows=[("w1", "What is the weather in Paris?")])
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0
    row, shown = episode(ws, capsys, "w1")
    result = shown["steps_detail"][0]["tool_results"][0]
    assert "timed out" in result["error"]
    assert "timed out" in shown["messages"][2]["content"]  # the model saw it


def test_a_crashing_server_ends_the_episode_with_an_error_in_words(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--stdio", f"{sys.executable} {folder / 'desk_server.py'}"],
               rows=[("w1", "What is the weather in Paris?")])
    (folder / "crash").touch()
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", "--json")
    summary = json.loads(out)
    assert code != 0 and summary["failed"] == 1
    row, shown = episode(ws, capsys, "w1")
    assert row["status"] == "error" and row["end_reason"] == "error"
    assert "stopped while calling get_weather" in shown["error"] and "desk" in shown["error"]
    # fixed: the next run goes on from the stored step (its tool call again, not the paid model call)
    (folder / "crash").unlink()
    sent = sandbox_thread.sandbox.request_count
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0 and json.loads(out)["done"] == 1
    assert sandbox_thread.sandbox.request_count == sent + 1  # only the answer step
    row, shown = episode(ws, capsys, "w1")
    assert row["status"] == "ok" and row["steps"] == 2


def test_an_environment_that_cannot_start_is_named_with_the_fix(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    code, out, err = cli(capsys, ws, "env", "add", "ghost", "--stdio", "no-such-command-xyz --flag")
    assert code == 1 and "no-such-command-xyz" in err and "was not found" in err and "env remove ghost" in err
    code, out, err = cli(capsys, ws, "env", "add", "bad name!", "--stdio", "x", "--no-check")
    assert code == 1 and "not a valid environment name" in err
    code, out, err = cli(capsys, ws, "env", "add", "web", "--url", "http://10.1.2.3/mcp", "--header", "Authorization=Bearer x",
                         "--no-check")
    assert code == 1 and "clear text" in err


def test_kill_9_mid_episode_resumes_without_paying_a_finished_step(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--python", str(folder / "desk_tools.py"), "--timeout", "120"],
               rows=[("w1", "What is the weather in Paris?")])
    (folder / "hang").touch()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "cascade_studio", "-w", str(ws), "collect", "--tier", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and sandbox_thread.sandbox.request_count < 1:
            time.sleep(0.05)
        assert sandbox_thread.sandbox.request_count == 1  # the first step was paid; its tool now hangs
        with Workspace.open(ws) as w:  # the paid step is stored before its tool runs
            deadline = time.time() + 10
            while time.time() < deadline and not w.conn.execute("SELECT count(*) FROM episode_steps").fetchone()[0]:
                time.sleep(0.05)
            assert w.conn.execute("SELECT count(*) FROM episode_steps").fetchone()[0] == 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    (folder / "hang").unlink()
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0 and json.loads(out)["done"] == 1
    assert sandbox_thread.sandbox.request_count == 2  # step 1 was not paid again
    check_weather_episode(ws, capsys, "w1", "Paris")


@pytest.mark.parametrize("flag", ["--batch"])
def test_batch_is_not_for_episodes(tmp_path, capsys, sandbox_thread, flag):
    folder = copy_tools(tmp_path)
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--python", str(folder / "desk_tools.py")])
    code, out, err = cli(capsys, ws, "collect", "--tier", "1", flag)
    assert code != 0 and "episode" in err.lower()


def test_environment_secrets_live_in_the_keyring_not_the_workspace(tmp_path, capsys):
    import keyring

    folder = copy_tools(tmp_path)
    ws = tmp_path / "ws"
    code, _, err = cli(capsys, ws, "env", "add", "desk", "--python", str(folder / "desk_tools.py"),
                       "--env", "DESK_TOKEN=s3cret-value", "--no-check")
    assert code == 0, err
    assert keyring.get_password("cascade-studio", "env:desk:env:DESK_TOKEN") == "s3cret-value"
    with Workspace.open(ws) as w:
        dump = "\n".join(w.conn.iterdump())
    assert "s3cret-value" not in dump and "DESK_TOKEN" in dump  # the name is kept, never the value
    code, out, _ = cli(capsys, ws, "env", "list", "--json")
    assert "s3cret-value" not in out
    assert cli(capsys, ws, "env", "remove", "desk")[0] == 0
    assert keyring.get_password("cascade-studio", "env:desk:env:DESK_TOKEN") is None


def test_run_totals_count_what_episodes_paid(tmp_path, capsys, sandbox_thread):
    """Honest totals: a crashed episode's paid steps count in the run's total, as in this session's."""
    folder = copy_tools(tmp_path)
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--stdio", f"{sys.executable} {folder / 'desk_server.py'}"],
               rows=[("w1", "What is the weather in Paris?")])
    (folder / "crash").touch()
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    summary = json.loads(out)
    assert summary["failed"] == 1 and summary["tokens"] > 0
    assert summary["run_tokens"] == summary["tokens"] and summary["run_cost_usd"] == summary["cost_usd"]


def test_the_packaged_app_runs_python_environments_itself(monkeypatch):
    from cascade_studio.services.agent.environments import python_command

    assert python_command(["-m", "m", "x"]) == (sys.executable, ["-m", "m", "x"])
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert python_command(["-m", "m", "x"]) == (sys.executable, ["--run-module", "m", "x"])


def test_a_command_that_is_not_an_mcp_server_fails_fast_in_words(tmp_path, capsys):
    ws = tmp_path / "ws"
    junk = f"{sys.executable} -c \"import time; print('Starting up...', flush=True); time.sleep(60)\""
    code, _, err = cli(capsys, ws, "env", "add", "junk", "--stdio", junk)
    # said as soon as it printed (not "did not answer within 30 s"), with what it printed
    assert code == 1 and "does not speak MCP" in err and "'Starting up...'" in err
