"""Judged figures of an evaluation (issue 30): answer agreement by a judge where both sides answered
in text, and episode success by a judge where nothing better judges an episode.

Every figure names its judge, the template version, and how many verdicts were unparseable or
failed; a figure that mixes judged and matched verdicts says how many of each it holds.
"""

from __future__ import annotations

from typing import Any

from cascade_studio.core.episode import Episode
from cascade_studio.core.evaluation import TaskResult
from cascade_studio.core.judges import Judge, JudgeKind
from cascade_studio.core.tiers import Tier
from cascade_studio.services.evaluation import latest_sides
from cascade_studio.services.judging import (
    Judging,
    agreement_of_pair,
    answer_inputs,
    judge_episodes,
    with_scale,
)
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


async def judged_answer_agreement(ws: Workspace, judge: Judge, teacher: Tier, student: Tier,
                                  results: list[TaskResult], secrets: SecretStore, *,
                                  dry_run: bool = False, batch: bool = False) -> dict[str, Any]:
    """The student's answer agreement with the teacher by `judge`, on the tasks both answered in text
    (tool calls stay with exact matching, which is right for them). A reference or rubric judge
    grades the student's answer with the teacher's as the reference; a pairwise judge compares the
    two (both orders) and counts a tie or a better student answer as agreement."""
    text = [r for r in results if r.answer_agree is not None]
    ids = [r.task_id for r in text]
    t_sides, s_sides = latest_sides(ws, teacher, ids), latest_sides(ws, student, ids)
    tasks = TaskRepository(ws).get_many(ids)
    ids = [t for t in ids if t in t_sides and t in s_sides]
    session = Judging(ws, judge, secrets, dry_run=dry_run, batch=batch)
    questions = {t: tasks[t].prompt if t in tasks else "" for t in ids}
    if judge.kind == JudgeKind.PAIRWISE:
        pairs = [{"question": questions[t], "answer_a": t_sides[t].answer or "", "answer_b": s_sides[t].answer or ""}
                 for t in ids]
        verdicts = [agreement_of_pair(v) for v in await session.pairwise(pairs)]
    else:
        verdicts = await session.passes([with_scale(judge, answer_inputs(judge, questions[t], s_sides[t].answer or "",
                                                                         t_sides[t].answer or "")) for t in ids])
    by_task = dict(zip(ids, verdicts, strict=True))
    judged = [t for t in ids if by_task[t] is not None]
    matched = {r.task_id: r for r in results}
    mixed = [by_task[r.task_id] if by_task.get(r.task_id) is not None else r.agrees for r in results]
    return {
        **session.totals.to_json(),
        "basis": session.totals.named(),
        "answer_agreement": _mean([bool(by_task[t]) for t in judged]),
        "text_tasks": len(text), "judged_tasks": len(judged),
        "not_judged": len(text) - len(judged),  # unparseable verdicts and failed requests
        "text_match_on_judged_tasks": _mean([bool(matched[t].answer_agree) for t in judged]),
        "agreement_mixed": {"value": _mean([bool(v) for v in mixed]), "judged": len(judged),
                            "matched": len(results) - len(judged),
                            "note": "text answers judged, tool calls matched exactly"},
        "per_task": {t: by_task[t] for t in ids},
    }


def judge_totals(out: dict[str, Any]) -> dict[str, Any]:
    """The judge's part of an evaluation's totals (`evaluate --judge`'s "judge_totals", the Evaluation
    page's cost question): requests sent (or to send), verdicts reused, cost, over both uses (answer
    agreement in out["judged"], episode success in out["episodes"]["judge"])."""
    from decimal import Decimal

    parts = [p for p in (out.get("judged"), (out.get("episodes") or {}).get("judge")) if p and "requests" in p]
    return {"judge": parts[0]["judge"] if parts else None, "requests": sum(p["requests"] for p in parts),
            "reused": sum(p["reused"] for p in parts), "failed": sum(p["failed"] for p in parts),
            "unparseable": sum(p["unparseable"] for p in parts),
            "cost_usd": str(sum((Decimal(p["cost_usd"]) for p in parts), Decimal(0))),
            "cost_unknown_requests": sum(p["cost_unknown_requests"] for p in parts),
            "estimate": any(p["estimate"] for p in parts)}


def needs_judge(episode: Episode, expected: Any) -> bool:
    """An episode that nothing better judges: no outcome was recorded with it, no state check ran and the
    task expects no answer (core.episode_eval.SUCCESS_BASES)."""
    if episode.outcome is not None and episode.outcome.get("success") is not None:
        return False
    has_answer = isinstance(expected, dict) and isinstance(expected.get("final_answer"), str) and \
        bool(expected["final_answer"])
    return episode.check_passed is None and not has_answer


async def judged_episode_success(ws: Workspace, judge: Judge, sides: dict[str, dict[str, list[Episode]]],
                                 secrets: SecretStore, *, include_checked: bool = False, dry_run: bool = False,
                                 batch: bool = False) -> tuple[dict[str, dict[tuple[str, int], bool | None]], dict[str, Any]]:
    """Episode success by `judge` for every trial of each side ({"teacher": {task: [Episode per
    trial]}, "student": ...}), on the episodes `needs_judge` picks (all of them with `include_checked`,
    to measure the judge against the state checks). The student's episodes get the teacher's first
    trial's final answer as a reference (as the comparison pairs them when trials differ).
    Returns ({side: {(task, trial): verdict}}, the judge's totals and, with include_checked, its
    agreement with the state checks on episodes that have both)."""
    if judge.kind == JudgeKind.PAIRWISE:
        return {side: {} for side in sides}, {"judge": judge.name, "episodes_judged": 0,
                                               "note": "a pairwise judge compares answers; episode success needs "
                                                       "a rubric or reference judge"}
    tasks = TaskRepository(ws).get_many(sorted({t for eps in sides.values() for t in eps}))
    items: dict[str, tuple[str, Episode, str | None]] = {}
    by_key: dict[str, tuple[str, Episode]] = {}
    no_reference = 0
    for side, episodes in sides.items():
        for task_id, trials in episodes.items():
            task = tasks.get(task_id)
            teacher = (sides.get("teacher", {}).get(task_id) or [None])[0]
            reference = teacher.final_answer if side != "teacher" and teacher is not None else None
            for episode in trials:
                if task is None or not (include_checked or needs_judge(episode, task.expected)):
                    continue
                if judge.kind == JudgeKind.REFERENCE and not reference:
                    no_reference += 1  # a reference judge has nothing to compare the teacher's own answer with
                    continue
                key = f"{side}\t{task_id}\t{episode.trial}"
                items[key] = (task.prompt, episode, reference)
                by_key[key] = (side, episode)
    verdicts, totals = await judge_episodes(ws, judge, items, secrets, dry_run=dry_run, batch=batch)
    out: dict[str, dict[tuple[str, int], bool | None]] = {side: {} for side in sides}
    for key, verdict in verdicts.items():
        side, episode = by_key[key]
        out[side][(episode.task_id, episode.trial)] = verdict
    report = {**totals.to_json(), "basis": totals.named(), "episodes_judged": len(items),
              "without_reference": no_reference}
    if include_checked:
        both = [(verdicts[k], e.check_passed) for k, (_, e) in by_key.items()
                if verdicts.get(k) is not None and e.check_passed is not None]
        report["against_state_checks"] = {
            "episodes": len(both), "agreement": _mean([v == c for v, c in both]),
            "judged_success": _mean([bool(v) for v, _ in both]), "check_success": _mean([bool(c) for _, c in both])}
    return out, report


async def judge_outcomes(ws: Workspace, judge: Judge, tiers: list[Tier], outcomes: Any, secrets: SecretStore, *,
                         dry_run: bool = False, batch: bool = False,
                         generations: dict[int, Any] | None = None) -> dict[str, Any]:
    """Trade-offs with quality = judged (issue 30): on an agreement basis, each student tier's quality
    on the tasks where it and the teacher both answered in text becomes the judge's verdict (its answer
    against the teacher's); tool calls keep exact matching, and unparseable or failed verdicts keep the
    text match. `outcomes` (services.tradeoffs.load_outcomes) is changed in place and its basis
    becomes "judged". `generations` ({tier: generation ids}) as load_outcomes was given them (an
    earlier generation of a tier). Returns what was judged, for the figure's name."""
    if outcomes.quality_basis != "agreement" or outcomes.n == 0:
        return {"applied": False, "note": f"quality is {outcomes.quality_basis}: nothing for a judge to replace"}
    tiers = sorted(tiers, key=lambda t: t.tier)
    teacher = tiers[-1]
    row = {t: i for i, t in enumerate(outcomes.task_ids)}
    chosen = generations or {}
    t_sides = latest_sides(ws, teacher, outcomes.task_ids, generations=chosen.get(teacher.tier))
    text_tasks = [t for t in outcomes.task_ids if t in t_sides and not t_sides[t].tool_calls and t_sides[t].answer]
    questions = {t: task.prompt for t, task in TaskRepository(ws).get_many(text_tasks).items()}
    session = Judging(ws, judge, secrets, dry_run=dry_run, batch=batch)
    per_tier: dict[str, dict[str, int]] = {}
    for j, tier in enumerate(tiers[:-1]):
        s_sides = latest_sides(ws, tier, text_tasks, generations=chosen.get(tier.tier))
        ids = [t for t in text_tasks if t in s_sides and not s_sides[t].tool_calls and s_sides[t].answer]
        if judge.kind == JudgeKind.PAIRWISE:
            verdicts = [agreement_of_pair(v) for v in await session.pairwise(
                [{"question": questions.get(t, ""), "answer_a": t_sides[t].answer or "",
                  "answer_b": s_sides[t].answer or ""} for t in ids])]
        else:
            verdicts = await session.passes([with_scale(judge, answer_inputs(
                judge, questions.get(t, ""), s_sides[t].answer or "", t_sides[t].answer or "")) for t in ids])
        judged = 0
        for task_id, verdict in zip(ids, verdicts, strict=True):
            if verdict is not None:
                outcomes.quality[row[task_id], j] = float(verdict)
                judged += 1
        per_tier[str(tier.tier)] = {"text_tasks": len(ids), "judged": judged, "matched": outcomes.n - judged}
    applied = any(v["judged"] for v in per_tier.values())
    if applied:
        outcomes.quality_basis = "judged"
    return {"applied": applied, **session.totals.to_json(), "basis": session.totals.named(), "tiers": per_tier,
            "note": "text answers judged against the teacher's; tool calls and unjudged answers matched"}
