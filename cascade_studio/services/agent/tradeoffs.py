"""The per-step cascade of agent episodes (`whatif --episodes`, the Trade-offs page's episode
mode): from the teacher's episodes and each student's teacher-forced steps, cost per episode,
share of steps per tier and quality at thresholds, the sweep and its Pareto front, and the monthly
what-if. Every figure here is an estimate from teacher-forced steps (the episode goes on as the
teacher's after each step); free-running success, where the student ran its own episodes, is
reported beside it as measured."""

from __future__ import annotations

from typing import Any

from cascade_studio.core.episode_eval import EpisodeSteps, pareto, simulate, sweep
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tiers import Tier
from cascade_studio.services.agent.evaluation import episode_comparison, episode_steps
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace

BASIS = ("estimated from teacher-forced steps: at each step a student acts on the teacher's conversation so far; "
         "after a step the episode goes on as the teacher's")


NO_ROWS = ("No teacher episode has every student's teacher-forced steps yet: run `cascade-studio evaluate --student N "
           "--mode steps --collect` for each student tier (or Evaluate on the Evaluation page).")


def _usd(micro: float) -> str:
    return str(micro_to_usd(round(micro)))


def load_rows(ws: Workspace, tiers: list[Tier], category: str | None = None) -> tuple[list[EpisodeSteps], int]:
    """(teacher episodes with every student's teacher-forced steps, number of episode tasks)."""
    repo = TaskRepository(ws)
    ids = repo.ids(category)
    agents = repo.episode_ids(ids)
    task_ids = [t for t in ids if t in agents]
    return episode_steps(ws, tiers[-1], tiers[:-1], task_ids), len(task_ids)


def figures(rows: list[EpisodeSteps], tiers: list[Tier], thresholds: list[float], policy: str, volume: float,
            with_sweep: bool = False) -> dict[str, Any]:
    """The per-step cascade at `thresholds` over loaded rows (fast: the page calls it on every slider move)."""
    point = simulate(rows, thresholds, policy)
    teacher_only = sum(sum(r.teacher_cost) for r in rows) / len(rows)
    out: dict[str, Any] = {
        "cascade": {
            "thresholds": thresholds,
            "cost_per_episode_usd": _usd(point["cost_per_episode_micro"]),
            "share_answered": {str(t.tier): round(s, 4) for t, s in zip(tiers, point["share_answered"], strict=True)},
            "step_agreement": point["step_agreement"], "episode_agreement": point["episode_agreement"],
        },
        "teacher_only": {"cost_per_episode_usd": _usd(teacher_only)},
        "whatif": {"volume_episodes_per_month": volume,
                   "monthly_cost_usd": _usd(point["cost_per_episode_micro"] * volume),
                   "teacher_only_monthly_cost_usd": _usd(teacher_only * volume),
                   "monthly_saving_usd": _usd((teacher_only - point["cost_per_episode_micro"]) * volume)},
    }
    if with_sweep:
        points = sweep(rows, policy)
        out["pareto"] = [p["threshold"] for p in pareto(points)]
        for p in points:
            p["cost_per_episode_usd"] = _usd(p.pop("cost_per_episode_micro"))
        out["sweep"] = points
    return out


def episode_whatif(ws: Workspace, tiers: list[Tier], *, thresholds: list[float] | None = None, policy: str = "step",
                   volume: float = 100_000, category: str | None = None, with_sweep: bool = False) -> dict[str, Any]:
    """The per-step cascade at `thresholds` (default: the students' own) over the episode tasks."""
    students = tiers[:-1]
    thresholds = thresholds or [t.threshold for t in students]
    if len(thresholds) != len(students):
        raise ValueError(f"give one threshold per student tier ({len(students)})")
    rows, tasks = load_rows(ws, tiers, category)
    out: dict[str, Any] = {"policy": policy, "basis": BASIS, "episodes": len(rows), "episode_tasks": tasks}
    if not rows:
        out["message"] = NO_ROWS
        return out
    out.update(figures(rows, tiers, thresholds, policy, volume, with_sweep))
    measured = measured_free_running(ws, tiers, rows)
    if measured:
        out["measured_free_running"] = measured
    return out


def measured_free_running(ws: Workspace, tiers: list[Tier], rows: list[EpisodeSteps]) -> dict[str, Any] | None:
    """The cheapest student's measured free-running success beside the teacher's, on the rows' tasks
    (None: it has run none of them), as `whatif --episodes` prints it and the Trade-offs tab shows it."""
    measured = episode_comparison(ws, tiers[-1], tiers[0], [r.task_id for r in rows])
    if not measured["tasks"]:
        return None
    return {"tier": tiers[0].tier, "tasks": measured["tasks"],
            "student_success_rate": measured["student"]["success_rate"],
            "teacher_success_rate": measured["teacher"]["success_rate"],
            "student_judged_by": measured["student"]["judged_by"],
            "teacher_judged_by": measured["teacher"]["judged_by"],
            "compared": measured["compared"]}
