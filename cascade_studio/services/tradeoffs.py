"""Build the trade-off inputs from recorded trajectories, and keep what-if scenarios."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from cascade_studio.core.agreement import args_agreement, bfcl_correct, tool_agreement
from cascade_studio.core.confidence import confidence_column
from cascade_studio.core.tiers import Tier, WithoutLogprobs, generation_keys
from cascade_studio.core.tradeoffs import Outcomes
from cascade_studio.store.scenarios import ScenarioRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

_NUMERIC = ("cost_micro", "latency_ms", "prompt_tokens", "completion_tokens")
_BATCH = 20_000  # rows fetched at a time


class _TierRows:
    """One tier's latest successful trajectory per task, as arrays sorted by task id: the numeric
    columns in float64 (a missing confidence is NaN) and the raw tool_calls JSON (parsed only
    where a comparison needs it)."""

    def __init__(self, ws: Workspace, tier: Tier) -> None:
        conf = confidence_column(tier.confidence_method.value)
        cur = TrajectoryRepository(ws).latest_ok(tier.tier, ["task_id", *_NUMERIC, conf, "tool_calls"],
                                                 generation_keys(tier))
        cols: list[list[Any]] = [[] for _ in range(len(_NUMERIC) + 3)]
        while batch := list(itertools.islice(cur, _BATCH)):
            for col, values in zip(cols, zip(*batch, strict=True), strict=True):
                col.extend(values)
        ids = np.array(cols[0], dtype=str)
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order]
        self.numeric = {name: np.array(values, dtype=float)[order]
                        for name, values in zip((*_NUMERIC, "confidence"), cols[1:-1], strict=True)}
        self.calls = np.array(cols[-1], dtype=object)[order]

    def at(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of `ids` (all present)."""
        return np.searchsorted(self.ids, ids)


def _agreement(teacher_calls: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """1.0 where a tier's calls agree with the teacher's (tool choice and arguments). Identical JSON
    agrees without parsing; only the rows that differ as text are parsed and compared."""
    out = (calls == teacher_calls).astype(float)
    for i in np.flatnonzero(out == 0.0):
        t, c = orjson.loads(teacher_calls[i]), orjson.loads(calls[i])
        out[i] = float(tool_agreement(t, c) and args_agreement(t, c)[0])
    return out


def _accuracy(calls: list[np.ndarray], task_ids: np.ndarray, meta: dict[str, tuple],
              tools: dict[str, Any]) -> np.ndarray:
    """1.0 where a tier's calls are correct against the task's expected answer; a tier whose JSON is
    identical to a cheaper tier's for the same task takes that tier's verdict without parsing."""
    out = np.zeros((len(task_ids), len(calls)))
    for j, col in enumerate(calls):
        todo = np.ones(len(task_ids), dtype=bool)
        for prev in range(j):
            same = todo & (col == calls[prev])
            out[same, j] = out[same, prev]
            todo &= ~same
        for i in np.flatnonzero(todo):
            t = task_ids[i]
            out[i, j] = float(bfcl_correct(orjson.loads(col[i]), meta[t][1], tools.get(t)))
    return out


def load_outcomes(ws: Workspace, tiers: list[Tier], category: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Outcomes:
    """Per-task outcomes of `tiers` (cheapest first, teacher last). Tasks missing any tier are
    excluded and counted. Quality is accuracy against expected answers when every task has one,
    otherwise agreement with the teacher (tool choice and arguments). One query per tier into
    arrays; `progress(done, of)` hears each step (a tier read, the quality computed)."""
    tiers = sorted(tiers, key=lambda t: t.tier)
    k = len(tiers)
    steps = k + 1
    per_tier: list[_TierRows] = []
    for j, t in enumerate(tiers):
        per_tier.append(_TierRows(ws, t))
        if progress:
            progress(j + 1, steps)
    meta = TaskRepository(ws).categories_and_expected()
    if per_tier:
        all_ids = functools.reduce(np.union1d, [p.ids for p in per_tier])
        common = functools.reduce(lambda a, b: np.intersect1d(a, b, assume_unique=True), [p.ids for p in per_tier])
    else:
        all_ids = common = np.array([], dtype=str)
    if category:
        common = common[np.array([meta.get(t, ("",))[0] == category for t in common.tolist()], dtype=bool)]
        n_all = sum(1 for t in all_ids.tolist() if meta.get(t, ("",))[0] == category)
    else:
        n_all = len(all_ids)
    task_ids: list[str] = common.tolist()
    task_ids_arr = np.array(task_ids, dtype=object)
    excluded = n_all - len(task_ids)
    n = len(task_ids)
    rows = [p.at(common) for p in per_tier]

    def column(name: str) -> np.ndarray:
        return np.column_stack([p.numeric[name][r] for p, r in zip(per_tier, rows, strict=True)]) if k else \
            np.zeros((n, 0))

    cost, lat, conf = column("cost_micro") / 1e6, column("latency_ms"), column("confidence")
    lat = np.where(lat > 0, lat, np.nan)  # no real-time latency (Batch API results): left out of latency figures
    ptok, ctok = column("prompt_tokens"), column("completion_tokens")
    expected_everywhere = n > 0 and all(isinstance(meta.get(t, ("", None))[1], list) for t in task_ids)
    qual = np.zeros((n, k))
    if n:
        calls = [p.calls[r] for p, r in zip(per_tier, rows, strict=True)]
        if expected_everywhere:
            tools = TaskRepository(ws).tools_of(task_ids)
            qual[:, :] = _accuracy(calls, task_ids_arr, meta, tools)
        else:
            qual[:, k - 1] = 1.0
            for j in range(k - 1):
                qual[:, j] = _agreement(calls[-1], calls[j])
    if progress:
        progress(steps, steps)
    return Outcomes(task_ids, [meta.get(t, ("",))[0] for t in task_ids], [t.tier for t in tiers],
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
