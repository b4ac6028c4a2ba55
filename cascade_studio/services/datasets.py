"""Build fine-tuning datasets from curated trajectories and validate dataset files."""

from __future__ import annotations

import datetime as dt
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
from cascade_studio.services.paths import resources_dir
from cascade_studio.store.trajectory_query import CONF_COLUMNS
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
    tier = f.tier
    if tier is None:
        row = ws.conn.execute("SELECT max(tier) FROM tiers").fetchone()
        tier = row[0]
    clauses, args = ["status = 'ok'", "tier = ?"], [tier]
    if f.accepted_only:
        clauses.append("curation = 'accepted'")
    else:
        clauses.append("(curation IS NULL OR curation != 'rejected')")
    if f.category:
        clauses.append("category = ?")
        args.append(f.category)
    if f.min_confidence is not None:
        clauses.append(f"{CONF_COLUMNS.get(f.confidence_method, 'conf_mean')} >= ?")
        args.append(f.min_confidence)
    if f.tool:
        clauses.append("tool_name = ?")
        args.append(f.tool)
    rows = ws.conn.execute(
        "SELECT id, task_id, category, request, content, tool_calls FROM trajectories WHERE id IN (SELECT max(id) FROM "
        f"trajectories WHERE {' AND '.join(clauses)} GROUP BY task_id) ORDER BY id", args).fetchall()
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


def logprobs_path(training_file: Path) -> Path:
    """Where the teacher's logprobs for a training file go: one line per example, in order."""
    return training_file.with_name(training_file.stem + ".logprobs.jsonl")


def _write_teacher_logprobs(ws: Workspace, out: Path, valid_path: Path | None, traj_ids: list[int],
                            train_idx: list[int], valid_idx: list[int]) -> Path | None:
    """The teacher's recorded top_logprobs beside the training (and validation) file, for the local
    trainer's soft labels; the training file itself stays plain OpenAI chat JSONL."""
    found: dict[int, Any] = {}
    for start in range(0, len(traj_ids), 500):
        chunk = traj_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for tid, lp in ws.conn.execute(f"SELECT id, logprobs FROM trajectories WHERE id IN ({marks}) "
                                       "AND logprobs IS NOT NULL", chunk):
            found[tid] = orjson.loads(lp)
    for target, idx in ((out, train_idx), (valid_path, valid_idx)):
        if target is None:
            continue
        side = logprobs_path(target)
        if not found:
            side.unlink(missing_ok=True)  # an older file would no longer line up
            continue
        _write_jsonl(side, [None if traj_ids[i] not in found else {"content": found[traj_ids[i]]} for i in idx])
    return logprobs_path(out) if found else None


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
    cur = ws.conn.execute(
        "INSERT INTO datasets (created_at, path, validation_path, format, filters, examples, validation_examples, "
        "trajectory_ids, validation_task_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), str(out.resolve()),
         None if valid_path is None else str(valid_path.resolve()), fmt, json.dumps(f.to_json()), len(train_idx),
         len(valid_idx), json.dumps(ids), json.dumps([kept[i] for i in valid_idx])))
    return BuiltDataset(cur.lastrowid, out, valid_path, len(train_idx), len(valid_idx), dropped, ids, teacher)


def validation_task_ids(ws: Workspace, dataset_id: int | None = None) -> tuple[int, list[str]] | None:
    """(dataset id, its validation split's task ids): the given dataset, else the newest with a split."""
    if dataset_id is not None:
        row = ws.conn.execute("SELECT id, validation_task_ids FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    else:
        row = ws.conn.execute("SELECT id, validation_task_ids FROM datasets WHERE validation_examples > 0 "
                              "ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    ids = json.loads(row[1])
    return (row[0], ids) if ids else None


def list_datasets(ws: Workspace) -> list[dict[str, Any]]:
    rows = ws.conn.execute("SELECT id, created_at, path, validation_path, format, filters, examples, "
                           "validation_examples FROM datasets ORDER BY id DESC").fetchall()
    keys = ["id", "created_at", "path", "validation_path", "format", "filters", "examples", "validation_examples"]
    return [{**dict(zip(keys, r, strict=True)), "filters": json.loads(r[5])} for r in rows]


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
