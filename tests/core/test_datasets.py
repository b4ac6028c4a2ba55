"""Dataset builder and validator: one crafted file per error type, and any dataset the builder
writes passes the validator (hypothesis)."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_studio.core.datasets import (
    SourceTrajectory,
    build_examples,
    default_epochs,
    stratified_split,
    to_sharegpt,
    validate_jsonl,
)


def count(text: str) -> int:
    return len(text.split())


GOOD = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                     {"role": "assistant", "content": "a"}]}


def lines(*rows, pad_to=10):
    rows = list(rows)
    rows += [GOOD] * max(0, pad_to - len(rows))
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows)


@pytest.mark.parametrize("row, kind", [
    ("[1, 2]", "data_type"),
    ({"nothing": 1}, "missing_messages_list"),
    ({"messages": [{"content": "x"}, {"role": "assistant", "content": "a"}]}, "message_missing_key"),
    ({"messages": [{"role": "user", "content": "x", "weird": 1}, {"role": "assistant", "content": "a"}]},
     "message_unrecognized_key"),
    ({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "a"}]}, "unrecognized_role"),
    ({"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": "x"}]}, "example_missing_assistant_message"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]},
     "tool_call_arguments_not_json"),
    ("{broken", "invalid_json"),
    ({**GOOD, "extra": 1}, "example_unrecognized_key"),
])
def test_each_error_type_is_reported_with_its_line(row, kind):
    report = validate_jsonl(lines(GOOD, row), count)
    assert not report.ok
    assert {"line": 2, "kind": kind} == {k: v for k, v in report.errors[0].items() if k != "detail"}


def test_warnings_counts_epochs_and_cost():
    no_system = {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a b c"}]}
    report = validate_jsonl(lines(no_system), count, model="gpt-4o-mini", training_price_per_m=3.0)
    assert report.ok and report.examples == 10
    assert report.warnings[0] == {"kind": "missing_system_message", "examples": 1}
    assert report.n_epochs == 10  # 10 examples x 3 < 100 -> 100 // 10
    # per example: 3 to prime the reply; per message 3 + its role (1 word here) + its content
    assert report.billed_tokens == sum([3 + 5 + 7] + [3 + 5 + 5 + 5] * 9) * 10
    assert report.estimated_cost_usd == pytest.approx(report.billed_tokens * 3 / 1e6)
    few = validate_jsonl(json.dumps(GOOD), count)
    assert few.errors[-1]["kind"] == "too_few_examples"
    assert default_epochs(100) == 3 and default_epochs(20_000) == 1 and default_epochs(5) == 20
    # the cookbook floors: 12 examples -> 100 // 12 = 8 (not ceil -> 9); 3 -> 33 capped at 25
    assert default_epochs(12) == 8 and default_epochs(3) == 25 and default_epochs(9_000) == 2


def test_token_counts_follow_openais_recipe():
    """The cookbook's num_tokens_from_messages, applied literally with the real o200k encoding."""
    from cascade_studio.services.tokenizer import token_counter

    count_tokens = token_counter("gpt-4o-mini")

    def recipe(messages, tokens_per_message=3, tokens_per_name=1):
        n = 0
        for message in messages:
            n += tokens_per_message
            for key, value in message.items():
                n += count_tokens(value)
                if key == "name":
                    n += tokens_per_name
        return n + 3

    examples = [
        [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "What's the weather in Paris, in °C?"},
         {"role": "assistant", "content": "It is 18 °C and sunny in Paris."}],
        [{"role": "user", "name": "alice", "content": "Résumé: 3 bullet points, please."},
         {"role": "assistant", "content": "- one\n- two\n- three"}],
    ]
    report = validate_jsonl("\n".join(json.dumps({"messages": m}) for m in examples * 5), count_tokens)
    assert report.ok
    expected = sorted(recipe(m) for m in examples)
    assert [report.tokens_per_example["min"], report.tokens_per_example["max"]] == expected
    # by hand with o200k: 3 + (3 + 1 + 6) + (3 + 1 + 10) + (3 + 1 + 11)
    assert recipe(examples[0]) == 42


@pytest.mark.parametrize("model, limit", [
    ("gpt-4o-mini-2024-07-18", 65_536), ("gpt-4o-2024-08-06", 65_536), ("gpt-4.1-nano-2025-04-14", 65_536),
    ("ft:gpt-4o-mini-2024-07-18:acme:student:abc123", 65_536), ("ft:gpt-4.1-nano:acme::x", 65_536),
    ("gpt-3.5-turbo-0125", 16_385), ("some-local-model", 16_385),
])
def test_snapshots_and_fine_tunes_resolve_to_their_base(model, limit):
    from cascade_studio.core.datasets import base_model_id, token_limit, training_price

    assert token_limit(model) == limit
    prices = {"gpt-4o-mini": 3.0, "gpt-4o": 25.0, "gpt-4.1-nano": 1.5, "gpt-3.5-turbo": 8.0}
    if limit == 65_536:
        assert training_price(prices, model) == prices[base_model_id(model)]
    assert validate_jsonl(lines(), count, model=model).token_limit == limit


def test_token_limit():
    long = {"messages": [{"role": "user", "content": "w " * 70_000}, {"role": "assistant", "content": "a"}]}
    report = validate_jsonl(lines(long), count, model="gpt-4o-mini")
    assert report.over_limit == 1 and any(w["kind"] == "examples_over_token_limit" for w in report.warnings)


def traj(i, calls=None, content="answer", category="c"):
    return SourceTrajectory(f"t{i}", category, [{"role": "user", "content": f"question {i}"}],
                            [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                            content, calls or [])


def test_builder_strategies_dedupe_and_sharegpt():
    t = traj(1, [{"id": "c1", "name": "f", "arguments": {"x": 1}}], content="I will call f")
    final, _, _ = build_examples([t], strategy="final")
    assert final[0]["messages"][-1]["content"] is None
    assert json.loads(final[0]["messages"][-1]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    reasoning, _, _ = build_examples([t], strategy="reasoning", system_prompt="Be exact")
    assert reasoning[0]["messages"][-1]["content"] == "I will call f"
    assert reasoning[0]["messages"][0] == {"role": "system", "content": "Be exact"}
    examples, cats, dropped = build_examples([traj(1), traj(1), traj(2)])
    assert len(examples) == 2 and dropped == 1
    sg = to_sharegpt(final[0])
    assert sg["conversations"][-1]["from"] == "function_call" and json.loads(sg["tools"])[0]["name"] == "f"


def test_stratified_split_keeps_category_shares():
    cats = ["a"] * 50 + ["b"] * 10
    train, valid = stratified_split(cats, 0.2, seed=3)
    assert sorted(train + valid) == list(range(60))
    assert sum(cats[i] == "a" for i in valid) == 10 and sum(cats[i] == "b" for i in valid) == 2
    assert stratified_split(cats, 0.2, seed=3) == (train, valid)  # seeded


def test_stratified_split_with_keys_does_not_hang_on_the_order_items_arrive_in():
    # trajectories are recorded in the order answers arrive (a concurrent collection): the same
    # tasks and seed must hold out the same tasks whatever that order
    keys = [f"task-{i:03d}" for i in range(60)]
    cats = ["a" if i % 3 else "b" for i in range(60)]
    order = list(range(60))
    random.Random(1).shuffle(order)
    _, valid = stratified_split(cats, 0.3, 5, keys)
    _, shuffled = stratified_split([cats[i] for i in order], 0.3, 5, [keys[i] for i in order])
    assert sorted(keys[i] for i in valid) == sorted(keys[order[i]] for i in shuffled)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.booleans(), st.sampled_from(["x", "y", "z"]),
                          st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=3)),
                min_size=10, max_size=30), st.sampled_from(["final", "reasoning"]))
def test_anything_the_builder_writes_passes_the_validator(items, strategy):
    trajs = [SourceTrajectory(f"t{i}", cat, [{"role": "system", "content": "sys"}, {"role": "user", "content": q}],
                              [], "thinking", [{"id": f"c{i}", "name": "f", "arguments": args}] if call else [])
             for i, (q, call, cat, args) in enumerate(items)]
    examples, _, _ = build_examples(trajs, strategy=strategy, dedupe=False)
    report = validate_jsonl("\n".join(json.dumps(e) for e in examples), count)
    assert report.ok, report.errors[:3]
    sharegpt = validate_jsonl("\n".join(json.dumps(to_sharegpt(e)) for e in examples), count)
    assert sharegpt.ok and sharegpt.format == "sharegpt", sharegpt.errors[:3]


def test_sharegpt_keeps_reasoning_and_is_validated_by_its_own_rules():
    from cascade_studio.core.datasets import backend_refusal

    t = traj(1, [{"id": "c1", "name": "f", "arguments": {"x": 1}}, {"id": "c2", "name": "g", "arguments": {}}],
             content="I will call f and g")
    final = to_sharegpt(build_examples([t], strategy="final")[0][0])
    reasoning = to_sharegpt(build_examples([t], strategy="reasoning")[0][0])
    assert final != reasoning
    call = reasoning["conversations"][-1]
    assert call["from"] == "function_call" and call["value"].startswith("<think>I will call f and g</think>")
    assert [c["name"] for c in json.loads(call["value"].split("</think>")[1])] == ["f", "g"]  # one turn, parallel
    good = "\n".join(json.dumps(x) for x in [final, reasoning] * 5)
    report = validate_jsonl(good, count)
    assert report.ok and report.format == "sharegpt" and report.tokens_per_example
    assert "ShareGPT" in backend_refusal(report, "openai")
    bad_rows = [
        ({"conversations": []}, "sharegpt_missing_conversations"),
        ({"conversations": [{"from": "gpt", "value": "hi"}]}, "sharegpt_bad_order"),
        ({"conversations": [{"from": "human", "value": "hi"}]}, "sharegpt_bad_order"),
        ({"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "a"}]}, "sharegpt_bad_turn"),
        ({"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{nope"}]},
         "sharegpt_bad_function_call"),
        ({**final, "tools": [1]}, "sharegpt_bad_tools"),
    ]
    for row, kind in bad_rows:
        report = validate_jsonl("\n".join([json.dumps(final), json.dumps(row)] + [json.dumps(final)] * 8), count)
        assert [(e["line"], e["kind"]) for e in report.errors] == [(2, kind)], (row, report.errors)
    # an OpenAI-format dataset with errors is refused too, naming the first problem
    broken = validate_jsonl(lines(GOOD, {"bad": 1}), count)
    assert "line 2: missing_messages_list" in backend_refusal(broken, "openai")
    assert backend_refusal(validate_jsonl(lines(), count), "openai") is None


def test_jsonl_lines_split_on_newlines_only():
    """U+2028 and other Unicode line separators are legal inside JSON strings written with
    ensure_ascii=False; only \\n ends a JSONL record."""
    row = {"messages": [{"role": "user", "content": "a\u2028b\x85c"}, {"role": "assistant", "content": "ok"}]}
    text = "\r\n".join([json.dumps(row, ensure_ascii=False)] * 10)
    report = validate_jsonl(text, count)
    assert report.ok and report.examples == 10


def test_task_import_with_unicode_separators():
    from cascade_studio.core.tasks import parse_native

    row = {"id": "t", "category": "c", "messages": [{"role": "user", "content": "x\u2029y"}], "tools": []}
    assert parse_native(json.dumps(row, ensure_ascii=False), "f.jsonl")[0].prompt == "x\u2029y"


def test_of_duplicates_the_smallest_task_id_is_kept_whatever_the_order():
    ask = [{"role": "user", "content": "same question"}]
    trajs = [SourceTrajectory(t, c, ask, [], f"answer {t}", []) for t, c in (("t3", "x"), ("t1", "y"), ("t2", "x"))]
    other = SourceTrajectory("t0", "z", [{"role": "user", "content": "another"}], [], "other", [])
    for order in ([*trajs, other], [other, *reversed(trajs)]):
        kept: list[str] = []
        examples, cats, dropped = build_examples(order, kept_task_ids=kept)
        assert dropped == 2 and sorted(zip(kept, cats, strict=True)) == [("t0", "z"), ("t1", "y")]
        assert sorted(e["messages"][-1]["content"] for e in examples) == ["answer t1", "other"]
