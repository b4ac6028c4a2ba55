"""Evaluating agents: step agreement (teacher-forced), episode success (free-running), and the
cost and quality of a cascade that escalates in the middle of an episode.

- **Step agreement**: at step k of a teacher episode the student is given the teacher's
  conversation up to k and its next action is compared with the teacher's (same tools, same
  arguments, or the same answer) by core.evaluation.compare, the single-request rules.
- **Episode success**: the outcome recorded with the episode, else the task's state check
  (expected.check) when it ran, else the expected final answer (contained in the answer,
  case-insensitive), else a judge's verdict, else agreement with the teacher's answer (SUCCESS_BASES);
  two sides are compared only over tasks judged on the same basis (same_basis_comparison); trials
  give pass^k (trial_figures).
- **Per-step cascade** (estimates from teacher-forced steps): a tier acts at each step; below its
  threshold that step (policy "step") or the rest of the episode (policy "rest") goes up a tier.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from math import comb
from typing import Any

import numpy as np

from cascade_studio.core import agreement as ag
from cascade_studio.core.confidence import CONF_COLUMNS
from cascade_studio.core.episode import Episode
from cascade_studio.core.evaluation import Side, TaskResult, compare
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.trajectory import Trajectory

POLICIES = ("step", "rest")


def side_of(call: Trajectory) -> Side:
    return Side(call.tool_calls, call.final_answer, call.content if call.tool_calls else None,
                ag.decision_top(call.logprobs, call.tool_name),
                {m: call.confidence(m) for m in CONF_COLUMNS}, call.cost_micro, call.latency_ms)


@dataclass(slots=True)
class StepResult:
    task_id: str
    category: str
    step: int
    teacher_action: str  # the teacher's tool at this step (several: joined by "+"), or "answer"
    result: TaskResult
    student_cost_micro: int = 0
    teacher_cost_micro: int = 0

    @property
    def agrees(self) -> bool:
        return self.result.agrees


def compare_step(task_id: str, category: str, step: int, teacher: Trajectory, student: Trajectory) -> StepResult:
    result = compare(task_id, category, side_of(teacher), side_of(student))
    action = "+".join(sorted(c["name"] for c in teacher.tool_calls)) if teacher.tool_calls else "answer"
    return StepResult(task_id, category, step, action, result, student.cost_micro, teacher.cost_micro)


def _rates(results: list[StepResult]) -> dict[str, Any]:
    answered = [r.result.answer_agree for r in results if r.result.answer_agree is not None]
    return {"steps": len(results), "agreement": _mean([r.agrees for r in results]),
            "tool_agreement": _mean([r.result.tool_agree for r in results]),
            "args_agreement": _mean([r.result.args_agree for r in results]),
            "answer_agreement": _mean(answered) if answered else None,
            "kl_mean": _mean([r.result.kl for r in results if r.result.kl is not None])}


def _mean(values: list[Any]) -> float | None:
    return float(sum(values)) / len(values) if values else None


def first_divergences(results: list[StepResult]) -> dict[str, int | None]:
    """Task -> the first step (0-based) where the student did not take the teacher's action (None: never)."""
    by_task: dict[str, list[StepResult]] = defaultdict(list)
    for r in results:
        by_task[r.task_id].append(r)
    return {task: next((r.step for r in sorted(rs, key=lambda r: r.step) if not r.agrees), None)
            for task, rs in by_task.items()}


def step_summary(results: list[StepResult]) -> dict[str, Any]:
    """Overall, by step index, by the teacher's action (tool) and by category; and where episodes
    first diverge (the most useful number: the step students usually get wrong first)."""
    by_step: dict[int, list[StepResult]] = defaultdict(list)
    by_tool: dict[str, list[StepResult]] = defaultdict(list)
    by_cat: dict[str, list[StepResult]] = defaultdict(list)
    for r in results:
        by_step[r.step].append(r)
        by_tool[r.teacher_action].append(r)
        by_cat[r.category].append(r)
    firsts = first_divergences(results)
    diverged = [s for s in firsts.values() if s is not None]
    histogram = Counter(diverged)
    return {
        "overall": _rates(results),
        "by_step": {str(k): _rates(v) for k, v in sorted(by_step.items())},
        "by_tool": {k: _rates(v) for k, v in sorted(by_tool.items())},
        "by_category": {k: _rates(v) for k, v in sorted(by_cat.items())},
        "first_divergence": {
            "episodes": len(firsts), "diverged": len(diverged),
            "most_common_step": histogram.most_common(1)[0][0] if histogram else None,
            "median_step": statistics.median(diverged) if diverged else None,
            "by_step": {str(k): n for k, n in sorted(histogram.items())}},
    }


# -- free-running episodes --------------------------------------------------------------------------
# What decides an episode's success, strongest first: the outcome recorded with it (an agent
# benchmark's reward), the task's state check, the task's expected final answer, a judge's verdict
# (given by the caller: the LLM judge of issue 30), agreement with the teacher's answer (text match).
SUCCESS_BASES = ("outcome", "check", "expected_answer", "judge", "text_match", "none")
BASIS_LABELS = {"outcome": "recorded outcome", "check": "state check", "expected_answer": "expected answer",
                "judge": "judge", "text_match": "text match with the teacher", "none": "nothing"}


def episode_success(episode: Episode, expected: Any, teacher_answer: str | None = None, *,
                    judge: bool | None = None) -> tuple[bool | None, str]:
    """(success, what judged it): one of SUCCESS_BASES, the first that can judge it."""
    if episode.outcome is not None and episode.outcome.get("success") is not None:
        return bool(episode.outcome["success"]), "outcome"
    if episode.check_passed is not None:
        return episode.check_passed, "check"
    answer = episode.final_answer
    if isinstance(expected, dict) and isinstance(expected.get("final_answer"), str) and expected["final_answer"]:
        return (answer is not None and expected["final_answer"].lower() in answer.lower()), "expected_answer"
    if judge is not None:
        return bool(judge), "judge"
    if teacher_answer is not None:
        return (answer is not None and ag.answers_match(answer, teacher_answer)), "text_match"
    return None, "none"


def _known_mean(values: list[float | None]) -> tuple[float | None, int]:
    """(mean of the known values, how many were unknown): unknown is left out, never zero."""
    known = [v for v in values if v is not None]
    return (sum(known) / len(known) if known else None), len(values) - len(known)


def episode_side_summary(rows: list[tuple[Episode, bool | None, str]]) -> dict[str, Any]:
    """One side's free-running figures: success (and what judged it), steps, cost, wall time, how the
    episodes ended, success per trial. Unknown costs and times are left out of their means, counted."""
    judged = [ok for _, ok, _ in rows if ok is not None]
    by_basis: dict[str, list[bool]] = defaultdict(list)
    by_trial: dict[int, list[bool]] = defaultdict(list)
    for e, ok, basis in rows:
        if ok is not None:
            by_basis[basis].append(ok)
            by_trial[e.trial].append(ok)
    cost, cost_unknown = _known_mean([e.cost_micro if e.known("cost") else None for e, _, _ in rows])
    wall, wall_unknown = _known_mean([e.wall_ms if e.known("latency") else None for e, _, _ in rows])
    rewards = [e.outcome["reward"] for e, _, _ in rows if e.outcome and e.outcome.get("reward") is not None]
    user_cost, _ = _known_mean([e.user_cost_micro for e, _, _ in rows])
    return {
        "episodes": len(rows),
        "success_rate": _mean(judged) if judged else None,
        "judged_by": dict(Counter(basis for _, _, basis in rows)),
        "success_by_basis": {b: {"episodes": len(v), "success_rate": _mean(v)} for b, v in sorted(by_basis.items())},
        "success_by_trial": {str(t): {"episodes": len(v), "success_rate": _mean(v)}
                             for t, v in sorted(by_trial.items())},
        "mean_reward": _mean(rewards) if rewards else None,
        "steps_mean": _mean([len(e.steps) for e, _, _ in rows]),
        "cost_per_episode_usd": None if cost is None else str(micro_to_usd(round(cost))),
        "cost_unknown": cost_unknown,
        "wall_s_mean": None if wall is None else round(wall / 1000, 3),
        "wall_unknown": wall_unknown,
        "user_cost_per_episode_usd": None if user_cost is None else str(micro_to_usd(round(user_cost))),
        "end_reasons": dict(Counter(e.end_reason or "?" for e, _, _ in rows)),
    }


def pass_hat_k(trials: int, successes: int, k: int) -> float:
    """The chance that k trials drawn (without replacement) from a task's `trials` all succeed."""
    if not 1 <= k <= trials:
        raise ValueError(f"k must be 1..{trials}")
    return comb(successes, k) / comb(trials, k)


def trial_figures(per_task: dict[str, list[bool | None]]) -> dict[str, Any]:
    """pass^1..pass^K over tasks (K: the fewest trials a task has): pass^k = mean over tasks of
    C(c, k) / C(n, k) for c successes in n trials. A task with an unjudged trial is left out (counted)."""
    judged = {t: v for t, v in per_task.items() if v and all(x is not None for x in v)}
    out: dict[str, Any] = {"tasks": len(judged), "left_out": len(per_task) - len(judged), "trials_min": None,
                           "trials_max": None, "pass_k": {}}
    if not judged:
        return out
    kmax = min(len(v) for v in judged.values())
    out["trials_min"], out["trials_max"] = kmax, max(len(v) for v in judged.values())
    out["pass_k"] = {str(k): sum(pass_hat_k(len(v), sum(bool(x) for x in v), k) for v in judged.values())
                     / len(judged) for k in range(1, kmax + 1)}
    return out


def same_basis_comparison(teacher: dict[str, list[tuple[bool | None, str]]],
                          student: dict[str, list[tuple[bool | None, str]]]) -> dict[str, Any]:
    """Success of both sides over only the tasks judged on one and the same basis on both sides (a
    student judged by text match is never set against a teacher judged by expected answers); says how
    many tasks were left out and why."""
    common = [t for t in teacher if t in student]
    compared: list[str] = []
    unjudged = different = 0
    bases: Counter[str] = Counter()
    for task in common:
        tb = {b for _, b in teacher[task]}
        sb = {b for _, b in student[task]}
        if "none" in tb | sb:
            unjudged += 1
        elif len(tb) == 1 and tb == sb:
            compared.append(task)
            bases[next(iter(tb))] += 1
        else:
            different += 1

    def rate(side: dict[str, list[tuple[bool | None, str]]]) -> float | None:
        oks = [ok for t in compared for ok, _ in side[t] if ok is not None]
        return _mean(oks) if oks else None

    return {"tasks": len(compared), "left_out": len(common) - len(compared), "left_out_unjudged": unjudged,
            "left_out_different_basis": different, "basis": dict(bases),
            "teacher_success": rate(teacher), "student_success": rate(student)}


def episode_lines(episodes: dict[str, Any]) -> list[str]:
    """The free-running figures (services.agent.evaluation.episode_comparison's JSON) in words, for the
    CLI and the GUI alike: each side's success and what judged it, pass^k, the same-basis comparison,
    step alignment; unknown costs and times say so."""
    lines = []
    for side in ("teacher", "student"):
        e = episodes[side]
        basis = ", ".join(f"{BASIS_LABELS.get(b, b)} {n}" for b, n in e["judged_by"].items())
        cost = "cost unknown" if e["cost_per_episode_usd"] is None else f"${e['cost_per_episode_usd']}"
        wall = "time unknown" if e["wall_s_mean"] is None else f"{e['wall_s_mean']:.1f} s"
        unknown = [f"{what} unknown for {n}" for what, n in (("cost", e["cost_unknown"]), ("time", e["wall_unknown"]))
                   if n and n < e["episodes"]]
        lines.append(f"Episodes, {side}: success {_pct_text(e['success_rate'])} of {e['episodes']} (judged by "
                     f"{basis}), {e['steps_mean']:.1f} steps, {cost} and {wall} per episode"
                     + (f" ({'; '.join(unknown)}: left out of the means)" if unknown else ""))
        trials = e.get("trials") or {}
        if (trials.get("trials_max") or 0) > 1:
            lines.append("  trials: " + ", ".join(f"trial {t} {_pct_text(v['success_rate'])}"
                                                   for t, v in e["success_by_trial"].items())
                         + "; " + ", ".join(f"pass^{k} {_pct_text(v)}" for k, v in trials["pass_k"].items())
                         + f" over {trials['tasks']} tasks" + (f" ({trials['left_out']} left out: a trial unjudged)"
                                                             if trials["left_out"] else ""))
    c = episodes.get("compared")
    if c is not None:
        if c["tasks"]:
            lines.append(f"Compared on the same basis ({', '.join(f'{BASIS_LABELS.get(b, b)} {n}' for b, n in c['basis'].items())}):"
                         f" teacher {_pct_text(c['teacher_success'])}, student {_pct_text(c['student_success'])}"
                         f" over {c['tasks']} tasks; {c['left_out']} left out")
        else:
            lines.append(f"No task is judged on the same basis for both sides ({c['left_out']} left out): the success "
                         "figures above are not comparable")
    a = episodes.get("alignment")
    if a and a["episodes"]:
        idx, al = a["by_index"]["overall"], a["aligned"]["overall"]
        first = a["first_divergence"]
        lines.append(f"Step alignment (recorded episodes): by index same tool {_pct_text(idx['same_tool'])}, same "
                     f"arguments {_pct_text(idx['same_args'])}; aligned same tool {_pct_text(al['same_tool'])}, "
                     f"same arguments {_pct_text(al['same_args'])} of {al['steps']} teacher steps"
                     + (f"; {first['diverged']} of {first['episodes']} diverge, most often first at step "
                        f"{first['most_common_step'] + 1}" if first["diverged"] else "")
                     + _pairing_text(a.get("pairing")))
    return lines


def _pairing_text(pairing: dict[str, Any] | None) -> str:
    """Which teacher trial each student trial was aligned with (only said when there were several)."""
    if not pairing or not pairing["teacher_first_trial"] and pairing["same_trial"] <= 1:
        return ""
    return (f" (student trials paired with the teacher's trial of the same number: {pairing['same_trial']}; "
            f"with the teacher's first trial, the teacher having no such trial: {pairing['teacher_first_trial']})")


def _pct_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


# -- the cascade per step (estimates from teacher-forced steps) -------------------------------------
@dataclass
class EpisodeSteps:
    """One teacher episode with, at every step, each student tier's teacher-forced action: its
    confidence, cost and whether it agreed. Students in tier order; the teacher is the top tier."""

    task_id: str
    category: str
    teacher_cost: list[int]  # per step, micro-dollars
    confidence: list[list[float | None]] = field(default_factory=list)  # [student][step]
    cost: list[list[int]] = field(default_factory=list)  # [student][step]
    agrees: list[list[bool]] = field(default_factory=list)  # [student][step]


def simulate(episodes: list[EpisodeSteps], thresholds: list[float], policy: str = "step") -> dict[str, Any]:
    """The cascade at `thresholds` (one per student tier), brute force, episode by episode: cost per
    episode, the share of steps each tier answered, step agreement and the share of episodes whose
    every step agreed (an estimate of success). A step with no confidence escalates."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}")
    tiers = len(thresholds) + 1
    answered = [0] * tiers
    total_cost = 0
    agree_steps = 0
    whole = 0
    steps = 0
    for ep in episodes:
        escalated_from = 0  # policy "rest": the lowest tier still acting
        all_agree = True
        for k, teacher_cost in enumerate(ep.teacher_cost):
            steps += 1
            chosen = tiers - 1
            for s in range(escalated_from if policy == "rest" else 0, tiers - 1):
                total_cost += ep.cost[s][k]
                conf = ep.confidence[s][k]
                if conf is not None and conf >= thresholds[s]:
                    chosen = s
                    break
                if policy == "rest":
                    escalated_from = s + 1
            if chosen == tiers - 1:
                total_cost += teacher_cost
                agree = True
            else:
                agree = ep.agrees[chosen][k]
            answered[chosen] += 1
            agree_steps += agree
            all_agree = all_agree and agree
        whole += all_agree
    n = len(episodes)
    return {"thresholds": list(thresholds), "policy": policy, "episodes": n, "steps": steps,
            "cost_per_episode_micro": total_cost / n if n else 0.0,
            "share_answered": [a / steps if steps else 0.0 for a in answered],
            "step_agreement": agree_steps / steps if steps else None,
            "episode_agreement": whole / n if n else None}


def sweep(episodes: list[EpisodeSteps], policy: str = "step", grid: int = 101) -> list[dict[str, Any]]:
    """The two-tier cascade (the first student and the teacher) at every threshold of a grid, with
    numpy: cost per episode and step agreement per threshold (the same figures as `simulate`)."""
    if not episodes:
        return []
    ts = np.round(np.linspace(0.0, 1.0, grid), 6)  # the thresholds reported, exactly
    n = len(episodes)
    cost = np.zeros(grid)
    agree = np.zeros(grid)
    whole = np.zeros(grid)
    steps = 0
    for ep in episodes:
        conf = np.array([-1.0 if c is None else c for c in ep.confidence[0]])
        ok = np.array(ep.agrees[0], dtype=bool)
        s_cost = np.array(ep.cost[0], dtype=float)
        t_cost = np.array(ep.teacher_cost, dtype=float)
        keep = conf[None, :] >= ts[:, None]  # [grid, steps]: the student's action is used
        if policy == "rest":
            keep = np.cumprod(keep, axis=1).astype(bool)  # once escalated, the teacher acts to the end
            paid = np.concatenate([np.ones((grid, 1), bool), keep[:, :-1]], axis=1)  # the student tried
        else:
            paid = np.ones_like(keep)
        cost += (paid * s_cost).sum(axis=1) + (~keep * t_cost).sum(axis=1)
        step_ok = np.where(keep, ok[None, :], True)
        agree += step_ok.sum(axis=1)
        whole += step_ok.all(axis=1)
        steps += len(ep.teacher_cost)
    return [{"threshold": float(t), "cost_per_episode_micro": float(c / n),
             "step_agreement": float(a / steps) if steps else None, "episode_agreement": float(w / n)}
            for t, c, a, w in zip(ts, cost, agree, whole, strict=True)]


def pareto(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both cost (lower) and step agreement (higher)."""
    ordered = sorted(points, key=lambda p: (p["cost_per_episode_micro"], -(p["step_agreement"] or 0)))
    out, best = [], -1.0
    for p in ordered:
        if (p["step_agreement"] or 0) > best + 1e-12:
            out.append(p)
            best = p["step_agreement"] or 0
    return out
