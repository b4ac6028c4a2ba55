"""Checking a judge against people (issue 30): the judge grades the trajectories a person rated
(good / bad / a score) or curated (accepted / rejected), and its verdicts are compared with those
labels: accuracy, Cohen's kappa, the confusion matrix and every label it disagreed with.

One function gives the figures `judge calibrate --json` prints and the Evaluation page shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cascade_studio.core.judges import (
    UNPARSEABLE,
    Judge,
    JudgeKind,
    cohen_kappa,
    confusion,
    label_passes,
)
from cascade_studio.core.tiers import generation_keys, teacher_of
from cascade_studio.services.judging import JudgeKindError, Judging, answer_inputs, episode_inputs, with_scale
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.judges import RatingRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

MIN_LABELS = 30  # fewer labels than this: the figures are shown with a warning
DEFAULT_MIN_KAPPA = 0.6


@dataclass
class _Labelled:
    trajectory_id: int
    task_id: str
    label: str
    human: bool
    inputs: dict[str, str]


def _candidate_text(final_answer: str | None, content: str | None, tool_calls: list[dict[str, Any]]) -> str:
    if final_answer:
        return final_answer
    if tool_calls:
        return "\n".join(f"CALL {c.get('name')} {json.dumps(c.get('arguments'), ensure_ascii=False)}"
                         for c in tool_calls)
    return content or ""


def _reference(expected: Any, teacher_answer: str | None) -> str | None:
    if isinstance(expected, dict) and isinstance(expected.get("final_answer"), str) and expected["final_answer"]:
        return expected["final_answer"]
    return teacher_answer


def labelled_inputs(ws: Workspace, judge: Judge) -> tuple[list[_Labelled], dict[str, int]]:
    """The people's labels the judge can grade, with the judge's inputs for each; and how many were
    left out, by reason."""
    if judge.kind == JudgeKind.PAIRWISE:
        raise JudgeKindError("a pairwise judge compares two answers; people's good/bad labels calibrate a "
                             "reference or rubric judge")
    rows = RatingRepository(ws).labels()
    skipped: dict[str, int] = {}
    if not rows:
        return [], skipped
    tasks = TaskRepository(ws).get_many(sorted({r[1] for r in rows}))
    repo, episodes = TrajectoryRepository(ws), EpisodeRepository(ws)
    teacher = teacher_of(TierRepository(ws).list())
    teacher_ids = repo.latest_ok_ids(teacher.tier, generation_keys(teacher)) if teacher else {}
    teacher_answers = {r[0]: r[1] for r in repo.by_ids(
        [teacher_ids[t] for t in {r[1] for r in rows} if t in teacher_ids], ["task_id", "final_answer"])}
    details = {r[0]: r[1:] for r in repo.by_ids([r[0] for r in rows], ["id", "final_answer", "content", "tool_calls"])}
    out = []
    for traj_id, task_id, tier, _generation, rating, curation in rows:
        label = rating or curation or ""
        human = label_passes(label, judge)
        task = tasks.get(task_id)
        if human is None:
            skipped["label not pass/fail"] = skipped.get("label not pass/fail", 0) + 1
            continue
        if task is None:
            skipped["task deleted"] = skipped.get("task deleted", 0) + 1
            continue
        own_teacher = teacher is not None and tier == teacher.tier
        reference = _reference(task.expected, None if own_teacher else teacher_answers.get(task_id))
        episode = episodes.of_trajectory(traj_id, with_logprobs=False) if task.is_episode else None
        if episode is not None and episode.steps and judge.kind == JudgeKind.RUBRIC:
            inputs = episode_inputs(task.prompt, episode, reference)
        else:
            final, content, calls = details.get(traj_id, (None, None, "[]"))
            candidate = (episode.final_answer if episode is not None else None) or _candidate_text(
                final, content, json.loads(calls or "[]"))
            if judge.kind == JudgeKind.REFERENCE and not reference:
                skipped["no reference answer"] = skipped.get("no reference answer", 0) + 1
                continue
            inputs = answer_inputs(judge, task.prompt, candidate, reference)
        out.append(_Labelled(traj_id, task_id, label, human, with_scale(judge, inputs)))
    return out, skipped


async def calibrate(ws: Workspace, judge: Judge, secrets: SecretStore, *, dry_run: bool = False,
                    min_kappa: float = DEFAULT_MIN_KAPPA, stored_only: bool = False,
                    batch: bool = False) -> dict[str, Any]:
    """The judge's agreement with people's labels (the figures of `judge calibrate --json`). With
    `dry_run` nothing is sent: the figures cover the labels already judged (`pending`: the others),
    and `stored_only` skips the cost estimate too (the Evaluation page's look, free and quick)."""
    items, skipped = labelled_inputs(ws, judge)
    session = Judging(ws, judge, secrets, dry_run=dry_run or stored_only, stored_only=stored_only, batch=batch)
    verdicts = await session.verdicts([i.inputs for i in items])
    truth: list[bool] = []
    predicted: list[bool] = []
    disagreements = []
    per_label = []
    unparseable = failed = pending = 0
    for item, verdict in zip(items, verdicts, strict=True):
        passed = None if verdict is None else judge.passes(verdict)
        per_label.append({"trajectory_id": item.trajectory_id, "task_id": item.task_id, "label": item.label,
                          "label_passes": item.human, "verdict": verdict, "verdict_passes": passed})
        if verdict is None:
            if session.dry_run:
                pending += 1
            else:
                failed += 1
            continue
        if verdict == UNPARSEABLE or passed is None:
            unparseable += 1
            continue
        truth.append(item.human)
        predicted.append(passed)
        if passed != item.human:
            disagreements.append(per_label[-1])
    n = len(truth)
    kappa = cohen_kappa(truth, predicted)
    warnings = []
    if n < MIN_LABELS:
        warnings.append(f"only {n} labels were judged; at least {MIN_LABELS} are needed before the judge is trusted")
    if kappa is not None and kappa < min_kappa:
        warnings.append(f"kappa {kappa:.2f} is below {min_kappa:g}: the judge does not agree with people well enough")
    if kappa is None and n:
        warnings.append("kappa is undefined: the labels and verdicts all fall in one class")
    return {
        **session.totals.to_json(),
        "labels": len(items) + sum(skipped.values()), "judged": n, "unparseable": unparseable, "failed": failed,
        "pending": pending, "skipped": skipped,
        "accuracy": (sum(t == p for t, p in zip(truth, predicted, strict=True)) / n) if n else None,
        "kappa": kappa, "min_kappa": min_kappa,
        "confusion_matrix": {"labels": ["fail", "pass"], "rows": "people", "columns": "judge",
                             "matrix": confusion(truth, predicted)},
        "disagreements": disagreements, "per_label": per_label, "warnings": warnings,
        "trusted": bool(n >= MIN_LABELS and kappa is not None and kappa >= min_kappa),
    }
