"""Old student against new: a tier's current generation and its previous one, each compared with the
teacher's current generation on the same tasks (those all three have answered), so a change of
model (a new fine-tune, a new prompt) is judged on equal ground. Recorded trajectories only: nothing
is sent but the embeddings the similarity may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cascade_studio.core.errors import UserError
from cascade_studio.core.evaluation import TaskResult, aggregate
from cascade_studio.core.tiers import LEGACY_PREFIX, Tier, generation_id, generation_keys
from cascade_studio.services.evaluation import compare_on, similarity_for
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace


@dataclass
class GenerationSide:
    generation: str
    model: str
    summary: dict[str, Any]
    results: list[TaskResult] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "model": self.model, **self.summary}


@dataclass
class GenerationComparison:
    teacher: Tier
    tier: int
    previous: GenerationSide
    current: GenerationSide
    tasks: int  # answered by the teacher and by both generations
    improved: list[str]  # task ids: the current generation agrees with the teacher, the previous did not
    regressed: list[str]
    similarity_method: str

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "teacher": {"tier": self.teacher.tier, "model": self.teacher.model,
                                               "generation": generation_id(self.teacher)},
                "tasks": self.tasks, "previous": self.previous.to_json(), "current": self.current.to_json(),
                "improved": self.improved, "regressed": self.regressed, "similarity_method": self.similarity_method}

    def sentence(self) -> str:
        """One line for a status bar or a terminal."""
        def pct(side: GenerationSide) -> str:
            value = side.summary["overall"]["agreement"]
            return "—" if value is None else f"{value:.0%}"

        return (f"Tier {self.tier} on the same {self.tasks} tasks: previous generation {self.previous.generation} "
                f"({self.previous.model}) agrees with the teacher on {pct(self.previous)}, current generation "
                f"{self.current.generation} ({self.current.model}) on {pct(self.current)}; "
                f"{len(self.improved)} tasks improved, {len(self.regressed)} regressed.")


def previous_generation(ws: Workspace, student: Tier) -> tuple[str, str] | None:
    """(generation, model) of the tier's newest stored generation other than its current one."""
    current = set(generation_keys(student))
    for _tier, generation, model, _count in TrajectoryRepository(ws).generations(student.tier):
        if generation not in current:
            params = TrajectoryRepository(ws).generation_params(generation) or {}
            shown = params.get("model") or (generation[len(LEGACY_PREFIX):] if generation.startswith(LEGACY_PREFIX)
                                            else model)
            return generation, shown
    return None


async def compare_generations(ws: Workspace, teacher: Tier, student: Tier, secrets: SecretStore, *,
                              task_ids: list[str] | None = None, previous: str | None = None,
                              use_embeddings: bool = True, temperature: float = 2.0) -> GenerationComparison:
    """The student tier's current generation and `previous` (default: the one before it), each
    against the teacher, on the tasks all three answered (among `task_ids`, when given)."""
    if teacher.tier == student.tier:
        raise UserError("the student must be another tier than the teacher", code=2)
    found = previous_generation(ws, student) if previous is None else (previous, _model_of(ws, previous))
    if found is None:
        raise UserError(f"tier {student.tier} has answers of one generation only ({student.model}); change its "
                        "model (e.g. use a fine-tuned one) and collect or evaluate again, then compare")
    prev_id, prev_model = found
    repo = TrajectoryRepository(ws)
    t_ids = repo.latest_ok_ids(teacher.tier, generation_keys(teacher))
    cur_ids = repo.latest_ok_ids(student.tier, generation_keys(student))
    prev_ids = repo.latest_ok_ids(student.tier, [prev_id])
    wanted = task_ids if task_ids is not None else sorted(t_ids)
    common = [t for t in wanted if t in t_ids and t in cur_ids and t in prev_ids]
    if not common:
        raise UserError(f"no task has answers of the teacher (tier {teacher.tier}) and of both generations of tier "
                        f"{student.tier} ({prev_model} and {student.model}); evaluate the current generation with "
                        "missing trajectories collected, on the tasks the previous one answered")
    similarity = similarity_for(student, secrets, use_embeddings)
    sides = []
    for generation, model, ids in ((prev_id, prev_model, prev_ids), (generation_id(student), student.model, cur_ids)):
        results = await compare_on(ws, t_ids, ids, common, similarity, temperature)
        sides.append(GenerationSide(generation, model, aggregate(results), results))
    before = {r.task_id: r.agrees for r in sides[0].results}
    improved = [r.task_id for r in sides[1].results if r.agrees and not before[r.task_id]]
    regressed = [r.task_id for r in sides[1].results if not r.agrees and before[r.task_id]]
    return GenerationComparison(teacher, student.tier, sides[0], sides[1], len(common), improved, regressed,
                                similarity.method())


def _model_of(ws: Workspace, generation: str) -> str:
    params = TrajectoryRepository(ws).generation_params(generation)
    if params:
        return params["model"]
    if generation.startswith(LEGACY_PREFIX):
        return generation[len(LEGACY_PREFIX):]
    raise UserError(f"no generation {generation!r} is stored; see `trajectories` or the Trajectories page's "
                    "'All models (history)' filter for the generations there are")
