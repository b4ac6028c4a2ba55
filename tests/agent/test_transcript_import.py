"""Issue 16: agent traces operators already have (OpenAI chat transcripts) import as episodes."""

from __future__ import annotations

import json

from tests.agent.test_episodes import cli

CALL = {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": "{\"id\": 7}"}}
TOOLS = [{"type": "function", "function": {"name": "get_order", "description": "Get an order",
                                           "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}}}}]


def conversation(n: int) -> dict:
    return {"id": f"conv-{n}", "category": "support", "model": "gpt-4o", "tools": TOOLS, "messages": [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": f"Where is my order {n}?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL],
         "usage": {"prompt_tokens": 100, "completion_tokens": 20}},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"status\": \"shipped\"}"},
        {"role": "assistant", "content": "Your order has shipped.", "usage": {"prompt_tokens": 140, "completion_tokens": 8}},
    ]}


def test_transcripts_become_episodes_and_a_dataset(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1",
               "--provider", "sandbox")[0] == 0
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(json.dumps(conversation(n)) for n in range(12)) + "\n")
    code, out, err = cli(capsys, ws, "trajectories", "import", str(path), "--tier", "1", "--format", "transcripts",
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["episodes"] == 12 and result["steps"] == 24 and result["tasks_added"] == 12
    code, out, _ = cli(capsys, ws, "trajectories", "list", "--json")
    rows = json.loads(out)
    assert len(rows) == 12 and all(r["steps"] == 2 and r["end_reason"] == "answered" for r in rows)
    shown = json.loads(cli(capsys, ws, "trajectories", "show", str(rows[0]["id"]), "--json")[1])
    assert shown["steps_detail"][0]["tool_results"][0]["content"] == "{\"status\": \"shipped\"}"
    assert shown["prompt_tokens"] == 240 and shown["final_answer"] == "Your order has shipped."
    # a re-import updates, never duplicates
    assert cli(capsys, ws, "trajectories", "import", str(path), "--tier", "1", "--format", "transcripts")[0] == 0
    assert len(json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1])) == 12
    out_file = tmp_path / "train.jsonl"
    assert cli(capsys, ws, "dataset", "build", "--out", str(out_file), "--tier", "1", "--validation-share", "0")[0] == 0
    ex = json.loads(out_file.read_text().splitlines()[0])
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant", "tool", "assistant"]


def test_a_broken_transcript_is_refused_with_its_line(tmp_path, capsys):
    ws = tmp_path / "ws"
    cli(capsys, ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1",
        "--provider", "sandbox")
    bad = conversation(1)
    bad["messages"][3]["tool_call_id"] = "nope"
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(conversation(0)) + "\n" + json.dumps(bad) + "\n")
    code, out, err = cli(capsys, ws, "trajectories", "import", str(path), "--tier", "1", "--format", "transcripts")
    assert code == 1 and "traces.jsonl:2" in err and "tool_message_without_call" in err and "Nothing was imported" in err
    assert json.loads(cli(capsys, ws, "trajectories", "list", "--json")[1]) == []
