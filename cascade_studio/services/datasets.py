"""Build fine-tuning datasets from curated trajectories and validate dataset files."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cascade_studio.core.datasets import (
    SourceTrajectory,
    ValidationReport,
    dedupe_key,
    episode_example,
    example_messages,
    make_example,
    stratified_split,
    to_sharegpt,
    training_price,
    validate_jsonl,
)
from cascade_studio.core.episode import tool_message
from cascade_studio.core.errors import UserError
from cascade_studio.core.finetune import teacher_logprobs_path
from cascade_studio.core.jsonl import JsonProblem
from cascade_studio.core.jsonl import loads as safe_loads
from cascade_studio.core.preference import detect_preference, validate_preference
from cascade_studio.core.tiers import generation_keys, teacher_of
from cascade_studio.core.user_sim import input_message
from cascade_studio.services.input_files import read_text
from cascade_studio.services.paths import resources_dir
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace, process_alive

log = logging.getLogger(__name__)


@dataclass
class DatasetFilters:
    tier: int | None = None  # default: the teacher
    accepted_only: bool = False
    category: str | None = None
    min_confidence: float | None = None
    confidence_method: str = "mean_token_prob"
    tool: str | None = None
    strategy: str = "final"  # or "reasoning"
    last_turn_only: bool = False  # episodes: train on the last assistant turn only (the others weight 0)
    system_prompt: str | None = None
    student: int | None = None  # format "preference": the student tier (default: the lowest other than the teacher)
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
    preference: dict[str, Any] | None = None  # format "preference": the student, pairs kept and dropped

    def to_json(self) -> dict[str, Any]:
        return {**({"preference": self.preference} if self.preference is not None else {}),"id": self.id, "path": str(self.path),
                "teacher_logprobs": None if self.teacher_logprobs is None else str(self.teacher_logprobs),
                "validation_path": None if self.validation_path is None else str(self.validation_path),
                "examples": self.examples, "validation_examples": self.validation_examples,
                "duplicates_dropped": self.duplicates_dropped, "trajectories": len(self.trajectory_ids)}


BATCH = 500  # trajectories in memory at once while a build writes its files


@dataclass
class _Selection:
    """Pass 1 of a build: which trajectories it uses (ids, all selected) and keeps (after dedupe),
    with only what the split needs; pass 2 reads the kept rows again, BATCH at a time."""

    ids: list[int] = field(default_factory=list)
    kept_ids: list[int] = field(default_factory=list)
    kept_tasks: list[str] = field(default_factory=list)
    kept_categories: list[str] = field(default_factory=list)
    dropped: int = 0


def _select(ws: Workspace, f: DatasetFilters) -> _Selection:
    """The latest kept trajectory per task of the chosen tier (default: the teacher), deduplicated,
    streamed: the prompts are hashed and let go."""
    tiers = TierRepository(ws).list()
    chosen = teacher_of(tiers) if f.tier is None else next((t for t in tiers if t.tier == f.tier), None)
    tier = chosen.tier if chosen is not None else f.tier
    # the tier's current generation only: a dataset never mixes an old model's answers with the new one's
    rows = TrajectoryRepository(ws).latest_curated(
        tier, accepted_only=f.accepted_only, category=f.category, min_confidence=f.min_confidence,
        confidence_method=f.confidence_method, tool=f.tool,
        generations=generation_keys(chosen) if chosen is not None else None,
        columns=("id", "task_id", "category", "request"))
    out, seen = _Selection(), {}
    for traj_id, task_id, category, request_json in rows:
        out.ids.append(traj_id)
        request = orjson.loads(request_json)
        key = dedupe_key(example_messages(request.get("messages", []), f.system_prompt), request.get("tools") or [])
        if f.dedupe and key in seen:
            out.dropped += 1
            at = seen[key]  # of duplicates, the smallest task id: not the first recorded (core.build_examples)
            if task_id < out.kept_tasks[at]:
                out.kept_ids[at], out.kept_tasks[at], out.kept_categories[at] = traj_id, task_id, category
            continue
        seen[key] = len(out.kept_ids)
        out.kept_ids.append(traj_id)
        out.kept_tasks.append(task_id)
        out.kept_categories.append(category)
    return out


def _examples(ws: Workspace, ids: list[int], f: DatasetFilters, convert: Callable[[dict[str, Any]], Any]
              ) -> Iterator[str]:
    """The JSONL lines of the examples of trajectories `ids`, in that order, BATCH rows at a time."""
    repo = TrajectoryRepository(ws)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        rows = {r[0]: r for r in repo.by_ids(chunk, ("id", "task_id", "category", "request", "content",
                                                     "tool_calls", "episode"))}
        for traj_id in chunk:
            _, task_id, category, request_json, content, calls, episode = rows[traj_id]
            request = orjson.loads(request_json)
            t = SourceTrajectory(task_id, category, request.get("messages", []), request.get("tools") or [], content,
                                 orjson.loads(calls))
            messages = example_messages(t.messages, f.system_prompt)
            if episode:
                example = episode_example(messages, t.tools, _turns(ws, episode, task_id, category), f.strategy,
                                          last_turn_only=f.last_turn_only)
            else:
                example = make_example(t, messages, f.strategy)
            yield json.dumps(convert(example), ensure_ascii=False)


def _turns(ws: Workspace, key: str, task_id: str, category: str) -> list[tuple[SourceTrajectory, list[dict[str, Any]]]]:
    """An episode's steps as (assistant turn, the tool messages and user turns that answered it: inputs)."""
    return [(SourceTrajectory(task_id, category, [], [], s.call.content, s.call.tool_calls),
             [tool_message(r) for r in s.results] + [input_message(t) for t in s.user_turns])
            for s in EpisodeRepository(ws).steps(key)]


def _logprobs_lines(ws: Workspace, ids: list[int]) -> Iterator[str]:
    """One line per trajectory of `ids`: {"content": its recorded logprobs} (as stored, not parsed
    again), or null; BATCH rows at a time."""
    repo = TrajectoryRepository(ws)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        found = dict(repo.logprobs_texts(chunk))
        episodes = {r[0]: r[1] for r in repo.by_ids(chunk, ("id", "episode")) if r[1]}
        for traj_id in chunk:
            if traj_id in episodes:  # one list per assistant turn, in order (the local trainer's soft labels)
                turns = [s.call.logprobs for s in EpisodeRepository(ws).steps(episodes[traj_id])]
                yield json.dumps({"turns": turns})
                continue
            text = found.get(traj_id)
            yield "null" if text is None else '{"content": ' + text + "}"


class DatasetError(UserError, ValueError):
    """A dataset the user asked for cannot be built or read (no matching trajectories, a bad file)."""


# -- one build's files, all or nothing --------------------------------------------------------------
_TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{16}\.cascade-tmp$")


def _temp_file(final: Path) -> tuple[Path, int]:
    """A new file beside `final` for the owner only: a unique name, O_EXCL (never an existing file
    or a symlink), named after this process so a later build can tell it is stale."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(8)}.cascade-tmp")
        try:
            return tmp, os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue


def _write_temp(final: Path, lines: Iterable[str]) -> Path:
    """`lines` (JSON, streamed) into a new temporary file beside `final`, fsynced."""
    tmp, fd = _temp_file(final)
    try:
        with open(fd, "w", encoding="utf-8", closefd=True) as fh:
            for line in lines:
                fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: no directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(folder: Path, ws: Workspace) -> None:
    """Temporary files of builds whose process is gone (killed before they were complete), except
    those a recorded build still has to rename into place: those are complete, and removing one
    would leave the record counting examples its files do not hold. Whether the builder is gone is
    checked before its record is read: a builder found dead recorded all it ever will."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    dead = [name for name in names if (m := _TEMP.match(name)) and not process_alive(int(m.group(1)))]
    if not dead:
        return
    recorded = {os.path.realpath(tmp) for p in DatasetRepository(ws).pending_files() for tmp, _ in p["renames"]}
    for name in dead:
        if os.path.realpath(folder / name) not in recorded:
            (folder / name).unlink(missing_ok=True)


def _put_in_place(pending: dict[str, Any]) -> None:
    """Rename the build's complete temporary files over the old ones and remove the old files the
    new build has none of (an older logprobs file would no longer line up). Safe to repeat, and to
    run in two processes at once (a temporary file already renamed is skipped)."""
    for tmp, final in pending["renames"]:
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            pass  # renamed already (an earlier, interrupted completion, or another process)
    for stale in pending["remove"]:
        Path(stale).unlink(missing_ok=True)
    _fsync_dir(Path(pending["folder"]))


def complete_interrupted_build(ws: Workspace) -> int | None:
    """Finish putting in place the files of the builds that were recorded but interrupted (killed)
    while renaming them; returns the newest one's dataset id, None when there was none."""
    return DatasetRepository(ws).complete_pending(_put_in_place)


def finish_on_open(ws: Workspace) -> str | None:
    """When a workspace opens: finish the dataset builds a kill interrupted while their files were being
    put in place (recorded, so complete), so no mixed set of new and old files outlives the kill. A
    sentence for the user when one was finished; a problem is logged and left for the next build."""
    if not DatasetRepository(ws).pending_files():
        return None
    try:
        done = complete_interrupted_build(ws)
    except (OSError, sqlite3.Error) as exc:
        log.warning("Could not finish an interrupted dataset build in %s: %s", ws.path, exc)
        return None
    return f"Finished putting in place the files of dataset build {done}, which was interrupted." if done else None


def _build_files(repo: DatasetRepository, out: Path, planned: dict[Path, Iterable[str]],
                 record: Callable[[dict[str, Any]], int]) -> int:
    """Write every file of one build beside its final name, fsync them, record the build (with the
    renames still to do) in one database transaction, then rename them into place. A failure before
    the record leaves the old files and no temporary ones; a kill after it is completed by
    `complete_interrupted_build` on the next use of the workspace's datasets."""
    out = Path(os.path.abspath(out))  # the record's paths must not depend on the working directory
    planned = {Path(os.path.abspath(p)): lines for p, lines in planned.items()}
    folder = out.parent
    siblings = [out, _validation_path(out), teacher_logprobs_path(out), teacher_logprobs_path(_validation_path(out))]
    temps: list[tuple[Path, Path]] = []
    try:
        for final, lines in planned.items():
            temps.append((_write_temp(final, lines), final))
        _fsync_dir(folder)
        pending = {"folder": str(folder), "renames": [[str(t), str(f)] for t, f in temps],
                   "remove": [str(p) for p in siblings if p not in planned]}
        dataset_id = record(pending)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    repo.complete_pending(_put_in_place, dataset_id)  # nothing to do if a newer build superseded this one
    return dataset_id


def _validation_path(out: Path) -> Path:
    return out.with_name(out.stem + ".validation" + out.suffix)


def _teacher_logprobs(ws: Workspace, out: Path, valid_path: Path | None, train_ids: list[int],
                      valid_ids: list[int]) -> dict[Path, Iterable[str]]:
    """The teacher's recorded top_logprobs beside the training (and validation) file, line by line,
    for the local trainer's soft labels; the training file itself stays plain OpenAI chat JSONL.
    None when no kept trajectory has logprobs."""
    if not TrajectoryRepository(ws).any_logprobs(train_ids + valid_ids):
        return {}
    files: dict[Path, Iterable[str]] = {teacher_logprobs_path(out): _logprobs_lines(ws, train_ids)}
    if valid_path is not None:
        files[teacher_logprobs_path(valid_path)] = _logprobs_lines(ws, valid_ids)
    return files


def build_dataset(ws: Workspace, out: Path, f: DatasetFilters, fmt: str = "openai") -> BuiltDataset:
    """Build the dataset's files (train, validation, teacher logprobs) and record it: the files of
    one build appear together, with the record, or not at all (see `_build_files`). Two passes over
    the trajectories, neither holding them all: pass 1 selects, dedupes and splits on hashes and
    categories; pass 2 writes each file BATCH rows at a time."""
    if fmt == "preference":
        from cascade_studio.services.preference_data import build_preference_dataset

        return build_preference_dataset(ws, out, f)
    complete_interrupted_build(ws)
    sel = _select(ws, f)
    if not sel.ids:
        raise DatasetError("no trajectories match the filters (ok, not rejected, of the chosen tier); collect or "
                           "curate some first, or loosen the filters")
    train_idx, valid_idx = stratified_split(sel.kept_categories, f.validation_share, f.seed, sel.kept_tasks)
    train_ids, valid_ids = [sel.kept_ids[i] for i in train_idx], [sel.kept_ids[i] for i in valid_idx]
    convert = to_sharegpt if fmt == "sharegpt" else (lambda e: e)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out.parent, ws)
    valid_path = _validation_path(out) if valid_idx else None
    planned: dict[Path, Iterable[str]] = {out: _examples(ws, train_ids, f, convert)}
    if valid_path:
        planned[valid_path] = _examples(ws, valid_ids, f, convert)
    # the teacher's logprobs beside the examples, whatever the format (one line per example, in order)
    planned.update(_teacher_logprobs(ws, out, valid_path, train_ids, valid_ids))
    teacher = teacher_logprobs_path(out) if teacher_logprobs_path(out) in planned else None
    repo = DatasetRepository(ws)

    def record(pending: dict[str, Any]) -> int:
        return repo.add(out, valid_path, fmt, f.to_json(), len(train_idx), len(valid_idx), sel.ids,
                        [sel.kept_tasks[i] for i in valid_idx], pending_files=pending)

    dataset_id = _build_files(repo, out, planned, record)
    return BuiltDataset(dataset_id, out, valid_path, len(train_idx), len(valid_idx), sel.dropped, sel.ids, teacher)


def validation_task_ids(ws: Workspace, dataset_id: int | None = None) -> tuple[int, list[str]] | None:
    """(dataset id, its validation split's task ids): the given dataset, else the newest with a split."""
    complete_interrupted_build(ws)
    return DatasetRepository(ws).validation_task_ids(dataset_id)


def list_datasets(ws: Workspace) -> list[dict[str, Any]]:
    complete_interrupted_build(ws)
    return DatasetRepository(ws).list()


def training_prices(workspace_dir: Path | None = None) -> dict[str, float]:
    paths = [resources_dir() / "prices" / "training_prices.json"]
    if workspace_dir is not None:
        paths.append(Path(workspace_dir) / "training_prices.json")
    prices: dict[str, float] = {}
    shape = 'expected {"prices": {model: USD per 1M}}'
    for p in paths:
        if p.exists():
            text = read_text(p, lambda problem, line, p=p: DatasetError(f"{p}{f':{line}' if line else ''}: {problem}"))
            try:
                table = safe_loads(text)["prices"]
                prices.update({str(k): float(v) for k, v in table.items() if float(v) >= 0})
            except (JsonProblem, TypeError, ValueError, KeyError, AttributeError) as exc:
                raise DatasetError(f"{p}: not a training price table ({exc}); {shape}") from None
            if not all(map(math.isfinite, prices.values())):
                raise DatasetError(f"{p}: prices: must be finite numbers; {shape}")
    return prices


def validate_file(path: Path, model: str = "gpt-4o-mini", workspace_dir: Path | None = None) -> ValidationReport:
    from cascade_studio.services.tokenizer import token_counter

    text = read_text(Path(path), lambda problem, line: DatasetError(f"{path}{f':{line}' if line else ''}: {problem}"))
    prices = training_prices(workspace_dir)
    check = validate_preference if detect_preference(text) else validate_jsonl
    return check(text, token_counter(model), model=model, training_price_per_m=training_price(prices, model))
