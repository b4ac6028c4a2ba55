"""Issue 29: two recorded episodes compared step by step without a model; the order-preserving
alignment checked against brute force on random episodes."""

from __future__ import annotations

import itertools
import random

from cascade_studio.core.episode import Episode, Step
from cascade_studio.core.step_alignment import (
    PAIRING_RULE,
    align,
    align_episodes,
    alignment_summary,
    pair_trials,
    pairing_summary,
    same_args,
    same_tool,
    score,
)
from cascade_studio.core.trajectory import Trajectory


def call(name: str | None, arg: int = 0) -> Trajectory:
    calls = [] if name is None else [{"id": "c", "name": name, "arguments": {"x": arg}}]
    return Trajectory("t", 1, "m", "ok", content="done" if name is None else None, tool_calls=calls)


def episode(actions: list[tuple[str | None, int]]) -> Episode:
    return Episode("t", 1, "m", "g", "k", [Step(i, call(n, a)) for i, (n, a) in enumerate(actions)])


def brute(teacher: list[Trajectory], student: list[Trajectory]) -> tuple[int, int]:
    """The best (pairs, same-argument pairs) over every order-preserving pairing of same-tool steps."""
    best = (0, 0)
    for size in range(min(len(teacher), len(student)) + 1):
        for ts in itertools.combinations(range(len(teacher)), size):
            for ss in itertools.combinations(range(len(student)), size):
                if all(same_tool(teacher[i], student[j]) for i, j in zip(ts, ss, strict=True)):
                    best = max(best, (size, sum(same_args(teacher[i], student[j]) for i, j in zip(ts, ss, strict=True))))
    return best


def test_the_alignment_is_the_best_order_preserving_pairing_on_random_episodes():
    rng = random.Random(29)
    for _ in range(300):
        def random_steps() -> list[Trajectory]:
            return [call(rng.choice(["a", "b", "c", None]), rng.randint(0, 1)) for _ in range(rng.randint(0, 6))]
        teacher, student = random_steps(), random_steps()
        pairs = align(teacher, student)
        assert score(pairs) == brute(teacher, student)
        # order preserving, each step at most once, only same-tool pairs, args flag true
        assert all(a < b for a, b in zip([i for i, _, _ in pairs], [i for i, _, _ in pairs][1:], strict=False))
        assert all(a < b for a, b in zip([j for _, j, _ in pairs], [j for _, j, _ in pairs][1:], strict=False))
        assert all(same_tool(teacher[i], student[j]) and a == same_args(teacher[i], student[j]) for i, j, a in pairs)


def test_by_index_and_aligned_rates_and_the_first_divergence():
    teacher = episode([("search", 1), ("book", 2), (None, 0)])
    student = episode([("search", 1), ("lookup", 5), ("book", 3), (None, 0)])  # one extra look-up
    pair = align_episodes("t", "air", teacher, student)
    assert pair.by_index == [(True, True), (False, False), (False, False)]
    assert pair.aligned == {0: (0, True), 1: (2, False), 2: (3, True)}
    assert pair.first_divergence == 1
    summary = alignment_summary([("t", "air", teacher, student), ("u", "air", teacher, teacher)])
    assert summary["by_index"]["overall"] == {"steps": 6, "same_tool": 4 / 6, "same_args": 4 / 6}
    assert summary["aligned"]["overall"] == {"steps": 6, "same_tool": 1.0, "same_args": 5 / 6}
    assert summary["aligned"]["by_tool"]["book"] == {"steps": 2, "same_tool": 1.0, "same_args": 0.5}
    assert summary["aligned"]["student_steps_unaligned"] == 1
    assert summary["first_divergence"] == {"episodes": 2, "diverged": 1, "most_common_step": 1, "median_step": 1,
                                           "by_step": {"1": 1}}
    # a student that stops early diverges where it stopped
    assert align_episodes("t", "", teacher, episode([("search", 1)])).first_divergence == 1
    assert align_episodes("t", "", teacher, teacher).first_divergence is None


def trial(actions: list[tuple[str | None, int]], number: int) -> Episode:
    e = episode(actions)
    e.trial = number
    return e


def test_trials_pair_by_number_with_the_teachers_first_as_fallback():
    """Teacher trials 0 and 1, student trials 0, 1 and 2: by hand, student 0 <-> teacher 0 and
    student 1 <-> teacher 1 (same number), student 2 <-> teacher 0 (the teacher has no trial 2)."""
    t0 = trial([("search", 1), (None, 0)], 0)
    t1 = trial([("lookup", 1), ("book", 2), (None, 0)], 1)
    s0 = trial([("search", 1), (None, 0)], 0)  # agrees with t0 at both steps
    s1 = trial([("lookup", 1), ("book", 9), (None, 0)], 1)  # agrees with t1's tools; one argument differs
    s2 = trial([("search", 2), (None, 0)], 2)  # against t0: same tool, other argument, then the answer
    pairs = pair_trials([t1, t0], [s0, s1, s2])
    assert [(t.trial, s.trial, same) for t, s, same in pairs] == [(0, 0, True), (1, 1, True), (0, 2, False)]
    assert pairing_summary(pairs) == {"rule": PAIRING_RULE, "same_trial": 2, "teacher_first_trial": 1}
    summary = alignment_summary([("t", "air", t, s) for t, s, _ in pairs])
    # teacher steps: 2 (t0) + 3 (t1) + 2 (t0) = 7; same tool at every one of them by index
    assert summary["by_index"]["overall"] == {"steps": 7, "same_tool": 1.0, "same_args": 5 / 7}
    # divergences: none (s0), step 1 (s1's book), step 0 (s2's search)
    assert summary["first_divergence"]["diverged"] == 2
    assert summary["first_divergence"]["by_step"] == {"0": 1, "1": 1}
    # pairing every student trial with the teacher's first (the old way) judges s1 against t0; by hand over
    # t0's 2 steps each: s0 2 tools / 2 args; s1 [lookup, book, ...] vs [search, answer] 0 / 0; s2 2 / 1
    first_only = alignment_summary([("t", "air", t0, s) for s in (s0, s1, s2)])
    assert first_only["by_index"]["overall"] == {"steps": 6, "same_tool": 4 / 6, "same_args": 3 / 6}


def test_no_teacher_trial_no_pairs():
    assert pair_trials([], [trial([(None, 0)], 0)]) == []
