"""The simulated models behave like models: deterministic, skill-ordered, and their token
probabilities predict their mistakes."""

import json
import math
from pathlib import Path

import pytest

from cascade_studio.sandbox import simulator as sim
from cascade_studio.sandbox.faults import parse_faults
from cascade_studio.sandbox.tokens import count_tokens, tokenize

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"


def bfcl(name: str):
    tasks = [json.loads(line) for line in (BFCL / f"{name}.json").read_text().splitlines()]
    answers = {}
    path = BFCL / f"{name}.possible_answer.json"
    if path.exists():
        answers = {a["id"]: a["ground_truth"] for a in map(json.loads, path.read_text().splitlines())}
    for t in tasks:
        for fn in t["function"]:
            fn["parameters"]["type"] = "object"
    return tasks, answers


def request(model, task):
    return {"model": model, "messages": task["question"][0],
            "tools": [{"type": "function", "function": f} for f in task["function"]],
            "logprobs": True, "top_logprobs": 3}


def tool_right(gen, task, answers) -> bool:
    gt = answers[task["id"]][0]
    return bool(gen.tool_calls) and gen.tool_calls[0]["function"]["name"] == next(iter(gt))


def test_tokenizer_round_trips():
    text = 'Find the area of a "triangle" with base 10.5, height 5!\n  next_line calculate_triangle_area'
    assert "".join(tokenize(text)) == text
    assert count_tokens("") == 0 and count_tokens("hello world") == 2


def test_deterministic_for_a_seed():
    tasks, _ = bfcl("BFCL_v4_multiple")
    a = sim.generate_chat(request("gpt-4o-mini", tasks[0]), seed=1)
    b = sim.generate_chat(request("gpt-4o-mini", tasks[0]), seed=1)
    assert a.tool_calls == b.tool_calls and a.content == b.content


def test_bigger_models_choose_tools_better():
    tasks, answers = bfcl("BFCL_v4_multiple")
    scores = {}
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"):
        scores[model] = sum(tool_right(sim.generate_chat(request(model, t), seed=0), t, answers) for t in tasks)
    assert scores["gpt-4o"] > scores["gpt-4o-mini"] > scores["gpt-4.1-nano"], scores


def test_smaller_models_are_faster_and_shorter():
    tasks, _ = bfcl("BFCL_v4_simple_python")
    big, nano = sim.profile_for("gpt-4o"), sim.profile_for("gpt-4.1-nano")
    assert nano.ms_per_token < big.ms_per_token and nano.verbosity <= big.verbosity
    t = tasks[0]
    g_big = sim.generate_chat(request("gpt-4o", t), seed=0)
    g_nano = sim.generate_chat(request("gpt-4.1-nano", t), seed=0)
    assert sum(count_tokens(s.text) for s in g_nano.segments) <= sum(count_tokens(s.text) for s in g_big.segments)


def test_fine_tuned_model_is_close_to_teacher():
    assert sim.profile_for("ft:gpt-4o-mini:org:x:abc").skill > sim.profile_for("gpt-4o-mini").skill


def test_irrelevant_requests_mostly_get_no_tool_from_the_teacher():
    tasks, _ = bfcl("BFCL_v4_irrelevance")
    called = sum(bool(sim.generate_chat(request("gpt-4o", t), seed=0).tool_calls) for t in tasks)
    assert called < len(tasks) * 0.4


def test_tool_name_probability_predicts_correctness():
    """The probability of the first tool-name token is lower, on average, when the tool is wrong."""
    tasks, answers = bfcl("BFCL_v4_multiple")
    right, wrong = [], []
    for t in tasks:
        body = request("gpt-4.1-nano", t)
        gen = sim.generate_chat(body, seed=0)
        if not gen.tool_calls:
            continue
        rng = sim.rng_for(1, body["model"], body["messages"])
        toks = sim.token_logprobs(gen.segments, sim.profile_for(body["model"]), rng, 3)
        name = gen.tool_calls[0]["function"]["name"]
        text = "".join(x["token"] for x in toks)
        start = text.index('{"name": "') + len('{"name": "')
        pos, p_first = 0, None
        for x in toks:
            if pos >= start:
                p_first = math.exp(x["logprob"])
                break
            pos += len(x["token"])
        assert name.startswith(text[start:start + 3])
        (right if tool_right(gen, t, answers) else wrong).append(p_first)
    assert right and wrong
    assert sum(wrong) / len(wrong) < sum(right) / len(right) - 0.2


def test_top_logprobs_are_sorted_and_contain_the_token():
    tasks, _ = bfcl("BFCL_v4_simple_python")
    body = request("gpt-4o", tasks[3])
    gen = sim.generate_chat(body, seed=0)
    toks = sim.token_logprobs(gen.segments, sim.profile_for("gpt-4o"), sim.rng_for(1, "gpt-4o", 0), 5)
    for x in toks:
        lps = [t["logprob"] for t in x["top_logprobs"]]
        assert lps == sorted(lps, reverse=True) and len(lps) == 5
        assert sum(math.exp(v) for v in lps) <= 1.0 + 1e-9
        assert x["token"] in [t["token"] for t in x["top_logprobs"]]


def test_arguments_come_from_the_question():
    tool = {"type": "function", "function": {"name": "calculate_triangle_area", "description": "area of triangle",
                                             "parameters": {"type": "object", "properties": {
                                                 "base": {"type": "integer"}, "height": {"type": "integer"},
                                                 "unit": {"type": "string", "enum": ["cm", "m"]}},
                                                 "required": ["base", "height"]}}}
    args = sim.extract_arguments("Triangle with height 7 m and base 12", tool)
    assert args == {"base": 12, "height": 7, "unit": "m"}


def test_embeddings_reflect_similarity():
    a, b, c = (sim.embed(t, 256) for t in ("the weather in Paris", "weather in Paris today", "quadratic roots"))
    cos = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert cos(a, b) > cos(a, c)


def test_fault_spec_parsing():
    spec = parse_faults("429=0.1,500=0.02,slow=0.05,slow_s=2,retry_after=3")
    assert spec.rates == {"429": 0.1, "500": 0.02, "slow": 0.05} and spec.slow_s == 2 and spec.retry_after_s == 3
    for bad in ("429", "429=x", "404=0.1", "429=2", "429=0.7,500=0.7"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_relevant_worked_examples_count_but_a_conversation_is_no_example():
    from cascade_studio.sandbox.simulator import DEMO_MISTAKE_FACTOR, relevant_demonstrations

    tool = {"type": "function", "function": {"name": "get_weather", "description": "weather in a city",
                                             "parameters": {"type": "object", "properties": {}}}}
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    example = [{"role": "user", "content": "Weather in Rome?"}, {"role": "assistant", "content": None,
                                                               "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "c1", "content": "(example)"}]
    ask = {"role": "user", "content": "What is the weather in Paris?"}
    assert relevant_demonstrations([*example, ask], [tool], ask["content"]) == 1
    conversation = [*example, {"role": "assistant", "content": "It is sunny in Rome."}, ask]
    assert relevant_demonstrations(conversation, [tool], ask["content"]) == 0
    assert relevant_demonstrations([ask], [tool], ask["content"]) == 0
    assert 0 < DEMO_MISTAKE_FACTOR < 1


def test_an_irrelevant_worked_example_changes_nothing_but_the_prompt():
    # the documented effect of demonstrations: relevant ones remove mistakes, irrelevant ones do not
    # re-draw the model's chances (else they would add noise to every prompt-distillation comparison)
    from cascade_studio.sandbox.simulator import generate_chat, relevant_demonstrations

    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "weather in a city on a day",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]}}}
    call = {"id": "c1", "type": "function", "function": {"name": "lookup_stock_quote", "arguments": "{}"}}
    example = [{"role": "user", "content": "Quote for ACME shares?"},
               {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "c1", "content": "(example)"}]
    differs = 0
    for i in range(40):
        ask = {"role": "user", "content": f"What is the weather in Paris for the next {i} days?"}
        assert relevant_demonstrations([*example, ask], [tool], ask["content"]) == 0
        plain = generate_chat({"model": "gpt-4.1-nano", "messages": [ask], "tools": [tool]}, seed=3)
        shown = generate_chat({"model": "gpt-4.1-nano", "messages": [*example, ask], "tools": [tool]}, seed=3)
        assert (shown.content, shown.tool_calls) == (plain.content, plain.tool_calls)
        differs += plain.tool_calls != generate_chat({"model": "gpt-4.1-nano", "messages": [ask], "tools": [tool]},
                                                     seed=4).tool_calls
    assert differs  # the check can fail: the answers do depend on the draws
