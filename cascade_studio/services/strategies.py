"""The four approaches side by side on the user's own tasks (`strategies`, the Trade-offs page's
Strategies tab): teacher only, the best prompt-distilled student, the best fine-tuned student and
the cascade at its thresholds, on the same held-out tasks (a dataset's validation split).

Every figure is one the app computes elsewhere: per-tier cost, p95 latency and quality are
`core.tradeoffs.tier_figures` of the outcomes `whatif` loads (`services.tradeoffs.load_outcomes`,
same quality basis), the cascade's figures are `tradeoff_report`'s, and what a student cost to
make comes from its fine-tune job (trained tokens at the training price) or its prompt program
(the requests its making sent). A row without data says what to do to fill it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from cascade_studio.core.datasets import training_price
from cascade_studio.core.errors import UserError
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tiers import Tier, generation_id, teacher_of
from cascade_studio.core.tradeoffs import Outcomes, WhatIf, tier_figures, tradeoff_report
from cascade_studio.services.datasets import training_prices, validation_task_ids
from cascade_studio.services.tradeoffs import load_outcomes
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

TEACHER, PROMPT, FINE_TUNED, CASCADE = "teacher_only", "prompt_distilled", "fine_tuned", "cascade"
LABELS = {TEACHER: "Teacher only", PROMPT: "Best prompt-distilled student", FINE_TUNED: "Best fine-tuned student",
          CASCADE: "Cascade at its thresholds"}
HOW_TO_FILL = {
    TEACHER: "Collect the teacher on your tasks (Collect, or `cascade-studio collect --tier N`).",
    PROMPT: "Give a student demonstrations from the teacher (Fine-tuning page, or `cascade-studio distil prompt "
            "--student N --k 4 --mode nearest --evaluate-first`), which evaluates it on the held-out tasks.",
    FINE_TUNED: "Fine-tune a student on a dataset (Fine-tuning page, or `cascade-studio finetune start`), use it as a "
                "tier and evaluate it on the held-out tasks (`cascade-studio evaluate --collect`).",
    CASCADE: "Collect every tier on the held-out tasks (`cascade-studio evaluate --collect`, or Collect per tier).",
}


# quality = judged (issue 30): given the tiers, their outcomes and the generations they were loaded
# with, grade text answers in place and say what was judged (services.judged_evaluation.judge_outcomes)
Judging = Callable[[list[Tier], Outcomes, dict[int, list[str]] | None], dict[str, Any]]


def judging_by(ws: Workspace, name: str, secrets: Any, *, dry_run: bool = False,
               run: Callable[[Any], Any] | None = None) -> Judging:
    """The workspace's judge `name` as strategies_report's `judging` (judge_outcomes, as `whatif
    --judge`). `run` runs its coroutines (asyncio.run; the GUI's worker threads pass a plain loop of
    their own). UserError when there is no such judge."""
    import asyncio

    from cascade_studio.services.judged_evaluation import judge_outcomes
    from cascade_studio.store.judges import JudgeRepository

    judge = JudgeRepository(ws).get(name)
    if judge is None:
        raise UserError(f"no judge {name!r}; see `cascade-studio judge list`")
    runner = run or asyncio.run
    return lambda tiers, outcomes, generations: runner(judge_outcomes(
        ws, judge, tiers, outcomes, secrets, dry_run=dry_run, generations=generations))


def strategies_report(ws: Workspace, *, dataset_id: int | None = None, volume: float = 1_000_000,
                      thresholds: list[float] | None = None, judging: Judging | None = None) -> dict[str, Any]:
    """The four rows (see the module's docstring) as JSON: what `strategies --json` prints and the
    Strategies tab shows. With `judging`, quality is judged on every row (as `whatif --judge`)."""
    tiers = TierRepository(ws).list()
    teacher = teacher_of(tiers)
    split = validation_task_ids(ws, dataset_id)
    if dataset_id is not None and split is None:
        raise UserError(f"dataset {dataset_id} has no validation split; build one with a validation share above 0")
    held_out = None if split is None else set(split[1])
    out: dict[str, Any] = {
        "dataset": None if split is None else split[0], "held_out_tasks": None if held_out is None else len(held_out),
        "tasks_note": (f"the {len(held_out)} validation tasks of dataset {split[0]} (no demonstration or training "
                       "example comes from them)" if split is not None and held_out is not None else
                       "all recorded tasks: no dataset has a validation split, so nothing here is held out; build "
                       "a dataset with a validation share above 0 to compare on held-out tasks"),
        "volume": volume, "rows": []}
    students = sorted([t for t in tiers if teacher is None or t.tier != teacher.tier], key=lambda t: t.tier)
    if thresholds is None:
        thresholds = [t.threshold for t in students]
    out["thresholds"] = thresholds
    make = _MakingCosts(ws)
    load = _Loader(ws, held_out, judging)
    rows: dict[str, dict[str, Any] | None] = {TEACHER: None, PROMPT: None, FINE_TUNED: None, CASCADE: None}
    if teacher is not None and students:
        rows[CASCADE] = _cascade_row(load, tiers, thresholds, volume, make)
        rows[TEACHER] = _teacher_row(rows[CASCADE], teacher, volume) if rows[CASCADE] else \
            _teacher_alone(load, teacher, volume)
        for kind in (PROMPT, FINE_TUNED):
            rows[kind] = _best_student(ws, load, students, teacher, volume, make, kind)
    elif teacher is not None:
        rows[TEACHER] = _teacher_alone(load, teacher, volume)
    if judging is not None:
        out["quality_judge"] = load.judged()
    for kind in (TEACHER, PROMPT, FINE_TUNED, CASCADE):
        row = rows[kind] or {"available": False, "how_to_fill": HOW_TO_FILL[kind]}
        out["rows"].append({"strategy": kind, "label": LABELS[kind], **{"available": True, "how_to_fill": None},
                            **row})
    return _clean(out)


# -- rows -------------------------------------------------------------------------------------------
def _held(o: Outcomes, held_out: set[str] | None) -> Outcomes:
    if held_out is None:
        return o
    return o.subset(np.array([i for i, t in enumerate(o.task_ids) if t in held_out], dtype=np.int64))


class _Loader:
    """Outcomes on the held-out tasks, judged (when asked) after the cut, so only those are graded;
    the judge's totals summed over the rows."""

    SUMMED = ("requests", "reused", "unparseable", "failed", "cost_unknown_requests")

    def __init__(self, ws: Workspace, held_out: set[str] | None, judging: Judging | None) -> None:
        self.ws, self.held_out, self.judging = ws, held_out, judging
        self.reports: list[dict[str, Any]] = []

    def __call__(self, tiers: list[Tier], generations: dict[int, list[str]] | None = None) -> Outcomes:
        o = _held(load_outcomes(self.ws, tiers, generations=generations), self.held_out)
        if self.judging is not None and o.n and len(tiers) > 1:
            self.reports.append(self.judging(tiers, o, generations))
        return o

    def judged(self) -> dict[str, Any]:
        if not self.reports:
            return {"applied": False, "note": "nothing to judge: no row has a student and the teacher on the same tasks"}
        asked = [r for r in self.reports if "requests" in r]  # the judge was asked (or, dry, estimated)
        if not asked:  # e.g. quality is accuracy: the tasks' expected answers decide, no judge is needed
            return {"applied": False, "note": self.reports[0].get("note") or "nothing to judge"}
        first = next((r for r in asked if r.get("applied")), asked[0])
        out: dict[str, Any] = {k: first.get(k) for k in ("judge", "model", "kind", "template_version", "basis")}
        out["applied"] = any(r.get("applied") for r in asked)
        for key in self.SUMMED:
            out[key] = sum(int(r.get(key) or 0) for r in self.reports)
        out["cost_usd"] = str(sum(Decimal(r.get("cost_usd") or "0") for r in self.reports))
        out["estimate"] = any(r.get("estimate") for r in self.reports)
        out["note"] = "text answers judged against the teacher's; tool calls and unjudged answers matched"
        return out


def _row(o: Outcomes, column: int, volume: float, tier: Tier, generation: str, cost_to_make: dict[str, Any],
         ) -> dict[str, Any]:
    """One approach answered by the tier at `column`, against the teacher (the last column) on the
    same tasks: `tier_figures` of these outcomes."""
    figures = tier_figures(o)
    mine, top = figures[column], figures[-1]
    cost, teacher_cost = mine["cost_per_request_usd"], top["cost_per_request_usd"]
    return {"tier": tier.tier, "model": tier.model, "generation": generation, "tasks": o.n,
            "quality_basis": o.quality_basis, "cost_per_request_usd": cost,
            "monthly_cost_usd": None if cost is None else cost * volume,
            "teacher_cost_per_request_usd": teacher_cost,
            "cost_reduction": _reduction(cost, teacher_cost),
            "quality": mine["quality"], "teacher_quality": top["quality"],
            "quality_loss": None if mine["quality"] is None else top["quality"] - mine["quality"],
            "latency_p95_ms": mine["latency_p95_ms"], **cost_to_make}


def _cascade_row(load: _Loader, tiers: list[Tier], thresholds: list[float], volume: float,
                 make: _MakingCosts) -> dict[str, Any] | None:
    o = load(tiers)
    if o.n == 0:
        return None
    report = tradeoff_report(o, thresholds, WhatIf(monthly_volume=volume))
    c, w, top = report["cascade"], report["whatif"], report["tiers"][-1]
    costs = [make.of(t, generation_id(t)) for t in tiers[:-1]]
    known = [x["cost_to_make_usd"] for x in costs]
    teacher_cost = top["cost_per_request_usd"]
    return {"tier": None, "model": " → ".join(t.model for t in tiers), "generation": None, "tasks": o.n,
            "quality_basis": o.quality_basis, "cost_per_request_usd": c["cost_per_request_usd"],
            "monthly_cost_usd": w["monthly_run_cost_usd"], "teacher_cost_per_request_usd": teacher_cost,
            "cost_reduction": _reduction(c["cost_per_request_usd"], teacher_cost),
            "quality": c["quality"], "teacher_quality": w["teacher_quality"],
            "quality_loss": w["teacher_quality"] - c["quality"], "latency_p95_ms": c["latency_p95_ms"],
            "escalation_rate": c["escalation_rate"], "teacher_monthly_cost_usd": w["teacher_only_monthly_usd"],
            "cost_to_make_usd": None if any(x is None for x in known) else sum(known),
            "cost_to_make_note": "; ".join(f"tier {t.tier}: {x['cost_to_make_note']}"
                                           for t, x in zip(tiers, costs, strict=False)),
            "teacher_figures": top}


def _teacher_row(cascade: dict[str, Any], teacher: Tier, volume: float) -> dict[str, Any]:
    top = cascade.pop("teacher_figures")
    return {"tier": teacher.tier, "model": teacher.model, "generation": generation_id(teacher),
            "tasks": cascade["tasks"], "quality_basis": cascade["quality_basis"],
            "cost_per_request_usd": top["cost_per_request_usd"],
            "monthly_cost_usd": cascade["teacher_monthly_cost_usd"],
            "teacher_cost_per_request_usd": top["cost_per_request_usd"], "cost_reduction": 0.0,
            "quality": top["quality"], "teacher_quality": top["quality"], "quality_loss": 0.0,
            "latency_p95_ms": top["latency_p95_ms"], "cost_to_make_usd": 0.0,
            "cost_to_make_note": "nothing to make"}


def _teacher_alone(load: _Loader, teacher: Tier, volume: float) -> dict[str, Any] | None:
    o = load([teacher])
    if o.n == 0:
        return None
    return {**_row(o, 0, volume, teacher, generation_id(teacher), {}), "cost_reduction": 0.0, "quality_loss": 0.0,
            "cost_to_make_usd": 0.0, "cost_to_make_note": "nothing to make"}


def _best_student(ws: Workspace, load: _Loader, students: list[Tier], teacher: Tier, volume: float,
                  make: _MakingCosts, kind: str) -> dict[str, Any] | None:
    """The student generation of this kind (any tier, current or earlier) with the best quality on
    the held-out tasks (then the cheaper)."""
    repo = TrajectoryRepository(ws)
    best: dict[str, Any] | None = None
    for s in students:
        for _tier, generation, _model, _count in repo.generations(s.tier):
            params = repo.generation_params(generation) or {}
            model = params.get("model") or _model
            if _kind(params, model, make.fine_tuned_models) != kind:
                continue
            o = load([s, teacher], {s.tier: [generation]})
            if o.n == 0:
                continue
            row = _row(o, 0, volume, s.replace(model=model), generation, make.of(s.replace(model=model), generation))
            row["current"] = generation == generation_id(s)
            if params.get("demonstrations_mode"):
                row["demonstrations"] = params["demonstrations_mode"]
            if best is None or (row["quality"], -row["cost_per_request_usd"]) > \
                    (best["quality"], -best["cost_per_request_usd"]):
                best = row
    return best


def _kind(params: dict[str, Any], model: str, fine_tuned: set[str]) -> str | None:
    if params.get("demonstrations"):
        return PROMPT
    if model in fine_tuned or model.startswith("ft:"):
        return FINE_TUNED
    return None


class _MakingCosts:
    """What a student generation cost to make: its fine-tune job's training (trained tokens at the
    training price; unknown when either is), or its prompt program's requests."""

    def __init__(self, ws: Workspace) -> None:
        self.jobs = {j["fine_tuned_model"]: j for j in JobStore(ws).list() if j["fine_tuned_model"]}
        self.fine_tuned_models = set(self.jobs)
        self.prices = training_prices(ws.path)
        self.tiers = {t.tier: t for t in TierRepository(ws).list()}
        self.params = TrajectoryRepository(ws).generation_params

    def of(self, tier: Tier, generation: str) -> dict[str, Any]:
        current = self.tiers.get(tier.tier)
        program = current.demonstrations if current is not None and generation_id(current) == generation else None
        if program is not None or "demonstrations" in (self.params(generation) or {}):
            made = program.made if program is not None else {}
            micro, requests = made.get("cost_micro", 0), int(made.get("requests") or 0)
            note = (f"{requests} requests (demonstrations chosen from recorded answers"
                    + (", an instruction drafted by the teacher)" if requests else ")"))
            return {"cost_to_make_usd": None if micro is None else float(micro_to_usd(int(micro))),
                    "cost_to_make_note": note if micro is not None else note + "; the draft's cost is unknown"}
        job = self.jobs.get(tier.model)
        if job is None:
            if not tier.model.startswith("ft:"):
                return {"cost_to_make_usd": 0.0, "cost_to_make_note": "a base model: nothing to make"}
            return {"cost_to_make_usd": None, "cost_to_make_note": "unknown: no fine-tune job of this workspace made it"}
        if job["backend"] == "local":
            return {"cost_to_make_usd": 0.0, "cost_to_make_note": f"job {job['id']}: trained on this machine"}
        price = training_price(self.prices, job["base_model"])
        if not job["trained_tokens"] or price is None:
            what = "trained tokens" if not job["trained_tokens"] else f"a training price for {job['base_model']}"
            return {"cost_to_make_usd": None, "cost_to_make_note": f"job {job['id']}: unknown ({what} not known)"}
        usd = Decimal(job["trained_tokens"]) * Decimal(str(price)) / Decimal(1_000_000)
        return {"cost_to_make_usd": float(usd),
                "cost_to_make_note": f"job {job['id']}: {job['trained_tokens']:,} trained tokens at ${price}/1M"}


def _reduction(cost: float | None, teacher_cost: float | None) -> float | None:
    if cost is None or not teacher_cost:
        return None
    return 1.0 - cost / teacher_cost


def _clean(value: Any) -> Any:
    """NaN (a figure nobody measured) is null: unknown is not zero."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
