"""Together's file rules and the conversion of OpenAI-format examples (pure)."""

from __future__ import annotations

import json

from cascade_studio.core.together_format import (
    TogetherRun,
    check_lines,
    converted_lines,
    limit_problems,
    to_together,
)


def lines(*rows):
    return [json.dumps(r).encode() for r in rows]


def test_openai_example_converted_and_together_example_unchanged():
    openai = {"messages": [{"role": "developer", "content": "sys"}, {"role": "user", "content": "q", "name": "u"},
                           {"role": "assistant", "content": None, "refusal": None,
                            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                           {"role": "tool", "tool_call_id": "c", "content": "42"},
                           {"role": "assistant", "content": "done", "weight": 1}],
              "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": False}
    out = to_together(openai)
    assert set(out) == {"messages", "tools"}
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert out["messages"][2] == {"role": "assistant", "content": "", "tool_calls": openai["messages"][2]["tool_calls"]}
    assert "name" not in out["messages"][1]
    assert to_together(out) == out
    report = check_lines(lines(out))
    assert report.ok and report.format == "conversation" and report.uses_tools
    content, changed = converted_lines(lines(openai, out))
    assert changed == 1 and content.count(b"\n") == 2
    pref = {"input": {"messages": [{"role": "user", "content": "q"}], "parallel_tool_calls": True},
            "preferred_output": [{"role": "assistant", "content": "a"}],
            "non_preferred_output": [{"role": "assistant", "content": None}]}
    converted = to_together(pref)
    assert converted["input"] == {"messages": [{"role": "user", "content": "q"}]}
    assert converted["non_preferred_output"] == [{"role": "assistant", "content": ""}]
    assert check_lines(lines(converted)).format == "preference"


def test_rules():
    def first(*rows):
        report = check_lines(lines(*rows))
        return report.errors[0][1] if report.errors else None

    ok = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert first(ok) is None
    assert "several formats" in first({**ok, "text": "t"})
    assert "does not take: extra" in first({**ok, "extra": 1})
    assert "in a row" in first({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]})
    assert "start with a system or user" in first({"messages": [{"role": "assistant", "content": "a"}]})
    assert "role 'function'" in first({"messages": [{"role": "function", "content": "a"}]})
    assert "weight must be 0 or 1" in first({"messages": [{"role": "user", "content": "q", "weight": 2}]})
    assert "one format per file" in first(ok, {"text": "t"})
    assert "exactly one message" in first({"input": {"messages": [{"role": "user", "content": "q"}]},
                                           "preferred_output": [], "non_preferred_output": []})
    assert "assistant message" in first({"input": {"messages": [{"role": "user", "content": "q"}]},
                                         "preferred_output": [{"role": "user", "content": "x"}],
                                         "non_preferred_output": [{"role": "assistant", "content": "y"}]})
    assert "no examples" in first()
    assert check_lines([b"{not json"]).errors[0] == (1, "not a JSON object")
    assert "4.9 GB" in check_lines(lines(ok), size=6 * 2**30).errors[0][1]


def test_limits():
    limits = {"model_name": "m", "max_num_epochs": 10, "max_num_evals": 5, "max_learning_rate": 1e-3,
              "min_learning_rate": 1e-6, "supports_tools": False, "supports_vision": False,
              "lora_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8, "max_rank": 64}}
    assert limit_problems(limits, TogetherRun()) == []
    problems = limit_problems(limits, TogetherRun(n_epochs=11, learning_rate=1e-2, batch_size=20, lora_rank=128,
                                                  method="dpo"))
    assert len(problems) == 4 and any("batch size 20 is above m's maximum 16" in p for p in problems)
    assert "no full fine-tuning" in limit_problems(limits, TogetherRun(training_type="full"))[0]
    tools = check_lines(lines({"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]}))
    assert "not fine-tuned with tools" in limit_problems(limits, TogetherRun(), tools)[0]
    assert "--method dpo trains on preference" in limit_problems({**limits, "supports_tools": True},
                                                                 TogetherRun(method="dpo"), tools)[0]
    assert limit_problems({"model_name": "m"}, TogetherRun(n_epochs=99))[0].startswith("m offers no LoRA")
