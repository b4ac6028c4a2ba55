"""Hand-built cases for every agreement metric and for BFCL accuracy."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascade_studio.core import agreement as ag
from cascade_studio.core.evaluation import (
    Side,
    aggregate,
    compare,
    outcome,
    threshold_for_quality,
    threshold_for_rate,
)


def call(name, **args):
    return {"name": name, "arguments": args}


def test_values_equal_normalises_json():
    assert ag.values_equal(1, 1.0) and ag.values_equal(0.1 + 0.2, 0.3)
    assert not ag.values_equal(1, 1.01)
    assert ag.values_equal({"a": 1, "b": [1, 2]}, {"b": [1.0, 2], "a": 1})
    assert not ag.values_equal([1, 2], [2, 1])
    assert ag.values_equal(" Paris ", "Paris") and not ag.values_equal("paris", "Paris")
    assert not ag.values_equal(True, 1) and ag.values_equal(None, None)


def test_tool_agreement_order_insensitive_and_no_tool():
    assert ag.tool_agreement([call("a"), call("b")], [call("b"), call("a")])
    assert not ag.tool_agreement([call("a"), call("a")], [call("a")])  # parallel calls count
    assert ag.tool_agreement([], [])  # "no tool" is a choice too
    assert not ag.tool_agreement([], [call("a")])


def test_args_agreement_and_share():
    ok, share = ag.args_agreement([call("f", x=1, y="a")], [call("f", y="a", x=1.0)])
    assert ok and share == 1.0
    ok, share = ag.args_agreement([call("f", x=1, y="a")], [call("f", x=2, y="a")])
    assert not ok and share == 0.5
    ok, share = ag.args_agreement([call("f", x=1, y="a")], [call("f", x=1)])  # missing argument
    assert not ok and share == 0.5
    ok, share = ag.args_agreement([call("f", x=1), call("g", z=3)], [call("g", z=3), call("f", x=1)])
    assert ok and share == 1.0  # parallel calls paired by name
    ok, share = ag.args_agreement([call("f", x=1)], [call("h", x=1)])
    assert not ok and share == 0.0
    assert ag.args_agreement([], []) == (True, None)
    diff = ag.argument_diff([call("f", x=1, y=2)], [call("f", x=1, y=3)])
    assert diff == [{"tool": "f", "argument": "y", "teacher": 2, "student": 3}]


def test_answers_and_similarity():
    assert ag.answers_match("The answer is 42.", "the answer is 42")
    assert not ag.answers_match("42", "43")
    a, b, c = (ag.offline_embedding(t) for t in ("weather in Paris today", "Paris weather today", "tax rules"))
    assert ag.cosine(a, b) > ag.cosine(a, c)
    assert abs(ag.cosine(a, a) - 1) < 1e-9 and ag.cosine([], []) is None


def lp(token, p, top):
    return {"token": token, "logprob": math.log(p), "top_logprobs": [{"token": t, "logprob": math.log(q)} for t, q in top]}


def test_kl_on_the_decision_token():
    teacher = [lp('{"name": "', 0.99, [('{"name": "', 0.99)]), lp("get", 0.9, [("get", 0.9), ("set", 0.1)])]
    same = [lp('{"name": "', 0.99, [('{"name": "', 0.99)]), lp("get", 0.9, [("get", 0.9), ("set", 0.1)])]
    other = [lp('{"name": "', 0.99, [('{"name": "', 0.99)]), lp("get", 0.5, [("get", 0.5), ("set", 0.5)])]
    assert ag.decision_position(teacher, "get_weather") == 1
    assert ag.decision_kl(teacher, "get", same, "get") == pytest.approx(0.0, abs=1e-12)
    kl = ag.decision_kl(teacher, "get", other, "get", temperature=1.0)
    expected = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert kl == pytest.approx(expected, rel=1e-9)
    # a higher temperature softens both distributions and shrinks the divergence
    assert ag.decision_kl(teacher, "get", other, "get", temperature=4.0) < kl
    assert ag.decision_kl(None, None, other, "get") is None


def test_bfcl_rules():
    expected = [{"calc_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    assert ag.bfcl_correct([call("calc_area", base=10, height=5)], expected)  # "" -> optional
    assert ag.bfcl_correct([call("calc_area", base=10.0, height=5, unit="Units")], expected)
    assert not ag.bfcl_correct([call("calc_area", base=10)], expected)  # required missing
    assert not ag.bfcl_correct([call("calc_area", base=10, height=5, extra=1)], expected)  # unexpected
    assert not ag.bfcl_correct([call("other", base=10, height=5)], expected)
    assert ag.bfcl_correct([], []) and not ag.bfcl_correct([call("f")], [])  # irrelevance
    par = [{"f": {"x": [1]}}, {"g": {"y": ["a", "b"]}}]
    assert ag.bfcl_correct([call("g", y="b"), call("f", x=1)], par)
    assert not ag.bfcl_correct([call("g", y="b")], par)



def _tool(name, **props):
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": props, "required": []}}}


def test_bfcl_dict_arguments_are_compared_key_by_key():
    """BFCL lists accepted values per key inside a dict argument (issue 21)."""
    expected = [{"update_user_info": {"user_id": [43523], "update_info": [{"name": ["John Doe"], "email": ["", "j@x.com"]}]}}]
    tools = [_tool("update_user_info", user_id={"type": "integer"}, update_info={"type": "object"})]
    right = call("update_user_info", user_id=43523, update_info={"name": "john doe", "email": "j@x.com"})
    assert ag.bfcl_correct([right], expected, tools)
    assert ag.bfcl_correct([right], expected)  # no tools: the answers say it is a dict
    assert ag.bfcl_correct([call("update_user_info", user_id=43523, update_info={"name": "John Doe"})], expected, tools)
    assert not ag.bfcl_correct([call("update_user_info", user_id=43523, update_info={"name": "Jane"})], expected, tools)
    assert not ag.bfcl_correct([call("update_user_info", user_id=43523, update_info={"email": "j@x.com"})], expected, tools)
    assert not ag.bfcl_correct([call("update_user_info", user_id=43523,
                                     update_info={"name": "John Doe", "age": 3})], expected, tools)


def test_bfcl_type_check_follows_the_declared_types():
    expected = [{"f": {"xs": [[1.0, 2.0]], "x": [3.0], "n": [4]}}]
    tools = [_tool("f", xs={"type": "array", "items": {"type": "number"}}, x={"type": "number"}, n={"type": "integer"})]
    assert ag.bfcl_correct([call("f", xs=[1.0, 2.0], x=3.0, n=4)], expected, tools)
    assert ag.bfcl_correct([call("f", xs=[1.0, 2.0], x=3, n=4)], expected, tools)  # int -> float at the top
    assert not ag.bfcl_correct([call("f", xs=[1, 2], x=3.0, n=4)], expected, tools)  # not inside an array
    assert not ag.bfcl_correct([call("f", xs=[1.0, 2.0], x=3.0, n=4.0)], expected, tools)  # float for an int
    assert not ag.bfcl_correct([call("f", xs=[1.0, 2.0], x=3.0 + 1e-9, n=4)], expected, tools)  # exact, as BFCL
    assert not ag.bfcl_correct([call("f", xs=[1.0, 2.0], x=True, n=4)], expected, tools)


def test_bfcl_strings_are_standardised_as_bfcl_does():
    expected = [{"f": {"city": ["New York, NY"], "tags": [["a b", "c"]]}}]
    tools = [_tool("f", city={"type": "string"}, tags={"type": "array", "items": {"type": "string"}})]
    assert ag.bfcl_correct([call("f", city="new york ny", tags=["A-B", "c."])], expected, tools)
    assert not ag.bfcl_correct([call("f", city="New York\tNY", tags=["a b", "c"])], expected, tools)  # tabs stay
    assert not ag.bfcl_correct([call("f", city="New York!", tags=["a b", "c"])], expected, tools)


def test_bfcl_parallel_calls_are_matched_one_each():
    """Two calls equal as Python dicts (5 == 5.0) are still two calls; the wrong one stays unmatched."""
    expected = [{"f": {"n": [5]}}, {"f": {"n": [5]}}]
    tools = [_tool("f", n={"type": "integer"})]
    assert ag.bfcl_correct([call("f", n=5), call("f", n=5)], expected, tools)
    assert not ag.bfcl_correct([call("f", n=5.0), call("f", n=5)], expected, tools)

def side(calls, answer=None, conf=0.9):
    return Side(calls, answer, None, None, {"mean_token_prob": conf, "min_token_prob": conf, "tool_name_prob": conf})


def test_compare_and_aggregate_by_category():
    r1 = compare("t1", "a", side([call("f", x=1)]), side([call("f", x=1)]), [{"f": {"x": [1]}}])
    r2 = compare("t2", "a", side([call("f", x=1)]), side([call("f", x=2)]), [{"f": {"x": [1]}}])
    r3 = compare("t3", "b", side([], "Paris"), side([], "paris"))
    summary = aggregate([r1, r2, r3])
    assert summary["overall"]["tasks"] == 3 and summary["overall"]["tool_agreement"] == 1.0
    assert summary["categories"]["a"]["args_agreement"] == 0.5
    assert summary["categories"]["b"]["answer_agreement"] == 1.0
    assert summary["categories"]["a"]["accuracy"] == {"teacher": 1.0, "student": 0.5, "tasks": 2}
    assert list(summary["categories"]) == ["a", "b"]  # most disagreement first
    assert [r.agrees for r in (r1, r2, r3)] == [True, False, True]


def test_calibration_by_rate_and_by_quality():
    confs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    student_ok = [False, False, True, False, True, True, True, True, True, True]
    teacher_ok = [True] * 10
    by_rate = threshold_for_rate(confs, student_ok, teacher_ok, 0.3)
    assert by_rate.escalation_rate == pytest.approx(0.3) and by_rate.expected_quality == pytest.approx(0.9)
    by_quality = threshold_for_quality(confs, student_ok, teacher_ok, 1.0)
    assert by_quality.escalation_rate == pytest.approx(0.4) and by_quality.expected_quality == 1.0
    assert outcome(confs, student_ok, teacher_ok, 0.0).escalation_rate == 0.0
    assert outcome([None], [True], [True], 0.0).escalation_rate == 1.0  # no confidence: escalate


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60), st.floats(0, 1))
def test_rate_calibration_tracks_the_target(rows, target):
    confs = [c for c, _ in rows]
    ok = [o for _, o in rows]
    result = threshold_for_rate(confs, ok, [True] * len(ok), target)
    distinct = len(set(confs)) == len(confs)
    if distinct:
        assert abs(result.escalation_rate - target) <= 1 / len(confs) / 2 + 1e-9
    assert 0 <= result.expected_quality <= 1


def test_offline_similarity_is_the_dense_cosine_exactly():
    """Evaluation's sparse offline similarity gives the very float of the dense vectors' cosine."""
    import random

    rng = random.Random(5)
    vocab = ["paris", "weather", "the", "call", "get_weather", "city", "10", "Ünï", "a", "b", "tax", "—", "rules"]
    texts = ["", "   ", "!!!", "a a", "a b a b", "weather in Paris today", "Paris weather today"]
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    for _ in range(600):
        a, b = rng.choice(texts), rng.choice(texts)
        assert ag.offline_similarity(a, b) == ag.cosine(ag.offline_embedding(a), ag.offline_embedding(b)), (a, b)
    for dims in (4, 16):  # small vectors: many collisions and cancellations
        for _ in range(200):
            a, b = rng.choice(texts), rng.choice(texts)
            assert ag.offline_similarity(a, b, dims) == ag.cosine(ag.offline_embedding(a, dims),
                                                                  ag.offline_embedding(b, dims)), (a, b, dims)
