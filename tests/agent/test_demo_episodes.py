"""Issue 16: the demo workspace's travel desk (the app's own MCP server over real stdio) runs episodes."""

from __future__ import annotations

import json

from cascade_studio.services.demo import prepare_demo
from tests.agent.test_episodes import cli


def test_demo_travel_desk_episodes(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "demo"
    summary = prepare_demo(ws, sandbox_thread.base_url)
    assert "18 travel-desk agent tasks" in summary
    code, out, _ = cli(capsys, ws, "env", "list", "--json")
    (env,) = json.loads(out)
    assert env["name"] == "travel-desk" and env["tasks"] == 18
    code, out, err = cli(capsys, ws, "collect", "--tier", "3", "--category", "travel-flights", "--json")
    result = json.loads(out)
    assert code == 0 and result["done"] >= 3 and result["failed"] == 0, err
    code, out, _ = cli(capsys, ws, "trajectories", "list", "--json")
    rows = json.loads(out)
    assert all(r["end_reason"] for r in rows) and max(r["steps"] for r in rows) >= 2
    code, out, _ = cli(capsys, ws, "trajectories", "show", str(rows[0]["id"]), "--json")
    shown = json.loads(out)
    first = shown["steps_detail"][0]["tool_results"][0]
    assert first["name"] in ("search_flights", "book_flight", "get_booking", "cancel_booking") and first["content"]
    assert "check_state" not in {t["function"]["name"] for t in shown["request"]["tools"]}  # hidden from the model


def test_demo_conversations_with_a_simulated_user(tmp_path, capsys, sandbox_thread):
    """Issue 29: the demo has conversational tasks; the sandbox plays their user."""
    ws = tmp_path / "demo"
    prepare_demo(ws, sandbox_thread.base_url)
    code, out, err = cli(capsys, ws, "collect", "--tier", "3", "--category", "travel-chat", "--json")
    assert code == 0 and json.loads(out)["done"] == 2, err
    rows = {r["task_id"]: r for r in json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1])}
    booked = json.loads(cli(capsys, ws, "trajectories", "show", str(rows["travel-chat-001"]["id"]), "--json")[1])
    assert booked["end_reason"] == "user_stop" and booked["check_passed"] is True
    users = [m["content"] for m in booked["messages"] if m["role"] == "user"]
    assert users[1] == "Book flight FL-LISPAR-250612-D for Ana Silva." and "###STOP###" in users[-1]
    assert "BK-1001" in booked["final_answer"] and booked["user"]["prompt_tokens"] > 0
    talked = json.loads(cli(capsys, ws, "trajectories", "show", str(rows["travel-chat-002"]["id"]), "--json")[1])
    assert talked["end_reason"] == "user_stop" and talked["check_passed"] is True and talked["user_turns"] == 3
