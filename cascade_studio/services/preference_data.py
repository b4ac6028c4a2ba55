"""Preference datasets from disagreements: on each task that the teacher (its curated trajectories,
as a supervised build selects them) and a student tier both answered, the pair is kept when the
evaluation's agreement rule says they disagree: the teacher's answer preferred, the student's not.
Written and recorded like every dataset (services.datasets: all files of a build or none)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cascade_studio.core.agreement import offline_similarity
from cascade_studio.core.datasets import (
    SourceTrajectory,
    assistant_message,
    example_messages,
    stratified_split,
)
from cascade_studio.core.evaluation import compare
from cascade_studio.core.preference import preference_example
from cascade_studio.core.tiers import Tier, generation_keys, teacher_of
from cascade_studio.services.datasets import (
    BATCH,
    BuiltDataset,
    DatasetError,
    DatasetFilters,
    _build_files,
    _remove_stale_temps,
    _select,
    _validation_path,
    complete_interrupted_build,
)
from cascade_studio.services.evaluation import sides_of
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

AGREEMENT_BASIS = ("the evaluation's agreement rule (same tools and arguments; text answers equal after "
                   "normalisation or offline similarity >= 0.9)")


@dataclass
class _Pairs:
    """Pass 1: the tasks where teacher and student disagree, as (teacher id, student id)."""

    teacher_ids: list[int] = field(default_factory=list)
    student_ids: list[int] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    agreed: int = 0
    no_student: int = 0
    episodes: int = 0
    duplicates: int = 0


def _tiers(ws: Workspace, f: DatasetFilters) -> tuple[Tier, Tier]:
    tiers = TierRepository(ws).list()
    teacher = teacher_of(tiers) if f.tier is None else next((t for t in tiers if t.tier == f.tier), None)
    if teacher is None:
        raise DatasetError(f"no tier {f.tier}; see `tiers list`")
    others = sorted((t for t in tiers if t.tier != teacher.tier), key=lambda t: t.tier)
    if f.student is None:
        if not others:
            raise DatasetError("preference pairs need a student tier besides the teacher's: define one and collect "
                               "its answers on the teacher's tasks")
        return teacher, others[0]
    student = next((t for t in others if t.tier == f.student), None)
    if student is None:
        raise DatasetError(f"tier {f.student} is not a student here (the teacher is tier {teacher.tier}); "
                           "see `tiers list`")
    return teacher, student


def _disagreements(ws: Workspace, f: DatasetFilters, student: Tier) -> _Pairs:
    sel = _select(ws, f)
    if not sel.ids:
        raise DatasetError("no trajectories match the filters (ok, not rejected, of the chosen tier); collect or "
                           "curate some first, or loosen the filters")
    repo = TrajectoryRepository(ws)
    student_latest = repo.latest_ok_ids(student.tier, generation_keys(student))
    out = _Pairs(duplicates=sel.dropped)
    for start in range(0, len(sel.kept_ids), BATCH):
        ids = sel.kept_ids[start:start + BATCH]
        tasks = sel.kept_tasks[start:start + BATCH]
        cats = sel.kept_categories[start:start + BATCH]
        episodes = {r[0] for r in repo.by_ids(ids, ("id", "episode")) if r[1]}
        t_sides = sides_of(ws, [i for i in ids if i not in episodes])
        s_sides = sides_of(ws, [student_latest[t] for t in tasks if t in student_latest])
        for traj_id, task_id, category in zip(ids, tasks, cats, strict=True):
            if traj_id in episodes:  # a multi-turn episode is not one answer to one prompt
                out.episodes += 1
                continue
            t, s = t_sides.get(task_id), s_sides.get(task_id)
            if t is None or s is None:
                out.no_student += 1
                continue
            both_text = not t.tool_calls and not s.tool_calls and t.answer and s.answer
            similarity = offline_similarity(t.answer, s.answer) if both_text else None
            if compare(task_id, category, t, s, answer_similarity=similarity).agrees:
                out.agreed += 1
                continue
            out.teacher_ids.append(traj_id)
            out.student_ids.append(s.trajectory_id)
            out.tasks.append(task_id)
            out.categories.append(category)
    return out


def _lines(ws: Workspace, pairs: list[tuple[int, int]], f: DatasetFilters) -> Iterator[str]:
    """The JSONL lines of the pairs (teacher id, student id), BATCH pairs at a time."""
    repo = TrajectoryRepository(ws)
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start:start + BATCH]
        teachers = {r[0]: r for r in repo.by_ids([t for t, _ in chunk], ("id", "task_id", "category", "request",
                                                                           "content", "tool_calls"))}
        students = {r[0]: r for r in repo.by_ids([s for _, s in chunk], ("id", "content", "tool_calls"))}
        for t_id, s_id in chunk:
            _, task_id, category, request_json, content, calls = teachers[t_id]
            request = orjson.loads(request_json)
            teacher = SourceTrajectory(task_id, category, request.get("messages", []), request.get("tools") or [],
                                       content, orjson.loads(calls))
            s = students[s_id]
            student = SourceTrajectory(task_id, category, [], [], s[1], orjson.loads(s[2]))
            messages = example_messages(teacher.messages, f.system_prompt)
            yield json.dumps(preference_example(messages, teacher.tools, assistant_message(teacher, f.strategy),
                                                assistant_message(student, f.strategy)), ensure_ascii=False)


def build_preference_dataset(ws: Workspace, out: Path, f: DatasetFilters) -> BuiltDataset:
    """Build and record a preference dataset (train and validation files, no logprobs file)."""
    complete_interrupted_build(ws)
    teacher, student = _tiers(ws, f)
    f.tier = teacher.tier
    found = _disagreements(ws, f, student)
    compared = found.agreed + len(found.tasks)
    if compared == 0:
        raise DatasetError(f"tier {student.tier} ({student.model}) has no answers on the teacher's tasks yet: collect "
                           f"them with `cascade-studio collect --tier {student.tier}`")
    if not found.tasks:
        raise DatasetError(f"tier {student.tier} agrees with the teacher on all {compared} tasks both answered: no "
                           "disagreement to learn from")
    train_idx, valid_idx = stratified_split(found.categories, f.validation_share, f.seed, found.tasks)
    pairs = list(zip(found.teacher_ids, found.student_ids, strict=True))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out.parent, ws)
    valid_path = _validation_path(out) if valid_idx else None
    planned: dict[Path, Iterable[str]] = {out: _lines(ws, [pairs[i] for i in train_idx], f)}
    if valid_path:
        planned[valid_path] = _lines(ws, [pairs[i] for i in valid_idx], f)
    info = {"teacher_tier": teacher.tier, "student_tier": student.tier, "student_model": student.model,
            "pairs": len(pairs), "agreed_dropped": found.agreed, "no_student_answer": found.no_student,
            "episodes_skipped": found.episodes, "agreement": AGREEMENT_BASIS}
    repo = DatasetRepository(ws)
    used = [*found.teacher_ids, *found.student_ids]

    def record(pending: dict[str, Any]) -> int:
        return repo.add(out, valid_path, "preference", {**f.to_json(), "preference": info}, len(train_idx),
                        len(valid_idx), used, [found.tasks[i] for i in valid_idx], pending_files=pending)

    dataset_id = _build_files(repo, out, planned, record)
    return BuiltDataset(dataset_id, out, valid_path, len(train_idx), len(valid_idx), found.duplicates, used, None, info)
