"""Build the trade-off inputs from recorded trajectories, and keep what-if scenarios."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise, repeat
from typing import Any

import numpy as np
import orjson

from cascade_studio.core.agreement import args_agreement, bfcl_correct, tool_agreement
from cascade_studio.core.confidence import confidence_column
from cascade_studio.core.tiers import Tier, WithoutLogprobs, generation_keys
from cascade_studio.core.tradeoffs import Outcomes, category_codes
from cascade_studio.store.scenarios import ScenarioRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)
_NUMERIC = ("cost_micro", "latency_ms", "prompt_tokens", "completion_tokens")
_BATCH = 20_000  # rows fetched at a time
VERDICT_BATCH = 5_000  # tasks whose missing verdicts are computed (and stored) together


class _TierRows:
    """One tier's latest successful trajectory per task, as arrays sorted by task id: the numeric
    columns in float64 (a missing confidence is NaN), the kept verdict against the expected answer
    (NaN: not computed yet) and the trajectory ids; the tool calls' JSON is read only when needed."""

    def __init__(self, ws: Workspace, tier: Tier, generations: Sequence[str] | None = None) -> None:
        self.ws = ws
        conf = confidence_column(tier.confidence_method.value)
        repo, names = TrajectoryRepository(ws), (*_NUMERIC, "confidence", "correct")
        generations = generation_keys(tier) if generations is None else generations
        arrays = repo.latest_ok_arrays(tier.tier, [*_NUMERIC, conf, "correct"], generations)
        if arrays is not None:  # one scan of the covering index into arrays
            self.ids, values, self.traj_ids = arrays
            self.numeric = dict(zip(names, values.values(), strict=True))
            return
        cur = repo.latest_ok(tier.tier, ["task_id", *_NUMERIC, conf, "correct", "id"], generations)
        table = np.array(list(cur), dtype=object).reshape(-1, len(_NUMERIC) + 4)  # one C-level pass, no per-row loop
        self.ids: list[str] = table[:, 0].tolist()
        self.numeric = {name: table[:, 1 + k].astype(float)  # None (no confidence, no verdict yet) -> NaN
                        for k, name in enumerate(names)}
        self.traj_ids = table[:, -1].astype(np.int64)

    def calls(self, rows: np.ndarray) -> np.ndarray:
        """The tool calls' JSON (unparsed) of the trajectories at `rows`, read in batches."""
        wanted = self.traj_ids[rows].tolist()
        found: dict[int, str] = {}
        for start in range(0, len(wanted), _BATCH):
            found.update(TrajectoryRepository(self.ws).by_ids(wanted[start:start + _BATCH], ["id", "tool_calls"]))
        return np.array([found[i] for i in wanted], dtype=object)


def _agreement(teacher_calls: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """1.0 where a tier's calls agree with the teacher's (tool choice and arguments). Identical JSON
    agrees without parsing; only the rows that differ as text are parsed and compared."""
    out = (calls == teacher_calls).astype(float)
    for i in np.flatnonzero(out == 0.0):
        t, c = orjson.loads(teacher_calls[i]), orjson.loads(calls[i])
        out[i] = float(tool_agreement(t, c) and args_agreement(t, c)[0])
    return out


def _judged_as(calls: Any, raw: str) -> Any:
    """What bfcl_correct reads of the calls (each call's name and arguments; not the call ids, which
    differ between tiers that called alike)."""
    try:
        return orjson.dumps([(c.get("name"), c.get("arguments")) for c in calls])
    except (AttributeError, TypeError, orjson.JSONEncodeError):
        return raw


def _accuracy(ws: Workspace, per_tier: list[_TierRows], rows: list[np.ndarray], task_ids: np.ndarray) -> np.ndarray:
    """1.0 where a tier's calls are correct against the task's expected answer. Verdicts are kept
    with the trajectories (`correct`): only those not computed yet are, once, VERDICT_BATCH tasks at
    a time (their expected answers, tools and calls read for that batch only: memory stays flat at
    any size) and stored after each batch (an interrupted first load keeps what it computed)."""
    out = np.column_stack([p.numeric["correct"][r] for p, r in zip(per_tier, rows, strict=True)])
    todo = np.isnan(out)
    pending = np.flatnonzero(todo.any(axis=1))
    tasks = TaskRepository(ws)
    with ws.page_cache():  # ~3 reads by id per pending task: re-read pages cost more than the verdicts
        _judge(ws, per_tier, rows, task_ids, out, todo, pending, tasks)
    return out


def _judge(ws: Workspace, per_tier: list[_TierRows], rows: list[np.ndarray], task_ids: np.ndarray, out: np.ndarray,
           todo: np.ndarray, pending: np.ndarray, tasks: TaskRepository) -> None:
    for start in range(0, len(pending), VERDICT_BATCH):
        batch = pending[start:start + VERDICT_BATCH]
        need = sorted({task_ids[i] for i in batch.tolist()})
        expected, tools = tasks.expected_of(need), tasks.tools_of(need)
        verdicts: list[tuple[int, bool]] = []
        judged: dict[tuple[int, Any], bool] = {}  # tiers that called alike on a task: judged once
        for j, (p, r) in enumerate(zip(per_tier, rows, strict=True)):
            at = batch[todo[batch, j]]
            for i, raw in zip(at.tolist(), p.calls(r[at]), strict=True):
                t = task_ids[i]
                calls = orjson.loads(raw)
                key = (i, _judged_as(calls, raw))
                ok = judged.get(key)
                if ok is None:
                    ok = judged[key] = bfcl_correct(calls, expected[t], tools.get(t))
                out[i, j] = float(ok)
                verdicts.append((int(p.traj_ids[r[i]]), ok))
        try:
            TrajectoryRepository(ws).set_correct(verdicts)
        except sqlite3.OperationalError as exc:  # busy or read-only: computed again next time
            log.info("Trade-offs: verdicts not kept (%s)", exc)


def _read_tiers(ws: Workspace, tiers: list[Tier], progress: Callable[[int, int], None] | None,
                steps: int, generations: dict[int, Sequence[str]] | None = None) -> list[_TierRows]:
    """Each tier's rows, one after the other on the caller's connection (turning rows into Python
    values holds the GIL: reading tiers on threads of their own took longer, not less)."""
    out = []
    for j, t in enumerate(tiers):
        out.append(_TierRows(ws, t, (generations or {}).get(t.tier)))
        if progress:
            progress(j + 1, steps)
    return out


def _task_meta(ws: Workspace) -> tuple[list[str], list[str], np.ndarray]:
    """(every task id, its category, whether its expected answer is a list of calls)."""
    tasks = TaskRepository(ws)
    meta = tasks.categories_and_expected_arrays()
    if meta is None:  # an id holding the separator: the dictionary (slower, the same result)
        lists = tasks.categories_and_expected_lists()
        meta = list(lists), [c for c, _ in lists.values()], np.array([e for _, e in lists.values()], dtype=bool)
    return meta


def _task_meta_beside(ws: Workspace) -> Callable[[], tuple[list[str], list[str], np.ndarray]]:
    """_task_meta read on a connection and thread of its own while the caller reads the tiers (the
    aggregate runs in SQLite without the GIL: ~0.1 s at 100k tasks, overlapped). Call the result
    for the value."""
    if (os.cpu_count() or 1) < 2:
        value = _task_meta(ws)
        return lambda: value
    reader = ws.reader()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-meta")
    future = pool.submit(_task_meta, reader)

    def result() -> tuple[list[str], list[str], np.ndarray]:
        try:
            return future.result()
        finally:
            pool.shutdown()
            reader.close()
    return result


def load_outcomes(ws: Workspace, tiers: list[Tier], category: str | None = None,
                  progress: Callable[[int, int], None] | None = None, *,
                  generations: dict[int, Sequence[str]] | None = None) -> Outcomes:
    """Per-task outcomes of `tiers` (cheapest first, teacher last). Tasks missing any tier are
    excluded and counted. Quality is accuracy against expected answers when every task has one,
    otherwise agreement with the teacher (tool choice and arguments). One query per tier into
    arrays; `progress(done, of)` hears each step (a tier read, the quality computed). `generations`
    ({tier: generation ids}) reads another generation of a tier than its current one."""
    tiers = sorted(tiers, key=lambda t: t.tier)
    k = len(tiers)
    steps = k + 1
    meta_of = _task_meta_beside(ws)
    try:
        per_tier = _read_tiers(ws, tiers, progress, steps, generations)
    except BaseException:
        with contextlib.suppress(Exception):
            meta_of()  # closes its connection
        raise
    names_list, cat_list, listed = meta_of()
    # align the tiers on integer codes of the task ids (no string set operations over 100k ids)
    codes = dict(zip(names_list, range(len(names_list)), strict=True))
    # each tier's ids ascend (latest_ok_arrays); when every tier answered the same tasks (the usual
    # case) they are mapped once and the tasks in common are already in task id order
    same_tasks = k > 0 and all(p.ids == per_tier[0].ids for p in per_tier[1:]) and \
        all(a < b for a, b in pairwise(per_tier[0].ids))
    mapped: np.ndarray | None = None
    for p in per_tier:
        if same_tasks and mapped is not None:
            p.codes = mapped
            continue
        p.codes = np.fromiter(map(codes.get, p.ids, repeat(-1)), dtype=np.int64, count=len(p.ids))
        for i in np.flatnonzero(p.codes < 0).tolist():  # trajectories of tasks no longer in the workspace
            code = p.codes[i] = codes.setdefault(p.ids[i], len(codes))
            if code == len(names_list):
                names_list.append(p.ids[i])
                cat_list.append("")
        mapped = p.codes
    names, categories = np.array(names_list, dtype=object), np.array(cat_list, dtype=object)
    listed = np.concatenate([listed, np.zeros(len(names) - len(listed), dtype=bool)])
    present = np.zeros((len(codes), k), dtype=bool)
    position = np.full((len(codes), k), -1, dtype=np.int64)
    for j, p in enumerate(per_tier):
        present[p.codes, j] = True
        position[p.codes, j] = np.arange(len(p.codes))
    wanted = present.any(axis=1)  # tasks some tier answered
    if category:
        wanted &= categories == category
    n_all = int(wanted.sum())
    if same_tasks:  # in task id order already
        common = mapped[wanted[mapped]]
    else:
        common = np.flatnonzero(wanted & present.all(axis=1)) if k else np.array([], dtype=np.int64)
        common = common[np.argsort(names[common].astype(str), kind="stable")]  # by task id, as before
    task_ids: list[str] = names[common].tolist()
    task_ids_arr = names[common]
    excluded = n_all - len(task_ids)
    n = len(task_ids)
    rows = [position[common, j] for j in range(k)]

    def column(name: str) -> np.ndarray:
        return np.column_stack([p.numeric[name][r] for p, r in zip(per_tier, rows, strict=True)]) if k else \
            np.zeros((n, 0))

    cost, lat, conf = column("cost_micro") / 1e6, column("latency_ms"), column("confidence")
    lat = np.where(lat > 0, lat, np.nan)  # no real-time latency (Batch API results): left out of latency figures
    ptok, ctok = column("prompt_tokens"), column("completion_tokens")
    expected_everywhere = n > 0 and bool(listed[common].all())
    qual = np.zeros((n, k))
    if n:
        if expected_everywhere:
            qual[:, :] = _accuracy(ws, per_tier, rows, task_ids_arr)
        else:
            calls = [p.calls(r) for p, r in zip(per_tier, rows, strict=True)]
            qual[:, k - 1] = 1.0
            for j in range(k - 1):
                qual[:, j] = _agreement(calls[-1], calls[j])
    if progress:
        progress(steps, steps)
    shown = categories[common].tolist()
    category_codes(shown)  # computed here, on the loading thread, and kept for the page's what-ifs
    return Outcomes(task_ids, shown, [t.tier for t in tiers],
                    cost, lat, qual, conf, ptok, ctok, excluded, "accuracy" if expected_everywhere else "agreement",
                    [t.without_logprobs == WithoutLogprobs.ANSWER for t in tiers])


def save_scenario(ws: Workspace, name: str, params: dict[str, Any], results: dict[str, Any],
                  quality_basis: str | None = None) -> int:
    """Save a what-if scenario with the basis its quality was measured on (Outcomes.quality_basis)."""
    return ScenarioRepository(ws).save(name, params, results, quality_basis)


def list_scenarios(ws: Workspace) -> list[dict[str, Any]]:
    """Saved scenarios, oldest first; each has `quality_basis` (None when saved before it was recorded)."""
    return ScenarioRepository(ws).list()


def delete_scenario(ws: Workspace, name: str) -> None:
    ScenarioRepository(ws).delete(name)
