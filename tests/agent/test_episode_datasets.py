"""Issue 16: datasets from episodes (one multi-turn example each) that the validator accepts."""

from __future__ import annotations

import json

from cascade_studio.core.datasets import validate_jsonl
from cascade_studio.core.episode import tool_turn_problems
from tests.agent.test_episodes import cli, copy_tools, setup

CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Dakar", "Hanoi", "Perth", "Riga", "Sofia",
          "Kyiv", "Bern"]


def collect(tmp_path, capsys, sandbox_thread):
    folder = copy_tools(tmp_path)
    rows = [(f"w{i}", f"What is the weather in {city}?") for i, city in enumerate(CITIES)]
    ws = setup(tmp_path, capsys, sandbox_thread.base_url, ["--python", str(folder / "desk_tools.py")], rows=rows)
    code, out, _ = cli(capsys, ws, "collect", "--tier", "1", "--json")
    assert code == 0 and json.loads(out)["done"] == len(CITIES)
    return ws


def test_dataset_from_episodes_is_multi_turn_and_valid(tmp_path, capsys, sandbox_thread):
    ws = collect(tmp_path, capsys, sandbox_thread)
    out = tmp_path / "train.jsonl"
    code, text, err = cli(capsys, ws, "dataset", "build", "--out", str(out), "--tier", "1", "--validation-share", "0",
                          "--json")
    assert code == 0, err
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(examples) == len(CITIES)
    ex = examples[0]
    roles = [m["role"] for m in ex["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    call = ex["messages"][1]["tool_calls"][0]
    assert ex["messages"][2]["tool_call_id"] == call["id"] and call["function"]["name"] == "get_weather"
    assert json.loads(ex["messages"][2]["content"])["forecast"] == "sunny"  # the real tool result
    assert {t["function"]["name"] for t in ex["tools"]} >= {"get_weather", "add_note"}
    report = validate_jsonl(out.read_text(), lambda s: len(s.split()))
    assert report.ok, report.errors
    code, _, _ = cli(capsys, ws, "dataset", "validate", str(out))
    assert code == 0
    # teacher logprobs: one list per assistant turn
    lp_files = [p for p in tmp_path.iterdir() if "logprobs" in p.name]
    assert lp_files, list(tmp_path.iterdir())
    first = json.loads(lp_files[0].read_text().splitlines()[0])
    assert len(first["turns"]) == 2 and all(isinstance(t, list) and t for t in first["turns"])


def test_last_turn_only_and_sharegpt(tmp_path, capsys, sandbox_thread):
    ws = collect(tmp_path, capsys, sandbox_thread)
    out = tmp_path / "last.jsonl"
    assert cli(capsys, ws, "dataset", "build", "--out", str(out), "--tier", "1", "--last-turn-only",
               "--validation-share", "0")[0] == 0
    ex = json.loads(out.read_text().splitlines()[0])
    weights = [m.get("weight") for m in ex["messages"] if m["role"] == "assistant"]
    assert weights == [0, None]
    assert validate_jsonl(out.read_text(), lambda s: len(s.split())).ok
    share = tmp_path / "share.jsonl"
    assert cli(capsys, ws, "dataset", "build", "--out", str(share), "--tier", "1", "--format", "sharegpt",
               "--reasoning", "reasoning", "--validation-share", "0")[0] == 0
    conv = json.loads(share.read_text().splitlines()[0])["conversations"]
    assert [c["from"] for c in conv] == ["human", "function_call", "observation", "gpt"]
    assert conv[1]["value"].startswith("<think>")  # the reasoning kept when asked


def test_the_validator_checks_tool_turns():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    good = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"}, {"role": "assistant", "content": "a"}]
    assert tool_turn_problems(good) == []
    assert tool_turn_problems(good[:2]) == []  # a single decision: the call is the target
    unanswered = [good[0], good[1], good[3]]
    assert [k for k, _ in tool_turn_problems(unanswered)] == ["tool_call_unanswered"]
    stray = [good[0], good[1], {"role": "tool", "tool_call_id": "zz", "content": "r"}, good[3]]
    kinds = [k for k, _ in tool_turn_problems(stray)]
    assert "tool_message_without_call" in kinds and "tool_call_unanswered" in kinds
    assert [k for k, _ in tool_turn_problems([good[0], {"role": "user", "content": "x", "weight": 0}])] == \
        ["invalid_weight"]
