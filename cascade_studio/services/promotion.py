"""Before a fine-tuned model takes a tier: the evidence. Either what the evaluation history already
knows of the old and the new model (`switch_evidence`, printed by `finetune use`), or a fresh
evaluation of both against the teacher on a dataset's validation tasks (`evaluate_candidate`, the
GUI's "Use as tier" and `finetune use --evaluate-first`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import Tier, teacher_of
from cascade_studio.services.datasets import validation_task_ids
from cascade_studio.services.evaluation import EvaluationReport, evaluate
from cascade_studio.services.finetune.tracker import candidate_tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.evaluations import latest_of_model
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


def switch_evidence(ws: Workspace, before_model: str | None, after_model: str) -> list[tuple[str, str, dict | None]]:
    """(label, model, its newest evaluation as a student or None) for the model a tier had and the
    one it gets."""
    return [(label, model, latest_of_model(ws, model))
            for label, model in (("before", before_model), ("now", after_model)) if model]


def figures(summary: dict[str, Any]) -> str:
    """'agreement 83%, accuracy 75%' of an evaluation's summary (accuracy where tasks say the answer)."""
    overall = summary["overall"]
    agreement = "—" if overall["agreement"] is None else f"{overall['agreement']:.0%}"
    accuracy = (overall.get("accuracy") or {}).get("student")
    return f"agreement {agreement}" + ("" if accuracy is None else f", accuracy {accuracy:.0%}")


@dataclass
class CandidateComparison:
    """The fine-tuned model and the tier's current model, each against the teacher on the same tasks."""

    dataset_id: int
    tasks: int
    candidate: EvaluationReport
    current: EvaluationReport | None  # None: the tier is new (or already has this model)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset_id, "tasks": self.tasks, "candidate": self.candidate.to_json(),
                "current": self.current.to_json() if self.current else None}

    def sentence(self) -> str:
        c = self.candidate
        text = (f"On the {self.tasks} validation tasks of dataset {self.dataset_id}, against teacher tier "
                f"{c.teacher.tier} ({c.teacher.model}): {c.student.model} {figures(c.summary)}")
        if self.current is not None and self.current.results:
            text += f"; now in tier {self.current.student.tier}: {self.current.student.model} " \
                    f"{figures(self.current.summary)}"
        elif self.current is not None:
            text += f"; tier {self.current.student.tier}'s current model has no answers to compare"
        missing = c.missing
        return text + (f". {missing} tasks lacked an answer of the new model or the teacher." if missing else ".")


def validation_split(ws: Workspace, dataset_id: int | None = None) -> tuple[int, list[str]]:
    """A dataset's validation tasks (default: the newest dataset with a split), or a UserError saying what to do."""
    split = validation_task_ids(ws, dataset_id)
    if split is None or not split[1]:
        which = f"dataset {dataset_id} has" if dataset_id is not None else "no dataset has"
        raise UserError(f"{which} a validation split to evaluate on; build a dataset with a validation share "
                        "above 0 (Fine-tuning page, or `dataset build --validation-share 0.1`)")
    return split


def candidate_and_teacher(ws: Workspace, job_id: str, tier_no: int,
                          base_url: str | None = None) -> tuple[Tier, Tier, Tier | None]:
    """(the tier as it would be with the job's model, the teacher it would answer to, the tier now)."""
    candidate, tiers = candidate_tier(ws, job_id, tier_no, base_url)
    teacher = teacher_of(tiers)
    if teacher is None or teacher.tier == candidate.tier:
        raise UserError(f"tier {tier_no} would be the teacher (the highest tier): there is nothing to compare the "
                        "fine-tuned model with; put it in a lower tier")
    current = TierRepository(ws).get(tier_no)
    return candidate, teacher, current if current is not None and current.model != candidate.model else None


async def evaluate_candidate(ws: Workspace, job_id: str, tier_no: int, secrets: SecretStore, *,
                             dataset_id: int | None = None, base_url: str | None = None,
                             use_embeddings: bool = True) -> CandidateComparison:
    """Evaluate the job's model as tier `tier_no` and the tier's current model against the teacher on
    a dataset's validation tasks, collecting the answers missing (the tier is not changed; both
    evaluations go to the history, with their generations)."""
    dataset, task_ids = validation_split(ws, dataset_id)
    candidate, teacher, current = candidate_and_teacher(ws, job_id, tier_no, base_url)
    category = f"validation split of dataset {dataset}"
    new = await evaluate(ws, teacher, candidate, task_ids, secrets, collect=True, use_embeddings=use_embeddings,
                         category=category)
    old = None
    if current is not None and current.tier != teacher.tier:
        old = await evaluate(ws, teacher, current, task_ids, secrets, collect=True, use_embeddings=use_embeddings,
                             category=category)
    return CandidateComparison(dataset, len(task_ids), new, old)
