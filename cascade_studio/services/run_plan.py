"""What a collection run would send and cost, before it spends anything: skipped tasks (already
answered by the tier's current generation), requests to send, and an estimated cost."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tiers import Tier, generation_id, generation_keys
from cascade_studio.core.trajectory import Usage, build_request, cost_of
from cascade_studio.services.run_lock import TierRunLock
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import Run, RunRepository, TrajectoryRepository
from cascade_studio.store.workspace import Workspace


@dataclass
class RunPlan:
    """What a run would do before it spends anything."""

    tier: int
    model: str
    generation: str
    tasks: int
    already: int  # ok answers of this generation exist: skipped
    requests: int  # to send
    input_tokens: int  # estimated, for the requests to send
    output_tokens: int
    output_basis: str  # where the output length comes from
    estimated_cost_micro: int
    episodes: int = 0  # of the tasks to send, those run as agent episodes (several requests each)
    steps_basis: str = ""  # where an episode's number of steps comes from

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "model": self.model, "generation": self.generation, "tasks": self.tasks,
                "already_collected": self.already, "requests": self.requests,
                "estimated_input_tokens": self.input_tokens, "estimated_output_tokens": self.output_tokens,
                "output_basis": self.output_basis,
                "estimated_cost_usd": str(micro_to_usd(self.estimated_cost_micro)),
                "episodes": self.episodes, "steps_basis": self.steps_basis}

    def sentence(self) -> str:
        todo = self.tasks - self.already
        unit = f"{todo} tasks ({self.episodes} agent episodes), about {self.requests} requests" if self.episodes \
            else f"{self.requests} requests"
        head = (f"{self.already} of {self.tasks} already collected; {unit if self.episodes else self.requests} to go"
                if self.already else unit)
        return f"{head}, about ${micro_to_usd(self.estimated_cost_micro):.4f} (tier {self.tier}, {self.model})"


DEFAULT_OUTPUT_TOKENS = 200
DEFAULT_EPISODE_STEPS = 3
_SAMPLE = 400  # tasks whose prompts are tokenized for the estimate; the rest are extrapolated


def plan_run(ws: Workspace, tier: Tier, task_ids: list[str], *, again: bool = False, batch: bool = False,
             trials: int = 1) -> RunPlan:
    """Requests and an estimated cost: input tokens from the tasks' bytes at the workspace's
    tokens-per-byte rates (services.token_estimate: counted with the bundled tokenizer when the
    tasks were imported; a sample of at most 400 requests extrapolated), output tokens from the
    tier's recent answers of this generation (their median) or a stated default. With `trials`,
    each task runs that many times (trials already collected are skipped)."""
    from cascade_studio.services.token_estimate import calibration, evenly
    from cascade_studio.services.tokenizer import encoding_name_for

    trajs = TrajectoryRepository(ws)
    keys = generation_keys(tier)
    if trials > 1:
        have = set() if again else trajs.ok_units(tier.tier, keys, task_ids)
        missing = {t: sum((t, k) not in have for k in range(trials)) for t in task_ids}
        already = {t for t, n in missing.items() if n == 0}
    else:
        already = set() if again else trajs.ok_task_ids(tier.tier, keys, task_ids)
        missing = dict.fromkeys(task_ids, 1)
    todo = [t for t in task_ids if t not in already]
    tasks = TaskRepository(ws)
    found = tasks.get_many(evenly(todo, _SAMPLE))
    sample = list(found.values())
    sizes = []
    if sample:
        rates = calibration(ws, encoding_name_for(tier.model), sample)
        sizes = [rates.estimate(build_request(tier, task.messages, task.tools)["messages"], task.tools)
                 for task in sample]
    episode_set = tasks.episode_ids(todo)
    episodes = sum(missing[t] for t in episode_set)  # episodes to run (a task's trials each)
    singles = sum(missing[t] for t in todo if t not in episode_set)
    steps, steps_basis = (trajs.mean_episode_steps(tier.tier, keys), "") if episodes else (None, "")
    if episodes:
        steps_basis = (f"{steps:.1f} steps per episode (the tier's recent episodes)" if steps
                       else f"{DEFAULT_EPISODE_STEPS} steps per episode (no episodes yet)")
        steps = steps or DEFAULT_EPISODE_STEPS
    # an episode sends its growing conversation at every step: about steps x (1 + steps) / 2 prompts
    weight = singles + (episodes * steps * (1 + steps) / 2 if episodes else 0)
    requests = int(round(singles + (episodes * steps if episodes else 0)))
    input_tokens = int(round(statistics.fmean(sizes) * weight)) if sizes else 0
    recent = trajs.recent_completion_tokens(tier.tier, keys)
    if recent:
        per_answer, basis = int(statistics.median(recent)), f"median of the tier's last {len(recent)} answers"
    else:
        per_answer, basis = DEFAULT_OUTPUT_TOKENS, f"{DEFAULT_OUTPUT_TOKENS} tokens per answer (no answers yet)"
    output_tokens = per_answer * requests
    cost = cost_of(Usage(input_tokens, output_tokens), tier, batch_discount=Decimal("0.5") if batch else None)
    return RunPlan(tier.tier, tier.model, generation_id(tier), len(task_ids), len(already), requests, input_tokens,
                   output_tokens, basis, cost, episodes, steps_basis)


def batch_problem(ws: Workspace, task_ids: list[str]) -> str | None:
    """Why these tasks cannot go through the Batch API (None when they can): an agent episode needs
    each step's tool results before its next request, which a batch cannot wait for."""
    episodes = TaskRepository(ws).episode_ids(task_ids)
    if not episodes:
        return None
    return (f"{len(episodes)} of the {len(task_ids)} tasks are agent episodes (they name an environment); the Batch "
            "API cannot run them, since every step needs the previous step's tool results. Collect them without "
            "the Batch API, or choose a category of single-request tasks.")



@dataclass
class UnfinishedRun:
    """A run of a tier's current generation that stopped before its end (cancel, failure, a crash or
    a closed window): after a restart the GUI says so and offers to resume it."""

    run: Run
    to_go: int  # tasks (with trials: task trials) without an answer yet, as the run counts them on resume
    collector: dict | None = None  # the process collecting the tier right now (then it is not to be resumed here)
    trials: int = 1

    def _to_go(self) -> str:
        return f"{self.to_go:,} to go" if self.trials == 1 else \
            f"{self.to_go:,} episodes to go ({self.trials} trials a task)"

    @property
    def tier(self) -> int:
        return self.run.tier

    def sentence(self) -> str:
        if self.collector is not None:
            who = f"process {self.collector['pid']}" if self.collector.get("pid") else "another process"
            return f"tier {self.run.tier}: run {self.collector.get('run_id', self.run.id)} is being collected by " \
                   f"{who}, {self._to_go()}"
        return f"tier {self.run.tier}: unfinished run {self.run.id}, {self._to_go()}"


def unfinished_runs(ws: Workspace) -> list[UnfinishedRun]:
    """The newest unfinished run of each tier (of its current generation) that still has tasks to go."""
    runs, trajs = RunRepository(ws), TrajectoryRepository(ws)
    found = []
    for tier in TierRepository(ws).list():
        run = runs.latest_unfinished(tier.tier, generation_id(tier))
        if run is None:
            continue
        trials = max(1, int(run.params.get("trials") or 1))  # counted as the run counts them (task, trial)
        done = runs.finished_units(run.id)
        if not run.params.get("again"):  # tasks answered by another run are skipped too (as the run does)
            done |= trajs.ok_units(tier.tier, generation_keys(tier), run.task_ids)
        to_go = sum((t, k) not in done for t in set(run.task_ids) for k in range(trials))
        if to_go:
            found.append(UnfinishedRun(run, to_go, TierRunLock(ws.path, tier.tier, run.id).holder(), trials))
    return found
