"""Build fine-tuning datasets from curated trajectories and validate dataset files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cascade_studio.core.datasets import (
    SourceTrajectory,
    ValidationReport,
    build_examples,
    stratified_split,
    to_sharegpt,
    training_price,
    validate_jsonl,
)
from cascade_studio.core.finetune import teacher_logprobs_path
from cascade_studio.core.tiers import teacher_of
from cascade_studio.services.paths import resources_dir
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace


@dataclass
class DatasetFilters:
    tier: int | None = None  # default: the teacher
    accepted_only: bool = False
    category: str | None = None
    min_confidence: float | None = None
    confidence_method: str = "mean_token_prob"
    tool: str | None = None
    strategy: str = "final"  # or "reasoning"
    system_prompt: str | None = None
    dedupe: bool = True
    validation_share: float = 0.1
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BuiltDataset:
    id: int
    path: Path
    validation_path: Path | None
    examples: int
    validation_examples: int
    duplicates_dropped: int
    trajectory_ids: list[int] = field(default_factory=list)
    teacher_logprobs: Path | None = None  # FILE.logprobs.jsonl, for the local trainer's soft labels

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path),
                "teacher_logprobs": None if self.teacher_logprobs is None else str(self.teacher_logprobs),
                "validation_path": None if self.validation_path is None else str(self.validation_path),
                "examples": self.examples, "validation_examples": self.validation_examples,
                "duplicates_dropped": self.duplicates_dropped, "trajectories": len(self.trajectory_ids)}


def select(ws: Workspace, f: DatasetFilters) -> tuple[list[int], list[SourceTrajectory]]:
    """The latest kept trajectory per task of the chosen tier (default: the teacher)."""
    tier = f.tier
    if tier is None:
        teacher = teacher_of(TierRepository(ws).list())
        tier = None if teacher is None else teacher.tier
    rows = TrajectoryRepository(ws).latest_curated(
        tier, accepted_only=f.accepted_only, category=f.category, min_confidence=f.min_confidence,
        confidence_method=f.confidence_method, tool=f.tool)
    ids, out = [], []
    for r in rows:
        request = orjson.loads(r[3])
        ids.append(r[0])
        out.append(SourceTrajectory(r[1], r[2], request.get("messages", []), request.get("tools") or [], r[4],
                                    orjson.loads(r[5])))
    return ids, out


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _write_teacher_logprobs(ws: Workspace, out: Path, valid_path: Path | None, traj_ids: list[int],
                            train_idx: list[int], valid_idx: list[int]) -> Path | None:
    """The teacher's recorded top_logprobs beside the training (and validation) file, for the local
    trainer's soft labels; the training file itself stays plain OpenAI chat JSONL."""
    found = TrajectoryRepository(ws).logprobs_of(traj_ids)
    for target, idx in ((out, train_idx), (valid_path, valid_idx)):
        if target is None:
            continue
        side = teacher_logprobs_path(target)
        if not found:
            side.unlink(missing_ok=True)  # an older file would no longer line up
            continue
        _write_jsonl(side, [None if traj_ids[i] not in found else {"content": found[traj_ids[i]]} for i in idx])
    return teacher_logprobs_path(out) if found else None


def build_dataset(ws: Workspace, out: Path, f: DatasetFilters, fmt: str = "openai") -> BuiltDataset:
    ids, trajs = select(ws, f)
    if not trajs:
        raise ValueError("no trajectories match the filters (ok, not rejected, of the chosen tier); collect or "
                         "curate some first, or loosen the filters")
    kept: list[str] = []
    examples, cats, dropped = build_examples(trajs, strategy=f.strategy, system_prompt=f.system_prompt,
                                             dedupe=f.dedupe, kept_task_ids=kept)
    train_idx, valid_idx = stratified_split(cats, f.validation_share, f.seed)
    convert = to_sharegpt if fmt == "sharegpt" else (lambda e: e)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    valid_path = out.with_name(out.stem + ".validation" + out.suffix) if valid_idx else None
    _write_jsonl(out, [convert(examples[i]) for i in train_idx])
    if valid_path:
        _write_jsonl(valid_path, [convert(examples[i]) for i in valid_idx])
    teacher = None
    if fmt == "openai":
        at = {t.task_id: i for i, t in enumerate(trajs)}
        teacher = _write_teacher_logprobs(ws, out, valid_path, [ids[at[k]] for k in kept], train_idx, valid_idx)
    dataset_id = DatasetRepository(ws).add(out, valid_path, fmt, f.to_json(), len(train_idx), len(valid_idx), ids,
                                           [kept[i] for i in valid_idx])
    return BuiltDataset(dataset_id, out, valid_path, len(train_idx), len(valid_idx), dropped, ids, teacher)


def validation_task_ids(ws: Workspace, dataset_id: int | None = None) -> tuple[int, list[str]] | None:
    """(dataset id, its validation split's task ids): the given dataset, else the newest with a split."""
    return DatasetRepository(ws).validation_task_ids(dataset_id)


def list_datasets(ws: Workspace) -> list[dict[str, Any]]:
    return DatasetRepository(ws).list()


def training_prices(workspace_dir: Path | None = None) -> dict[str, float]:
    paths = [resources_dir() / "prices" / "training_prices.json"]
    if workspace_dir is not None:
        paths.append(Path(workspace_dir) / "training_prices.json")
    prices: dict[str, float] = {}
    for p in paths:
        if p.exists():
            try:
                prices.update({k: float(v) for k, v in json.loads(p.read_text())["prices"].items()})
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"{p}: not a training price table ({exc}); expected {{\"prices\": {{model: USD per 1M}}}}") \
                    from None
    return prices


def validate_file(path: Path, model: str = "gpt-4o-mini", workspace_dir: Path | None = None) -> ValidationReport:
    from cascade_studio.services.tokenizer import token_counter

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    prices = training_prices(workspace_dir)
    return validate_jsonl(text, token_counter(model), model=model, training_price_per_m=training_price(prices, model))
