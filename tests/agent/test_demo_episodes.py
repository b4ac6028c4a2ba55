"""Issue 16: the demo workspace's travel desk (the app's own MCP server over real stdio) runs episodes."""

from __future__ import annotations

import json

from cascade_studio.services.demo import prepare_demo
from tests.agent.test_episodes import cli


def test_demo_travel_desk_episodes(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "demo"
    summary = prepare_demo(ws, sandbox_thread.base_url)
    assert "16 travel-desk agent tasks" in summary
    code, out, _ = cli(capsys, ws, "env", "list", "--json")
    (env,) = json.loads(out)
    assert env["name"] == "travel-desk" and env["tasks"] == 16
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
