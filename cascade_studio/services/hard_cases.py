"""The hard cases' one action: collect the teacher's answers for the tasks the cascade escalated in
production, then build the next fine-tuning dataset from the teacher's trajectories (the hard cases
included). Tasks with an answer of the teacher's current generation (e.g. one it gave in production)
are not asked again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.tiers import generation_keys
from cascade_studio.services.collector import CollectionRun, RunProgress, start_or_resume
from cascade_studio.services.datasets import BuiltDataset, DatasetFilters, build_dataset
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.traffic import TrafficImportError, hard_case_ids, teacher_tier
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace


@dataclass
class HardCaseResult:
    hard_cases: int
    collected: int
    failed: int
    dataset: BuiltDataset | None

    def to_json(self) -> dict[str, Any]:
        d = self.dataset
        return {"hard_cases": self.hard_cases, "collected": self.collected, "failed": self.failed,
                "dataset": None if d is None else {"id": d.id, "path": str(d.path), "examples": d.examples}}


async def collect_hard_cases(ws: Workspace, secrets: SecretStore, dataset: Path | None = None, *,
                             on_progress: Callable[[RunProgress], None] | None = None) -> HardCaseResult:
    ids = hard_case_ids(ws)
    if not ids:
        raise TrafficImportError("no hard cases with content: import gateway logs written with --log-content full "
                                 "(`cascade-studio traffic import DIR`) first")
    teacher = teacher_tier(ws)
    have = TrajectoryRepository(ws).ok_task_ids(teacher.tier, list(generation_keys(teacher)), ids)
    todo = [t for t in ids if t not in have]
    done = failed = 0
    if todo:
        run, _ = start_or_resume(ws, teacher, todo, {"hard_cases": True})
        progress = await CollectionRun(ws, teacher, secrets, run, on_progress=on_progress).run()
        done, failed = progress.new_done, progress.failed
    built = build_dataset(ws, dataset, DatasetFilters()) if dataset is not None else None
    return HardCaseResult(len(ids), done, failed, built)
