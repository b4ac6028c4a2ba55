"""Build the trade-off inputs from recorded trajectories, and keep what-if scenarios."""

from __future__ import annotations

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


def _latest(ws: Workspace, tier: Tier) -> dict[str, tuple]:
    conf = confidence_column(tier.confidence_method.value)
    rows = TrajectoryRepository(ws).latest_ok(tier.tier, ["task_id", "cost_micro", "latency_ms", conf, "tool_calls",
                                                          "final_answer", "prompt_tokens", "completion_tokens"],
                                              generation_keys(tier))
    return {r[0]: r[1:] for r in rows}


def load_outcomes(ws: Workspace, tiers: list[Tier], category: str | None = None) -> Outcomes:
    """Per-task outcomes of `tiers` (cheapest first, teacher last). Tasks missing any tier are
    excluded and counted. Quality is accuracy against expected answers when every task has one,
    otherwise agreement with the teacher (tool choice and arguments)."""
    tiers = sorted(tiers, key=lambda t: t.tier)
    per_tier = [_latest(ws, t) for t in tiers]
    meta = TaskRepository(ws).categories_and_expected()
    all_ids = set().union(*[set(p) for p in per_tier]) if per_tier else set()
    common = sorted(set.intersection(*[set(p) for p in per_tier])) if per_tier else []
    if category:
        common = [t for t in common if meta.get(t, ("",))[0] == category]
        all_ids = {t for t in all_ids if meta.get(t, ("",))[0] == category}
    excluded = len(all_ids) - len(common)
    k, n = len(tiers), len(common)
    cost, lat, qual, conf = (np.zeros((n, k)) for _ in range(4))
    ptok, ctok = np.zeros((n, k)), np.zeros((n, k))
    expected_everywhere = n > 0 and all(isinstance(meta.get(t, ("", None))[1], list) for t in common)
    tools = TaskRepository(ws).tools_of(common) if expected_everywhere else {}
    for i, task_id in enumerate(common):
        teacher_calls = orjson.loads(per_tier[-1][task_id][3])
        for j in range(k):
            c_micro, latency, confidence, calls_json, answer, p, ct = per_tier[j][task_id]
            calls = orjson.loads(calls_json)
            cost[i, j] = c_micro / 1e6
            lat[i, j] = latency
            conf[i, j] = np.nan if confidence is None else confidence
            ptok[i, j], ctok[i, j] = p, ct
            if expected_everywhere:
                qual[i, j] = float(bfcl_correct(calls, meta[task_id][1], tools.get(task_id)))
            elif j == k - 1:
                qual[i, j] = 1.0
            else:
                qual[i, j] = float(tool_agreement(teacher_calls, calls) and args_agreement(teacher_calls, calls)[0])
    return Outcomes(common, [meta.get(t, ("",))[0] for t in common], [t.tier for t in tiers],
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
