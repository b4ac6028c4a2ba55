"""Issue 29: success decided by the strongest basis, comparisons on the same basis only, pass^k
against a hand computation."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cascade_studio.core.episode import Episode, Step
from cascade_studio.core.episode_eval import (
    episode_side_summary,
    episode_success,
    pass_hat_k,
    same_basis_comparison,
    trial_figures,
)
from cascade_studio.core.trajectory import Trajectory


def ep(answer: str = "booked BK-1", **kw) -> Episode:
    e = Episode("t", 1, "m", "g", "k", [Step(0, Trajectory("t", 1, "m", "ok", content=answer, final_answer=answer))],
                **kw)
    return e


def test_the_recorded_outcome_judges_first_then_check_expected_judge_text():
    expected = {"final_answer": "BK-1"}
    assert episode_success(ep(outcome={"success": False, "reward": 0.0}, check_passed=True), expected) == \
        (False, "outcome")
    assert episode_success(ep(check_passed=False), expected) == (False, "check")
    assert episode_success(ep(), expected, judge=False) == (True, "expected_answer")
    assert episode_success(ep(), None, "something else", judge=True) == (True, "judge")
    assert episode_success(ep(), None, "booked BK-1") == (True, "text_match")
    assert episode_success(ep(), None) == (None, "none")


def test_pass_k_equals_a_hand_computation():
    # task a: 4 trials, 3 successes; b: 4 trials, 1; c: 4 trials, 4; d: 4, 0
    per_task = {"a": [True, True, False, True], "b": [False, False, True, False], "c": [True] * 4, "d": [False] * 4}
    figures = trial_figures(per_task)
    hand = {1: (Fraction(3, 4) + Fraction(1, 4) + 1 + 0) / 4,   # C(c,1)/C(4,1)
            2: (Fraction(3, 6) + 0 + 1 + 0) / 4,                # C(3,2)=3 / C(4,2)=6
            3: (Fraction(1, 4) + 0 + 1 + 0) / 4,                # C(3,3)=1 / C(4,3)=4
            4: (0 + 0 + 1 + 0) / Fraction(4)}
    assert figures["tasks"] == 4 and figures["trials_min"] == 4
    assert figures["pass_k"] == {str(k): pytest.approx(float(v), abs=1e-12) for k, v in hand.items()}
    assert pass_hat_k(4, 3, 2) == 0.5
    # a task with an unjudged trial is left out and counted; k stops at the fewest trials
    figures = trial_figures({"a": [True, True], "b": [True, None], "c": [True, False, True]})
    assert figures["tasks"] == 2 and figures["left_out"] == 1 and list(figures["pass_k"]) == ["1", "2"]
    assert figures["pass_k"]["2"] == pytest.approx((1 + Fraction(1, 3)) / 2)


def test_two_sides_are_compared_only_on_tasks_judged_the_same_way():
    teacher = {"a": [(True, "expected_answer")], "b": [(True, "outcome")], "c": [(None, "none")],
               "d": [(True, "outcome"), (False, "outcome")]}
    student = {"a": [(False, "text_match")], "b": [(False, "outcome")], "c": [(True, "text_match")],
               "d": [(True, "outcome"), (True, "outcome")]}
    c = same_basis_comparison(teacher, student)
    assert c["tasks"] == 2 and c["left_out"] == 2 and c["left_out_unjudged"] == 1 and c["left_out_different_basis"] == 1
    assert c["basis"] == {"outcome": 2}
    assert c["teacher_success"] == pytest.approx(2 / 3) and c["student_success"] == pytest.approx(2 / 3)


def test_unknown_cost_and_time_are_left_out_of_the_means_and_counted():
    known = ep(outcome={"success": True, "reward": 1.0})
    known.wall_ms = 2000.0
    known.steps[0].call.cost_micro = 3000
    unknown = ep(outcome={"success": False, "reward": 0.0}, unknown=("usage", "cost", "latency"))
    summary = episode_side_summary([(known, True, "outcome"), (unknown, False, "outcome")])
    assert summary["cost_per_episode_usd"] == "0.003" and summary["cost_unknown"] == 1
    assert summary["wall_s_mean"] == 2.0 and summary["wall_unknown"] == 1
    assert summary["success_rate"] == 0.5 and summary["mean_reward"] == 0.5
    only_unknown = episode_side_summary([(unknown, False, "outcome")])
    assert only_unknown["cost_per_episode_usd"] is None and only_unknown["wall_s_mean"] is None


def test_an_episode_takes_its_prompt_from_its_first_request_not_the_task():
    request = {"messages": [{"role": "system", "content": "tier prompt"}, {"role": "user", "content": "opening A"}]}
    stored = Episode("t", 1, "m", "g", "k", [Step(0, Trajectory("t", 1, "m", "ok", request=request))])
    stored.apply_info({"v": 1, "system_inserted": True})  # the tier added its system prompt: not the episode's
    assert stored.messages_before([{"role": "user", "content": "opening B"}]) == [{"role": "user", "content": "opening A"}]
    own = Episode("t", 1, "m", "g", "k", [Step(0, Trajectory("t", 1, "m", "ok", request=request))])
    own.apply_info({"v": 1})
    assert own.messages_before(None) == request["messages"]
    legacy = Episode("t", 1, "m", "g", "k", [Step(0, Trajectory("t", 1, "m", "ok", request=request))])
    legacy.apply_info(None)  # stored before episodes kept their prompt: the task's, as before
    assert legacy.messages_before([{"role": "user", "content": "opening B"}])[0]["content"] == "opening B"
    assert "prompt" not in own.info_json()  # no copy: the first step's request holds it
