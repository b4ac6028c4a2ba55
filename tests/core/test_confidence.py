import math
from decimal import Decimal

from cascade_studio.core.confidence import mean_token_prob, min_token_prob, tool_name_prob
from cascade_studio.core.tiers import Tier
from cascade_studio.core.trajectory import Usage, build_request, cost_of, trajectory_from_response


def lp(token, p):
    return {"token": token, "logprob": math.log(p), "bytes": list(token.encode()), "top_logprobs": []}


def test_mean_min_and_tool_name_probability():
    toks = [lp("I", 0.9), lp(" call", 0.8), lp('{"name": "', 0.99), lp("get", 0.5), lp("_weather", 0.9),
            lp('", "arguments": {}}', 0.95)]
    assert abs(mean_token_prob(toks) - (0.9 + 0.8 + 0.99 + 0.5 + 0.9 + 0.95) / 6) < 1e-12
    assert abs(min_token_prob(toks) - 0.5) < 1e-12
    assert abs(tool_name_prob(toks, "get_weather") - 0.45) < 1e-12
    assert tool_name_prob(toks, None) == 0.9  # no tool: the first token stands for the decision
    assert tool_name_prob(toks, "other_tool") is None
    assert mean_token_prob(None) is None and tool_name_prob([], "x") is None


def test_cost_uses_cached_price_and_is_exact():
    tier = Tier(tier=1, model="m", input_price=Decimal("2.5"), output_price=Decimal("10"), cached_price=Decimal("1.25"))
    usage = Usage(prompt_tokens=2000, completion_tokens=100, cached_tokens=1024)
    # 976 * 2.5 + 1024 * 1.25 + 100 * 10 = 2440 + 1280 + 1000 micro-dollars
    assert cost_of(usage, tier) == 4720
    assert cost_of(usage, tier.replace(cached_price=None)) == 2000 * 2.5 + 1000
    assert cost_of(usage, tier, batch_discount=Decimal("0.5")) == 2360


def test_trajectory_from_response():
    tier = Tier(tier=3, model="gpt-4o", input_price=Decimal("2.5"), output_price=Decimal("10"), system_prompt="Be brief")
    request = build_request(tier, [{"role": "user", "content": "hi"}], [])
    assert request["messages"][0] == {"role": "system", "content": "Be brief"} and "tools" not in request
    response = {"model": "gpt-4o", "system_fingerprint": "fp_x", "choices": [{"message": {
        "role": "assistant", "content": "thinking", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{broken"}}]},
        "logprobs": {"content": [lp("x", 0.5)]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 2}}}
    t = trajectory_from_response("t1", tier, request, response, 12.5)
    assert t.tool_name == "f" and t.tool_calls[0]["arguments"] == {"a": 1}
    assert t.tool_calls[1]["arguments"] == {"__unparsed__": "{broken"}
    assert t.final_answer is None and t.content == "thinking" and t.usage.reasoning_tokens == 2
    assert t.cost_micro == 75 and t.conf_mean == 0.5 and t.system_fingerprint == "fp_x"
