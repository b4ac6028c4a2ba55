"""Demonstrations (prompt distillation): where they go in a request, what they add to a generation,
how nearest ones are chosen, and the stratified choice of fixed ones."""

from __future__ import annotations

import pytest

from cascade_studio.core.demonstrations import (
    FIXED,
    NEAREST,
    DemonstrationsError,
    PromptProgram,
    apply_demonstrations,
    choose_fixed,
    demonstration_from,
)
from cascade_studio.core.tiers import Tier, TierError, generation_id, generation_keys
from cascade_studio.core.trajectory import build_request


def demo(i: int, text: str, tool: str = "f"):
    return demonstration_from(f"t{i}", "c", [{"role": "system", "content": "sys"}, {"role": "user", "content": text}],
                              [{"id": "orig", "name": tool, "arguments": {"a": i}}], "because", reasoning=False,
                              index=i)


def test_turns_follow_the_system_prompt_and_precede_the_task():
    program = PromptProgram(FIXED, 1, (demo(0, "area of a circle"),), "Be exact.")
    tier = Tier(tier=1, model="m", system_prompt="You help.", demonstrations=program)
    body = build_request(tier, [{"role": "user", "content": "area of a square"}], [])
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "system", "user", "assistant", "tool", "user"]
    assert body["messages"][0]["content"] == "You help." and body["messages"][1]["content"] == "Be exact."
    call = body["messages"][3]["tool_calls"][0]
    assert call["id"] == body["messages"][4]["tool_call_id"] == "call_demo_0_0"
    assert body["messages"][3]["content"] is None  # the teacher's text is kept only with reasoning
    assert apply_demonstrations(None, body["messages"][-1:]) == body["messages"][-1:]


def test_a_program_is_part_of_the_generation_and_round_trips():
    program = PromptProgram(NEAREST, 2, tuple(demo(i, t) for i, t in enumerate(
        ["circle area radius", "weather in paris", "square root of nine", "area of a triangle"])))
    plain = Tier(tier=1, model="m")
    distilled = plain.replace(demonstrations=program)
    assert generation_id(plain) != generation_id(distilled)
    assert generation_keys(distilled) == (generation_id(distilled),)  # never the model's legacy rows
    assert generation_id(Tier.from_json(distilled.to_json())) == generation_id(distilled)
    doc = program.to_json(index=True)
    again = PromptProgram.from_json(doc)
    assert again == program and again.fingerprint() == program.fingerprint()
    ask = [{"role": "user", "content": "what is the area of a circle of radius 2"}]
    assert [d.task_id for d in again.select(ask)] == [d.task_id for d in program.select(ask)]
    assert {d.task_id for d in program.select(ask)} == {"t0", "t3"}
    doc["demonstrations"][0]["answer"]["content"] = "edited"
    with pytest.raises(DemonstrationsError, match="fingerprint"):
        PromptProgram.from_json(doc)
    with pytest.raises(TierError, match="demonstrations"):
        Tier.from_json({**distilled.to_json(), "demonstrations": {"format": "x"}})


def test_fixed_choice_is_stratified_and_prefers_disagreements():
    candidates = [(f"a{i}", "a", i == 3) for i in range(6)] + [(f"b{i}", "b", False) for i in range(3)] + \
        [("c0", "c", True)]
    chosen = choose_fixed(candidates, 4, seed=1)
    assert len(chosen) == 4 and {c[0] for c in chosen} == {"a", "b", "c"}
    assert "a3" in chosen and "c0" in chosen
    assert choose_fixed(candidates, 4, seed=1) == chosen
    assert len(choose_fixed(candidates, 50)) == len(candidates)

