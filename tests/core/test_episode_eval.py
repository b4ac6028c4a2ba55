"""Issue 17: step alignment and agent metrics against a hand computation, and the per-step
cascade's sweep against a brute-force simulation."""

from __future__ import annotations

import random

import pytest

from cascade_studio.core.episode import Episode, Step
from cascade_studio.core.episode_eval import (
    EpisodeSteps,
    compare_step,
    episode_success,
    pareto,
    simulate,
    step_summary,
    sweep,
)
from cascade_studio.core.trajectory import Trajectory


def call(tool: str | None = None, args: dict | None = None, answer: str | None = None, cost: int = 0,
         conf: float | None = None) -> Trajectory:
    calls = [{"id": "c", "name": tool, "arguments": args or {}}] if tool else []
    return Trajectory("t", 1, "m", "ok", tool_calls=calls, content=answer, final_answer=None if tool else answer,
                      cost_micro=cost, conf_mean=conf)


# A recorded set: two teacher episodes and the student's teacher-forced action at each step.
TEACHER = {
    "a": [call("search", {"city": "Paris"}), call("book", {"id": "F1"}), call(answer="Booked F1")],
    "b": [call("search", {"city": "Rome"}), call(answer="No flights")],
}
STUDENT = {
    "a": [call("search", {"city": "Paris"}), call("book", {"id": "F2"}), call(answer="booked f1")],
    "b": [call("weather", {"city": "Rome"}), call(answer="No flights")],
}


def results():
    out = []
    for task, steps in TEACHER.items():
        for k, teacher in enumerate(steps):
            out.append(compare_step(task, "cat-" + task, k, teacher, STUDENT[task][k]))
    return out


def test_step_agreement_by_hand():
    summary = step_summary(results())
    # agreements: a0 yes, a1 no (args), a2 yes (answers match, normalised), b0 no (tool), b1 yes
    assert summary["overall"]["steps"] == 5 and summary["overall"]["agreement"] == pytest.approx(3 / 5)
    assert summary["overall"]["tool_agreement"] == pytest.approx(4 / 5)
    assert summary["by_step"]["0"]["agreement"] == pytest.approx(1 / 2)
    assert summary["by_step"]["1"]["agreement"] == pytest.approx(1 / 2)
    assert summary["by_step"]["2"]["agreement"] == 1.0
    assert summary["by_tool"]["search"]["agreement"] == pytest.approx(1 / 2)
    assert summary["by_tool"]["book"]["agreement"] == 0.0 and summary["by_tool"]["answer"]["agreement"] == 1.0
    assert summary["by_category"]["cat-a"]["agreement"] == pytest.approx(2 / 3)
    first = summary["first_divergence"]
    # a first diverges at step 1 (book's arguments), b at step 0 (the wrong tool)
    assert (first["episodes"], first["diverged"], first["median_step"]) == (2, 2, 0.5)
    assert first["by_step"] == {"0": 1, "1": 1}


def test_episode_success_prefers_the_check_then_the_expected_answer_then_the_teacher():
    ep = Episode("t", 1, "m", "g", "k", [Step(0, call(answer="Booked BK-1001"))])
    assert episode_success(ep, {"final_answer": "bk-1001"}) == (True, "expected_answer")
    assert episode_success(ep, {"final_answer": "BK-9"}) == (False, "expected_answer")
    assert episode_success(ep, None, "booked bk-1001") == (True, "text_match")
    ep.check_passed = False
    assert episode_success(ep, {"final_answer": "BK-1001"}) == (False, "check")
    assert episode_success(Episode("t", 1, "m", "g", "k"), None) == (None, "none")


def random_episodes(seed: int, n: int = 40) -> list[EpisodeSteps]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(1, 5)
        conf = [None if rng.random() < 0.1 else round(rng.random(), 2) for _ in range(k)]
        out.append(EpisodeSteps(f"t{i}", "c", [rng.randint(50, 150) for _ in range(k)], [conf],
                                [[rng.randint(1, 10) for _ in range(k)]], [[rng.random() < 0.7 for _ in range(k)]]))
    return out


@pytest.mark.parametrize("policy", ["step", "rest"])
def test_the_sweep_is_the_brute_force_simulation(policy):
    episodes = random_episodes(7)
    for point in sweep(episodes, policy, grid=21):
        brute = simulate(episodes, [point["threshold"]], policy)
        assert point["cost_per_episode_micro"] == pytest.approx(brute["cost_per_episode_micro"])
        assert point["step_agreement"] == pytest.approx(brute["step_agreement"])
        assert point["episode_agreement"] == pytest.approx(brute["episode_agreement"])
    front = pareto(sweep(episodes, policy, grid=21))
    assert all(a["cost_per_episode_micro"] <= b["cost_per_episode_micro"] for a, b in zip(front, front[1:], strict=False))


def test_the_policies_by_hand():
    # one episode of 3 steps; the student is unsure at step 2 only
    ep = EpisodeSteps("t", "c", teacher_cost=[100, 100, 100], confidence=[[0.9, 0.2, 0.9]], cost=[[10, 10, 10]],
                      agrees=[[True, False, False]])
    step = simulate([ep], [0.5], "step")
    # step policy: student answers steps 1 and 3 (step 3 disagrees), step 2 escalates (10 + 100)
    assert step["cost_per_episode_micro"] == 10 + (10 + 100) + 10
    assert step["share_answered"] == pytest.approx([2 / 3, 1 / 3]) and step["step_agreement"] == pytest.approx(2 / 3)
    rest = simulate([ep], [0.5], "rest")
    # rest policy: from step 2 on the teacher acts: 10 + (10 + 100) + 100
    assert rest["cost_per_episode_micro"] == 10 + 110 + 100
    assert rest["step_agreement"] == 1.0 and rest["episode_agreement"] == 1.0
