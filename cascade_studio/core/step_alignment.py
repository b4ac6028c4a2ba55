"""Two recorded episodes of one task (teacher and student, or two trials) compared step by step,
without asking any model.

A step's action is its tool calls (the multiset of tool names; "answer" for a text turn). Two steps
take the *same tool* when their tool names agree (core.agreement.tool_agreement) and the *same
arguments* when, besides, every argument of every call is equal (core.agreement.args_agreement): the
rules of teacher-forced step agreement. Two text turns take the same action; their words are not
compared (that is a judge's job).

- **By step index**: step k of the teacher against step k of the student (a step the student does
  not have disagrees).
- **Aligned**: the order-preserving pairing of teacher and student steps that pairs the most steps
  with the same tool, and among those the most with the same arguments (a longest common subsequence
  over actions, by dynamic programming). A student that takes one extra look-up is not out of step
  for the rest of the episode, as it is by index.

Rates are per teacher step; the first divergence is the first step index where the two differ (the
tool, the arguments, or one side has ended).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from cascade_studio.core import agreement as ag
from cascade_studio.core.episode import Episode
from cascade_studio.core.trajectory import Trajectory


def action_name(call: Trajectory) -> str:
    return "+".join(sorted(str(c.get("name")) for c in call.tool_calls)) if call.tool_calls else "answer"


def same_tool(a: Trajectory, b: Trajectory) -> bool:
    return ag.tool_agreement(a.tool_calls, b.tool_calls)


def same_args(a: Trajectory, b: Trajectory) -> bool:
    return same_tool(a, b) and ag.args_agreement(a.tool_calls, b.tool_calls)[0]


def align(teacher: list[Trajectory], student: list[Trajectory]) -> list[tuple[int, int, bool]]:
    """The order-preserving pairs (teacher step, student step, same arguments) of steps with the same
    tool: the most pairs, then the most with the same arguments (ties: the earliest student steps)."""
    n, m = len(teacher), len(student)
    tool = [[same_tool(t, s) for s in student] for t in teacher]
    args = [[tool[i][j] and same_args(teacher[i], student[j]) for j in range(m)] for i in range(n)]
    best = [[(0, 0)] * (m + 1) for _ in range(n + 1)]  # best[i][j]: of teacher[i:] and student[j:]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            options = [best[i + 1][j], best[i][j + 1]]
            if tool[i][j]:
                nxt = best[i + 1][j + 1]
                options.append((nxt[0] + 1, nxt[1] + int(args[i][j])))
            best[i][j] = max(options)
    pairs: list[tuple[int, int, bool]] = []
    i = j = 0
    while i < n and j < m:
        if tool[i][j]:
            nxt = best[i + 1][j + 1]
            if (nxt[0] + 1, nxt[1] + int(args[i][j])) == best[i][j]:
                pairs.append((i, j, args[i][j]))
                i, j = i + 1, j + 1
                continue
        if best[i + 1][j] == best[i][j]:
            i += 1
        else:
            j += 1
    return pairs


def score(pairs: list[tuple[int, int, bool]]) -> tuple[int, int]:
    return len(pairs), sum(a for _, _, a in pairs)


@dataclass
class PairAlignment:
    task_id: str
    category: str
    teacher_actions: list[str]
    by_index: list[tuple[bool, bool]]  # per teacher step: (same tool, same arguments) as the student's step k
    aligned: dict[int, tuple[int, bool]]  # teacher step -> (the student's step, same arguments)
    student_steps: int
    first_divergence: int | None  # None: the same actions to the end, on both sides

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "teacher_steps": len(self.teacher_actions), "student_steps": self.student_steps,
                "first_divergence": self.first_divergence,
                "steps": [{"step": k, "teacher_action": a, "index_same_tool": self.by_index[k][0],
                           "index_same_args": self.by_index[k][1],
                           "aligned_student_step": self.aligned[k][0] if k in self.aligned else None,
                           "aligned_same_args": self.aligned[k][1] if k in self.aligned else None}
                          for k, a in enumerate(self.teacher_actions)]}


def align_episodes(task_id: str, category: str, teacher: Episode, student: Episode) -> PairAlignment:
    t = [s.call for s in teacher.steps]
    s = [x.call for x in student.steps]
    by_index = [(k < len(s) and same_tool(t[k], s[k]), k < len(s) and same_args(t[k], s[k])) for k in range(len(t))]
    first = next((k for k, (_, a) in enumerate(by_index) if not a), None)
    if first is None and len(s) != len(t):
        first = len(t)  # the student went on (or stopped) where the teacher did not
    return PairAlignment(task_id, category, [action_name(c) for c in t], by_index,
                         {i: (j, a) for i, j, a in align(t, s)}, len(s), first)


PAIRING_RULE = ("each student trial against the teacher's trial of the same number; the teacher's first "
                "trial where the teacher has no trial of that number")


def pair_trials(teacher: list[Episode], student: list[Episode]) -> list[tuple[Episode, Episode, bool]]:
    """A task's (teacher episode, student episode, same trial number) pairs: each student trial with the
    teacher's trial of the same number, or the teacher's first trial (lowest number) where the teacher
    has none of that number. Empty when either side has no episode."""
    if not teacher:
        return []
    by_trial = {e.trial: e for e in teacher}
    first = min(teacher, key=lambda e: e.trial)
    return [(by_trial[s.trial], s, True) if s.trial in by_trial else (first, s, False) for s in student]


def pairing_summary(pairs: list[tuple[Episode, Episode, bool]]) -> dict[str, Any]:
    """How the trials were paired (`alignment.pairing`): the rule and how many pairs took each way."""
    same = sum(1 for *_, matched in pairs if matched)
    return {"rule": PAIRING_RULE, "same_trial": same, "teacher_first_trial": len(pairs) - same}


def _rates(marks: list[tuple[bool, bool]]) -> dict[str, Any]:
    n = len(marks)
    return {"steps": n, "same_tool": sum(a for a, _ in marks) / n if n else None,
            "same_args": sum(b for _, b in marks) / n if n else None}


def alignment_summary(items: list[tuple[str, str, Episode, Episode]]) -> dict[str, Any]:
    """Same-tool and same-arguments rates, by step index and aligned, overall, per step, per tool (the
    teacher's action) and per category, with the first divergence, over pairs (task, category,
    teacher episode, student episode)."""
    pairs = [align_episodes(*item) for item in items]
    index: list[tuple[bool, bool]] = []
    aligned: list[tuple[bool, bool]] = []
    by_step: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    by_step_aligned: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    by_tool: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    by_cat: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    extra = 0
    for p in pairs:
        for k, action in enumerate(p.teacher_actions):
            mark = p.by_index[k]
            got = (k in p.aligned, p.aligned[k][1] if k in p.aligned else False)
            index.append(mark)
            aligned.append(got)
            by_step[k].append(mark)
            by_step_aligned[k].append(got)
            by_tool[action].append(got)
            by_cat[p.category].append(got)
        extra += p.student_steps - len(p.aligned)
    diverged = [p.first_divergence for p in pairs if p.first_divergence is not None]
    histogram = Counter(diverged)
    return {
        "episodes": len(pairs),
        "by_index": {"overall": _rates(index), "by_step": {str(k): _rates(v) for k, v in sorted(by_step.items())}},
        "aligned": {"overall": _rates(aligned),
                    "by_step": {str(k): _rates(v) for k, v in sorted(by_step_aligned.items())},
                    "by_tool": {k: _rates(v) for k, v in sorted(by_tool.items())},
                    "by_category": {k: _rates(v) for k, v in sorted(by_cat.items())},
                    "student_steps_unaligned": extra},
        "first_divergence": {"episodes": len(pairs), "diverged": len(diverged),
                             "most_common_step": histogram.most_common(1)[0][0] if histogram else None,
                             "median_step": statistics.median(diverged) if diverged else None,
                             "by_step": {str(k): n for k, n in sorted(histogram.items())}},
        "basis": "recorded episodes, no model asked (by step index, and aligned in order by action)",
    }
