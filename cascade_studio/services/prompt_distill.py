"""Prompt distillation (`distil prompt`): a new generation of a student tier whose requests carry
demonstrations from the teacher's trajectories (core.demonstrations), drawn only from tasks outside
the dataset's validation split (the tasks its evaluation and the promotion gate use).

Choosing the demonstrations reads recorded trajectories only: it sends nothing and costs nothing.
With `evaluate_first` the new generation and the tier's current one are evaluated against the
teacher on the validation split (answers missing are collected: that is paid), and the new one
takes the tier only when it agrees at least as often (the promotion gate), unless forced.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import orjson

from cascade_studio.core.demonstrations import (
    FIXED,
    MAX_K,
    MODES,
    PromptProgram,
    answer_text,
    choose_fixed,
    demonstration_from,
    instruction_request,
)
from cascade_studio.core.errors import UserError
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.tiers import Tier, generation_id, generation_keys, teacher_of
from cascade_studio.core.trajectory import Usage, cost_of, response_problem
from cascade_studio.services import events
from cascade_studio.services.clients import describe_error, make_async_client
from cascade_studio.services.evaluation import evaluate, latest_sides
from cascade_studio.services.promotion import CandidateComparison, validation_split
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

MAX_POOL = 2000  # a "nearest" program's pool: the demonstrations it may choose from


@dataclass
class PromptCandidate:
    """A prompt-distilled generation of a tier, before or after it takes the tier."""

    tier: Tier  # the tier with the demonstrations
    teacher: Tier
    dataset_id: int
    excluded: int  # validation tasks left out of the pool
    eligible: int  # teacher answers outside the validation split (episodes left out)
    episodes_skipped: int
    disagreed: int | None  # of the chosen ("fixed"), how many the student had answered otherwise; None: unknown
    comparison: CandidateComparison | None = None
    applied: bool = False

    @property
    def program(self) -> PromptProgram:
        assert self.tier.demonstrations is not None
        return self.tier.demonstrations

    def to_json(self) -> dict[str, Any]:
        p = self.program
        return {"tier": self.tier.tier, "model": self.tier.model, "generation": generation_id(self.tier),
                "mode": p.mode, "k": p.k, "demonstrations": len(p.demonstrations),
                "demonstration_tasks": [d.task_id for d in p.demonstrations] if p.mode == FIXED else None,
                "dataset": self.dataset_id, "validation_tasks_excluded": self.excluded, "eligible": self.eligible,
                "episodes_skipped": self.episodes_skipped, "disagreed": self.disagreed,
                "made": p.made, "applied": self.applied,
                "comparison": None if self.comparison is None else self.comparison.to_json()}

    def sentence(self) -> str:
        p = self.program
        text = (f"Tier {self.tier.tier} ({self.tier.model}), generation {generation_id(self.tier)}: "
                f"{p.summary()} from teacher tier {self.teacher.tier}'s answers; the {self.excluded} validation "
                f"tasks of dataset {self.dataset_id} were left out (they are what it is evaluated on)")
        if self.disagreed is not None and p.mode == FIXED:
            text += f"; {self.disagreed} of the chosen are tasks the student answered otherwise"
        if self.episodes_skipped:
            text += f"; {self.episodes_skipped} agent episodes are not used as demonstrations"
        text += "."
        if self.comparison is not None:
            text += " " + self.comparison.sentence()
        text += (" It now answers as tier " + str(self.tier.tier) + "." if self.applied else
                 " The tier was not changed.")
        return text


async def build_candidate(ws: Workspace, student_no: int, k: int, mode: str, *, dataset_id: int | None = None,
                    reasoning: bool = False, seed: int = 0, instruction: str = "") -> PromptCandidate:
    """The student tier with a new program (not saved). Raises UserError saying what is missing."""
    if mode not in MODES:
        raise UserError(f"mode {mode!r}: use one of {', '.join(MODES)}", code=2)
    if not 1 <= k <= MAX_K:
        raise UserError(f"k {k}: give 1-{MAX_K} demonstrations", code=2)
    tiers = TierRepository(ws).list()
    teacher = teacher_of(tiers)
    student = next((t for t in tiers if t.tier == student_no), None)
    if student is None or teacher is None:
        raise UserError(f"no tier {student_no}; see `tiers list`", code=2)
    if student.tier == teacher.tier:
        raise UserError(f"tier {student_no} is the teacher (the highest tier); distil a lower tier", code=2)
    dataset, valid = validation_split(ws, dataset_id)
    held_out = set(valid)
    repo = TrajectoryRepository(ws)
    teacher_ids = repo.latest_ok_ids(teacher.tier, generation_keys(teacher))
    outside = sorted(t for t in teacher_ids if t not in held_out)
    tasks = TaskRepository(ws).get_many(outside)
    episodes = [t for t in outside if t in tasks and tasks[t].is_episode]
    pool = [t for t in outside if t in tasks and not tasks[t].is_episode]
    if not pool:
        raise UserError(f"the teacher (tier {teacher.tier}) has no answers outside the validation split of dataset "
                        f"{dataset}; collect the teacher on more tasks first")
    disagreed: dict[str, bool] | None = None
    if mode == FIXED:
        disagreed = await _disagreements(ws, teacher, student, pool)
        chosen = choose_fixed([(t, tasks[t].category, bool(disagreed and disagreed.get(t))) for t in pool], k, seed)
    else:
        chosen = pool if len(pool) <= MAX_POOL else choose_fixed([(t, tasks[t].category, False) for t in pool],
                                                                   MAX_POOL, seed)
    sides = latest_sides(ws, teacher, chosen)
    # choosing reads recorded answers only; an instruction the teacher drafted cost its request
    requests, cost_micro = drafting_cost(ws, student_no) if instruction else (0, 0)
    demos = [demonstration_from(t, tasks[t].category, tasks[t].messages, sides[t].tool_calls,
                                sides[t].reasoning if sides[t].tool_calls else sides[t].answer,
                                reasoning=reasoning, index=i)
             for i, t in enumerate(chosen) if t in sides]
    made = {"dataset": dataset, "validation_tasks_excluded": len(held_out), "teacher_tier": teacher.tier,
            "teacher_generation": generation_id(teacher), "seed": seed, "reasoning": reasoning,
            "requests": requests, "cost_micro": cost_micro, "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    program = PromptProgram(mode, min(k, len(demos)), tuple(demos), instruction, made)
    base = student.replace(demonstrations=None)
    return PromptCandidate(base.replace(demonstrations=program), teacher, dataset, len(held_out), len(pool),
                           len(episodes),
                           None if disagreed is None else sum(1 for d in demos if disagreed.get(d.task_id)))


async def _disagreements(ws: Workspace, teacher: Tier, student: Tier, pool: list[str]) -> dict[str, bool] | None:
    """{task: the student's plain model answered otherwise than the teacher} from recorded answers
    (offline similarity: nothing sent, nothing recorded); None when it has none on these tasks."""
    base = student.replace(demonstrations=None)
    if not TrajectoryRepository(ws).ok_task_ids(base.tier, generation_keys(base), pool):
        return None
    report = await evaluate(ws, teacher, base, pool, SecretStore(), use_embeddings=False, record=False)
    return {r.task_id: not r.agrees for r in report.results}


async def distil_prompt(ws: Workspace, student_no: int, k: int, mode: str, secrets: SecretStore, *,
                        dataset_id: int | None = None, reasoning: bool = False, seed: int = 0,
                        evaluate_first: bool = False, force: bool = False,
                        use_embeddings: bool = True, instruction: str = "") -> PromptCandidate:
    """Build the program and give the tier its new generation; with `evaluate_first`, only when the
    evaluation on the validation split shows it agrees with the teacher at least as often as the
    tier's current generation (or `force`)."""
    candidate = await build_candidate(ws, student_no, k, mode, dataset_id=dataset_id, reasoning=reasoning, seed=seed,
                                      instruction=instruction)
    if evaluate_first:
        _, task_ids = validation_split(ws, candidate.dataset_id)
        category = f"validation split of dataset {candidate.dataset_id}"
        current = TierRepository(ws).get(student_no)
        new = await evaluate(ws, candidate.teacher, candidate.tier, task_ids, secrets, collect=True,
                             use_embeddings=use_embeddings, category=category)
        old = None
        if current is not None and generation_id(current) != generation_id(candidate.tier):
            old = await evaluate(ws, candidate.teacher, current, task_ids, secrets, collect=True,
                                 use_embeddings=use_embeddings, category=category)
        candidate.comparison = CandidateComparison(candidate.dataset_id, len(task_ids), new, old)
        if not force and not _not_worse(new.summary, None if old is None else old.summary):
            return candidate
    save_generation(ws, candidate.tier)
    candidate.applied = True
    return candidate


def _not_worse(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    a = new["overall"]["agreement"]
    b = None if old is None else old["overall"]["agreement"]
    return a is not None and (b is None or a >= b)


def save_generation(ws: Workspace, tier: Tier) -> None:
    """The tier with (or without) its demonstrations; its other settings as they are now."""
    current = TierRepository(ws).get(tier.tier)
    if current is None:
        raise UserError(f"no tier {tier.tier}; see `tiers list`")
    TierRepository(ws).save(current.replace(demonstrations=tier.demonstrations))
    events.publish(events.TIERS, ws)


def remove_prompt(ws: Workspace, student_no: int) -> Tier:
    """Back to the plain student (its earlier generation: its recorded answers count again)."""
    current = TierRepository(ws).get(student_no)
    if current is None:
        raise UserError(f"no tier {student_no}; see `tiers list`", code=2)
    plain = current.replace(demonstrations=None)
    save_generation(ws, plain)
    return plain


# -- an instruction drafted by the teacher --------------------------------------------------------
DRAFT_KEY = "instruction_draft:{tier}"  # meta: the newest draft for a student tier and what it cost


@dataclass
class InstructionDraft:
    text: str
    cases: int  # disagreements shown to the teacher
    requests: int
    cost_micro: int | None  # None: the teacher's answer had no usage

    def to_json(self) -> dict[str, Any]:
        return {"instruction": self.text, "cases": self.cases, "requests": self.requests,
                "cost_usd": None if self.cost_micro is None else str(micro_to_usd(self.cost_micro))}


async def draft_instruction(ws: Workspace, student_no: int, secrets: SecretStore, *, dataset_id: int | None = None,
                            limit: int = 8) -> InstructionDraft:
    """One request to the teacher with up to `limit` tasks (outside the validation split) where the
    student's plain model answered otherwise; the draft is for the user to read and edit, then to
    pass to `distil prompt --instruction FILE`. Its cost counts in what the generation cost to make."""
    tiers = TierRepository(ws).list()
    teacher = teacher_of(tiers)
    student = next((t for t in tiers if t.tier == student_no), None)
    if student is None or teacher is None or student.tier == teacher.tier:
        raise UserError(f"tier {student_no} is not a student tier; see `tiers list`", code=2)
    _, valid = validation_split(ws, dataset_id)
    held_out = set(valid)
    repo = TrajectoryRepository(ws)
    pool = sorted(t for t in repo.latest_ok_ids(teacher.tier, generation_keys(teacher)) if t not in held_out)
    tasks = TaskRepository(ws).get_many(pool)
    pool = [t for t in pool if t in tasks and not tasks[t].is_episode]
    disagreed = await _disagreements(ws, teacher, student, pool) or {}
    chosen = [t for t in pool if disagreed.get(t)][:limit]
    if not chosen:
        raise UserError(f"tier {student_no}'s plain model has no recorded answer that differs from the teacher's "
                        "outside the validation split; collect it on more tasks first", code=1)
    base = student.replace(demonstrations=None)
    t_sides, s_sides = latest_sides(ws, teacher, chosen), latest_sides(ws, base, chosen)
    cases = [(tasks[t].prompt, answer_text(t_sides[t].tool_calls, t_sides[t].answer),
              answer_text(s_sides[t].tool_calls, s_sides[t].answer)) for t in chosen]
    request = {"model": teacher.model, "messages": instruction_request(cases), "temperature": 0.0}
    client = make_async_client(teacher, secrets)
    async with client:
        try:
            raw = await client.post("/chat/completions", body=request, cast_to=bytes)
        except Exception as exc:  # noqa: BLE001 - said in words
            _, message = describe_error(exc, teacher)
            raise UserError(f"the teacher did not answer: {message}") from None
    data = orjson.loads(raw)
    problem = response_problem(data)
    if problem:
        raise UserError(problem)
    text = (data["choices"][0]["message"].get("content") or "").strip()
    cost = cost_of(Usage.from_json(data.get("usage")), teacher) if isinstance(data.get("usage"), dict) else None
    draft = InstructionDraft(text, len(cases), 1, cost)
    ws.set_meta(DRAFT_KEY.format(tier=student_no), json.dumps({**draft.to_json(), "cost_micro": cost}))
    return draft


def drafting_cost(ws: Workspace, student_no: int) -> tuple[int, int | None]:
    """(requests, micro-dollars) of the newest instruction draft for the tier; (0, 0) when none."""
    raw = ws.get_meta(DRAFT_KEY.format(tier=student_no))
    if raw is None:
        return 0, 0
    doc = json.loads(raw)
    return int(doc.get("requests") or 0), doc.get("cost_micro")
