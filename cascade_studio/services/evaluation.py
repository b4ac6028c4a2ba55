"""Evaluation runs: compare student tiers with the teacher on a task set, reusing recorded
trajectories and collecting missing ones with the same engine as collection runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cascade_studio.core.agreement import cosine, offline_similarity
from cascade_studio.core.confidence import CONF_COLUMNS, by_method
from cascade_studio.core.evaluation import Side, TaskResult, aggregate, compare
from cascade_studio.core.tiers import Tier, generation_id, generation_keys
from cascade_studio.services import events
from cascade_studio.services.clients import make_async_client
from cascade_studio.services.collector import CollectionRun, start_or_resume
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.evaluations import drift_warning, history, latest_of_model  # noqa: F401 - re-exported
from cascade_studio.store.evaluations import record as record_evaluation
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)
EMBEDDING_MODEL = "text-embedding-3-small"


BATCH = 500  # tasks whose two sides are in memory at once
KEPT_VERDICTS: list[Any] = []  # stands for a task's expected calls where both sides' verdicts were kept
_SIDE_COLUMNS = ["id", "task_id", "tool_calls", "final_answer", "content", *CONF_COLUMNS.values(), "cost_micro",
                 "latency_ms", "correct"]


def _sides(repo: TrajectoryRepository, ids: list[int]) -> dict[str, Side]:
    """The Sides of the trajectories `ids`, by task id: of their logprobs only the first decision
    token's alternatives (never the full ~35 KB)."""
    tops = repo.decision_tops(ids)
    out = {}
    for r in repo.by_ids(ids, _SIDE_COLUMNS):
        calls = orjson.loads(r[2])
        out[r[1]] = Side(calls, r[3], r[4] if calls else None, tops.get(r[0]), by_method(r[5:8]), r[8], r[9], r[0],
                         None if r[10] is None else bool(r[10]))
    return out


def sides_of(ws: Workspace, ids: list[int]) -> dict[str, Side]:
    """The Sides of the trajectories `ids`, by task id (what evaluation compares)."""
    return _sides(TrajectoryRepository(ws), ids)


def latest_sides(ws: Workspace, tier: Tier, task_ids: list[str] | None = None, *,
                 generations: Sequence[str] | None = None) -> dict[str, Side]:
    """The most recent successful trajectory of the tier's current generation (or of `generations`)
    for each task."""
    repo = TrajectoryRepository(ws)
    latest = repo.latest_ok_ids(tier.tier, list(generations) if generations else generation_keys(tier))
    wanted = latest if task_ids is None else {t: latest[t] for t in task_ids if t in latest}
    return _sides(repo, list(wanted.values()))


@dataclass
class EvaluationReport:
    teacher: Tier
    student: Tier
    results: list[TaskResult]
    summary: dict[str, Any]
    missing: int
    similarity_method: str
    evaluation_id: int | None = None
    agents: dict[str, Any] | None = None  # agent tasks: step agreement and episode success (services.agent.evaluation)
    judged: dict[str, Any] | None = None  # answer agreement by a judge (services.judged_evaluation, issue 30)

    def to_json(self) -> dict[str, Any]:
        return {"teacher": {"tier": self.teacher.tier, "model": self.teacher.model,
                            "generation": generation_id(self.teacher)},
                "student": {"tier": self.student.tier, "model": self.student.model,
                            "generation": generation_id(self.student)},
                "missing": self.missing, "similarity_method": self.similarity_method,
                "evaluation_id": self.evaluation_id, **self.summary}


async def collect_missing(ws: Workspace, tiers: list[Tier], task_ids: list[str], secrets: SecretStore) -> None:
    for tier in tiers:
        have = TrajectoryRepository(ws).ok_task_ids(tier.tier, generation_keys(tier), task_ids)
        missing = [t for t in task_ids if t not in have]
        if missing:
            run, _ = start_or_resume(ws, tier, missing, {"evaluation": True})
            await CollectionRun(ws, tier, secrets, run).run()


async def _embed(tier: Tier, secrets: SecretStore, texts: list[str]) -> list[list[float]] | None:
    """Embeddings from the tier's endpoint, or None when it has none (then the offline fallback)."""
    if not texts:
        return []
    try:
        client = make_async_client(tier, secrets, max_retries=2)
        async with client:
            vectors = []
            for start in range(0, len(texts), 256):
                resp = await client.embeddings.create(model=EMBEDDING_MODEL, input=texts[start:start + 256])
                vectors += [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
            return vectors
    except Exception as exc:  # noqa: BLE001 - any failure means: use the documented fallback
        log.info("No embeddings from %s (%s); using the offline similarity", tier.base_url, type(exc).__name__)
        return None


class _Similarity:
    """Similarities of text pairs, batch by batch: by the student's embeddings endpoint until it
    fails (then, for the rest, the documented offline fallback), or offline throughout."""

    def __init__(self, tier: Tier, secrets: SecretStore, use_embeddings: bool) -> None:
        self.tier, self.secrets = tier, secrets
        self.failed = not use_embeddings
        self.embedded = self.offline = 0

    async def of(self, pairs: list[tuple[str, str, str, str]]) -> dict[tuple[str, str], float | None]:
        vectors = None
        if not self.failed and pairs:
            vectors = await _embed(self.tier, self.secrets, [x for p in pairs for x in (p[2], p[3])])
            self.failed = vectors is None
        sims: dict[tuple[str, str], float | None] = {}
        for i, (task_id, kind, a, b) in enumerate(pairs):
            sims[(task_id, kind)] = cosine(vectors[2 * i], vectors[2 * i + 1]) if vectors else offline_similarity(a, b)
        if vectors:
            self.embedded += len(pairs)
        else:
            self.offline += len(pairs)
        return sims

    def method(self) -> str:
        embeddings = f"embeddings ({EMBEDDING_MODEL} at {self.tier.base_url})"
        if self.embedded and self.offline:
            return (f"{embeddings} for {self.embedded} pairs, then offline hashed bag-of-words for {self.offline} "
                    "(the endpoint failed)")
        return embeddings if self.embedded else "offline hashed bag-of-words"


def _text_pairs(common: list[str], t_sides: dict[str, Side], s_sides: dict[str, Side]) -> list[tuple[str, str, str, str]]:
    """Texts to compare by similarity: final answers (both text) and reasoning (both present), as
    (task, kind, teacher text, student text)."""
    pairs = []
    for task_id in common:
        t, s = t_sides[task_id], s_sides[task_id]
        if not t.tool_calls and not s.tool_calls and t.answer and s.answer:
            pairs.append((task_id, "answer", t.answer, s.answer))
        if t.reasoning and s.reasoning:
            pairs.append((task_id, "reasoning", t.reasoning, s.reasoning))
    return pairs


async def compare_on(ws: Workspace, teacher_ids: dict[str, int], student_ids: dict[str, int], task_ids: list[str],
                     similarity: _Similarity, temperature: float = 2.0) -> list[TaskResult]:
    """The verdicts on the tasks of `task_ids` that both sides answered ({task id: trajectory id}),
    BATCH tasks at a time: memory holds the per-task verdicts, never every trajectory (nor any full
    logprobs)."""
    repo, tasks = TrajectoryRepository(ws), TaskRepository(ws)
    common = [t for t in task_ids if t in teacher_ids and t in student_ids]
    results = []
    for start in range(0, len(common), BATCH):
        batch = common[start:start + BATCH]
        t_sides = _sides(repo, [teacher_ids[t] for t in batch])
        s_sides = _sides(repo, [student_ids[t] for t in batch])
        sims = await similarity.of(_text_pairs(batch, t_sides, s_sides))
        meta = tasks.categories_of(batch)
        # the expected answers and tools are read (and parsed) only where a verdict was not kept
        judge = [t for t in batch if meta.get(t, ("", False))[1]
                 and (t_sides[t].correct is None or s_sides[t].correct is None)]
        expected, tools = tasks.expected_of(judge), tasks.tools_of(judge)
        for task_id in batch:
            category, listed = meta.get(task_id, ("", False))
            # a list of calls is expected: both kept verdicts answer for it, or it is read above
            want = expected.get(task_id, KEPT_VERDICTS) if listed else None
            results.append(compare(task_id, category, t_sides[task_id], s_sides[task_id], want,
                                   answer_similarity=sims.get((task_id, "answer")),
                                   reasoning_similarity=sims.get((task_id, "reasoning")), temperature=temperature,
                                   tools=tools.get(task_id)))
    return results


def similarity_for(student: Tier, secrets: SecretStore, use_embeddings: bool = True) -> _Similarity:
    return _Similarity(student, secrets, use_embeddings)


async def evaluate(ws: Workspace, teacher: Tier, student: Tier, task_ids: list[str], secrets: SecretStore, *,
                   collect: bool = False, use_embeddings: bool = True, temperature: float = 2.0,
                   record: bool = True, category: str | None = None) -> EvaluationReport:
    """Compare the student's current generation with the teacher's on `task_ids`, and record the
    aggregates with both generations (the evaluation history)."""
    if collect:
        await collect_missing(ws, [teacher, student], task_ids, secrets)
    repo = TrajectoryRepository(ws)
    similarity = _Similarity(student, secrets, use_embeddings)
    results = await compare_on(ws, repo.latest_ok_ids(teacher.tier, generation_keys(teacher)),
                               repo.latest_ok_ids(student.tier, generation_keys(student)), task_ids, similarity,
                               temperature)
    summary = aggregate(results)
    report = EvaluationReport(teacher, student, results, summary, len(task_ids) - len(results), similarity.method())
    if record and results:
        report.evaluation_id = record_evaluation(
            ws, teacher_tier=teacher.tier, teacher_model=teacher.model, student_tier=student.tier,
            student_model=student.model, category=category, tasks=len(results),
            agreement=summary["overall"]["agreement"], metrics=summary,
            teacher_generation=generation_id(teacher), student_generation=generation_id(student))
        events.publish(events.EVALUATIONS, ws)
    return report
