"""Evaluating a student agent against its teacher (core.episode_eval for the rules):

- teacher-forced steps: for every step of the teacher's episodes, the student's next action given
  the teacher's conversation so far; one request per step, cheap and concurrent, stored beside the
  episodes (episode key "forced:<teacher episode>:<student generation>") so they are paid once;
- free-running episodes: the student's own episodes (a normal collection run of the student);
- the per-step cascade's inputs (core.episode_eval.EpisodeSteps) for the trade-off sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from cascade_studio.core.episode import Episode, Step, conversation
from cascade_studio.core.episode_eval import (
    EpisodeSteps,
    StepResult,
    compare_step,
    episode_side_summary,
    episode_success,
    same_basis_comparison,
    step_summary,
    trial_figures,
)
from cascade_studio.core.step_alignment import alignment_summary, pair_trials, pairing_summary
from cascade_studio.core.tiers import Tier, generation_id, generation_keys
from cascade_studio.core.trajectory import ResponseError, build_request, trajectory_from_response
from cascade_studio.services.clients import describe_error, make_async_client
from cascade_studio.services.evaluation import collect_missing
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import TrajectoryRepository, now
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)
FORCED = "forced:"
MODES = ("steps", "episodes", "both")


def forced_key(teacher_episode: str, student: Tier) -> str:
    return f"{FORCED}{teacher_episode}:{generation_id(student)}"


def latest_episodes(ws: Workspace, tier: Tier, task_ids: list[str], *, with_logprobs: bool = True) -> dict[str, Episode]:
    """Task id -> the tier's latest ok episode of its current generation (tasks without one left out)."""
    repo = TrajectoryRepository(ws)
    latest = repo.latest_ok_ids(tier.tier, generation_keys(tier))
    episodes = EpisodeRepository(ws)
    out = {}
    for task_id in task_ids:
        if task_id in latest:
            episode = episodes.of_trajectory(latest[task_id], with_logprobs=with_logprobs)
            if episode is not None and episode.steps:
                out[task_id] = episode
    return out


async def collect_forced(ws: Workspace, teacher: Tier, student: Tier, task_ids: list[str], secrets: SecretStore,
                         *, concurrency: int | None = None) -> dict[str, Any]:
    """The student's teacher-forced action at every step of the teacher's episodes that has none
    yet. Returns {"requests", "failed", "message"}; nothing already stored is sent again."""
    tasks = TaskRepository(ws)
    repo = EpisodeRepository(ws)
    todo: list[tuple[Any, Episode, int]] = []
    for task_id, episode in latest_episodes(ws, teacher, task_ids).items():
        task = tasks.get(task_id)
        if task is None:
            continue
        have = {s.index for s in repo.steps(forced_key(episode.key, student))}
        todo += [(task, episode, k) for k in range(len(episode.steps)) if k not in have]
    if not todo:
        return {"requests": 0, "failed": 0, "message": ""}
    client = make_async_client(student, secrets, max_retries=4)
    gate = asyncio.Semaphore(max(1, concurrency or student.max_concurrency))
    failures: list[str] = []

    async def one(task: Any, episode: Episode, k: int) -> None:
        tools = episode.steps[0].call.request.get("tools") or task.tools
        # the teacher episode's own conversation (its prompt, not the task's as it is now)
        request = build_request(student, conversation(episode.messages_before(task.messages), episode.steps, upto=k),
                                tools)
        async with gate:
            started, t0 = now(), time.perf_counter()
            try:
                raw = await client.post("/chat/completions", body=request, cast_to=bytes)
                call = trajectory_from_response(task.id, student, request, orjson.loads(raw),
                                                (time.perf_counter() - t0) * 1000, started_at=started,
                                                finished_at=now())
            except asyncio.CancelledError:
                raise
            except (ResponseError, orjson.JSONDecodeError) as exc:
                failures.append(f"{task.id} step {k + 1}: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - in words, per step
                failures.append(f"{task.id} step {k + 1}: {describe_error(exc, student)[1]}")
                return
        forced = Episode(task.id, student.tier, student.model, generation_id(student),
                         forced_key(episode.key, student), environment=episode.environment)
        repo.save_step(forced, Step(k, call), None)

    async with client:
        await asyncio.gather(*(one(*item) for item in todo))
    message = f"{len(failures)} teacher-forced step(s) could not be collected; first: {failures[0]}" if failures else ""
    return {"requests": len(todo), "failed": len(failures), "message": message}


def step_results(ws: Workspace, teacher: Tier, student: Tier, task_ids: list[str]) -> list[StepResult]:
    tasks = TaskRepository(ws)
    repo = EpisodeRepository(ws)
    out = []
    for task_id, episode in latest_episodes(ws, teacher, task_ids).items():
        forced = {s.index: s.call for s in repo.steps(forced_key(episode.key, student))}
        task = tasks.get(task_id)
        category = task.category if task else ""
        out += [compare_step(task_id, category, s.index, s.call, forced[s.index])
                for s in episode.steps if s.index in forced]
    return out


def episode_steps(ws: Workspace, teacher: Tier, students: list[Tier], task_ids: list[str]) -> list[EpisodeSteps]:
    """The per-step cascade's inputs: teacher episodes where every student has every forced step."""
    tasks = TaskRepository(ws)
    repo = EpisodeRepository(ws)
    out = []
    for task_id, episode in latest_episodes(ws, teacher, task_ids).items():
        task = tasks.get(task_id)
        row = EpisodeSteps(task_id, task.category if task else "", [s.call.cost_micro for s in episode.steps])
        complete = True
        for student in students:
            forced = {s.index: s.call for s in repo.steps(forced_key(episode.key, student))}
            if len(forced) < len(episode.steps):
                complete = False
                break
            method = student.confidence_method.value
            row.confidence.append([forced[s.index].confidence(method) for s in episode.steps])
            row.cost.append([forced[s.index].cost_micro for s in episode.steps])
            row.agrees.append([compare_step(task_id, row.category, s.index, s.call, forced[s.index]).agrees
                               for s in episode.steps])
        if complete:
            out.append(row)
    return out


def episodes_by_trial(ws: Workspace, tier: Tier, task_ids: list[str]) -> dict[str, list[Episode]]:
    """Task id -> the tier's ok episodes of its current generation, one per trial (the latest of each),
    in trial order (tasks without one left out)."""
    repo = EpisodeRepository(ws)
    out: dict[str, list[Episode]] = {}
    for task_id, trials in repo.trial_ids(tier.tier, generation_keys(tier), task_ids).items():
        episodes = [repo.of_trajectory(trials[t]) for t in sorted(trials)]
        kept = [e for e in episodes if e is not None and e.steps]
        if kept:
            out[task_id] = kept
    return out


Judge = Callable[[Episode, Any], "bool | None"]  # a verdict on an episode of a task (issue 30's judge), or None


def episode_comparison(ws: Workspace, teacher: Tier, student: Tier, task_ids: list[str], *,
                       judge: Judge | None = None) -> dict[str, Any]:
    """Free-running episodes side by side, every trial of each: success (and what judged it, per
    core.episode_eval.SUCCESS_BASES; `judge` gives verdicts where nothing stronger judges), success per
    trial, pass^k, steps, cost and wall time per episode; the comparison over tasks judged on the same
    basis for both sides; the offline step alignment of the two sides' episodes."""
    tasks = TaskRepository(ws)
    t_eps = episodes_by_trial(ws, teacher, task_ids)
    s_eps = episodes_by_trial(ws, student, task_ids)
    common = [t for t in task_ids if t in t_eps and t in s_eps]
    found = tasks.get_many(common)
    rows: dict[str, list[tuple[Episode, bool | None, str]]] = {"teacher": [], "student": []}
    verdicts: dict[str, dict[str, list[tuple[bool | None, str]]]] = {"teacher": {}, "student": {}}
    for task_id in common:
        task = found.get(task_id)
        expected = task.expected if task else None
        teacher_answer = t_eps[task_id][0].final_answer
        for side, episodes, reference in (("teacher", t_eps[task_id], None), ("student", s_eps[task_id], teacher_answer)):
            for e in episodes:
                ok, basis = episode_success(e, expected, reference, judge=judge(e, task) if judge else None)
                rows[side].append((e, ok, basis))
                verdicts[side].setdefault(task_id, []).append((ok, basis))
    out = {"tasks": len(common), "missing": len([t for t in task_ids if t in t_eps]) - len(common),
           "teacher": episode_side_summary(rows["teacher"]), "student": episode_side_summary(rows["student"]),
           "compared": same_basis_comparison(verdicts["teacher"], verdicts["student"])}
    for side in ("teacher", "student"):
        out[side]["trials"] = trial_figures({t: [ok for ok, _ in v] for t, v in verdicts[side].items()})
    # trial by trial where both sides ran the same trial number; else against the teacher's first trial
    paired = [(task_id, pair) for task_id in common for pair in pair_trials(t_eps[task_id], s_eps[task_id])]
    out["alignment"] = alignment_summary([(task_id, (found[task_id].category if task_id in found else ""), t, s)
                                          for task_id, (t, s, _) in paired])
    out["alignment"]["pairing"] = pairing_summary([pair for _, pair in paired])
    return out


async def evaluate_agents(ws: Workspace, teacher: Tier, student: Tier, task_ids: list[str], secrets: SecretStore, *,
                          mode: str = "both", collect: bool = False,
                          calibrate: tuple[str, float] | None = None, judge: Any = None,
                          judge_checked: bool = False, dry_run: bool = False,
                          judge_batch: bool = False) -> dict[str, Any]:
    """`evaluate --mode`: step agreement and/or episode success for the episode tasks of `task_ids`;
    `judge` (a core.judges.Judge, issue 30) gives verdicts on episodes nothing stronger judges."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    episode_ids = sorted(TaskRepository(ws).episode_ids(task_ids), key=task_ids.index)
    out: dict[str, Any] = {"episode_tasks": len(episode_ids)}
    if not episode_ids:
        return out
    if collect:
        await collect_missing(ws, [teacher] if mode == "steps" else [teacher, student], episode_ids, secrets)
    if mode in ("steps", "both"):
        collected = await collect_forced(ws, teacher, student, episode_ids, secrets) if collect else None
        results = step_results(ws, teacher, student, episode_ids)
        out["step_agreement"] = {**step_summary(results), "estimate_basis": "teacher-forced steps"}
        if calibrate and results:  # the per-step threshold: each step escalates on its own confidence
            from cascade_studio.core.evaluation import threshold_for_quality, threshold_for_rate

            method = student.confidence_method.value
            confs = [r.result.student_confidence.get(method) for r in results]
            ok = [r.agrees for r in results]
            how = threshold_for_rate if calibrate[0] == "rate" else threshold_for_quality
            out["step_agreement"]["calibration"] = how(confs, ok, [True] * len(ok), calibrate[1]).to_json()
        if collected and collected["message"]:
            out["step_agreement"]["collection_problem"] = collected["message"]
    if mode in ("episodes", "both"):
        verdict: Judge | None = None
        if judge is not None:  # issue 30: a judge where no outcome, state check or expected answer decides
            from cascade_studio.services.judged_evaluation import judged_episode_success

            chosen = {"teacher": episodes_by_trial(ws, teacher, episode_ids),
                      "student": episodes_by_trial(ws, student, episode_ids)}
            judged, judge_report = await judged_episode_success(
                ws, judge, chosen, secrets, include_checked=judge_checked, dry_run=dry_run, batch=judge_batch)

            def verdict(e: Episode, task: Any) -> bool | None:  # every trial of each side has its verdict
                side = "teacher" if e.tier == teacher.tier else "student"
                return judged[side].get((e.task_id, e.trial))
        out["episodes"] = episode_comparison(ws, teacher, student, episode_ids, judge=verdict)
        if judge is not None:
            out["episodes"]["judge"] = judge_report
    return out
