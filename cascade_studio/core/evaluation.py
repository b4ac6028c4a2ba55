"""Evaluation of a student against its teacher over a task set: per task, overall, per category;
and calibration of escalation thresholds from the results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cascade_studio.core import agreement as ag


@dataclass
class Side:
    """What one tier did with one task (the parts evaluation needs): of the logprobs, only the
    first decision token's alternatives (core.agreement.decision_top), not the ~35 KB of them."""

    tool_calls: list[dict[str, Any]]
    answer: str | None
    reasoning: str | None
    decision_top: list[dict[str, Any]] | None
    confidence: dict[str, float | None]
    cost_micro: int = 0
    latency_ms: float = 0.0
    trajectory_id: int | None = None
    correct: bool | None = None  # its verdict against the task's expected answer, when one was kept

    @property
    def tool_name(self) -> str | None:
        return self.tool_calls[0]["name"] if self.tool_calls else None


@dataclass(slots=True)  # one per task of an evaluation, 100,000 of them at real sizes
class TaskResult:
    task_id: str
    category: str
    tool_agree: bool
    args_agree: bool
    args_share: float | None
    answer_agree: bool | None  # both answered in text: normalised exact match
    answer_similarity: float | None
    reasoning_similarity: float | None
    kl: float | None
    teacher_correct: bool | None
    student_correct: bool | None
    student_confidence: dict[str, float | None] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        """The student would have answered as the teacher did (the cascade's notion of quality)."""
        if self.answer_agree is not None:  # both answered in text
            return self.tool_agree and (self.answer_agree or (self.answer_similarity or 0) >= 0.9)
        return self.tool_agree and self.args_agree

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["agrees"] = self.agrees
        return out


def compare(task_id: str, category: str, teacher: Side, student: Side, expected: Any = None, *,
            answer_similarity: float | None = None, reasoning_similarity: float | None = None,
            temperature: float = 2.0, tools: list[dict[str, Any]] | None = None) -> TaskResult:
    """One task's verdicts. `tools` (the task's definitions) lets the accuracy check apply BFCL's
    type rules exactly."""
    tool_ok = ag.tool_agreement(teacher.tool_calls, student.tool_calls)
    args_ok, share = ag.args_agreement(teacher.tool_calls, student.tool_calls)
    both_text = not teacher.tool_calls and not student.tool_calls
    answer_ok = ag.answers_match(teacher.answer, student.answer) if both_text else None
    kl = ag.top_kl(teacher.decision_top, student.decision_top, temperature)
    t_ok = s_ok = None
    if isinstance(expected, list):  # a kept verdict is this same check, done before (cleared when the task changes)
        t_ok = teacher.correct if teacher.correct is not None else ag.bfcl_correct(teacher.tool_calls, expected, tools)
        s_ok = student.correct if student.correct is not None else ag.bfcl_correct(student.tool_calls, expected, tools)
    return TaskResult(task_id, category, tool_ok, args_ok, share, answer_ok,
                      answer_similarity if both_text else None, reasoning_similarity, kl, t_ok, s_ok,
                      dict(student.confidence))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(results: list[TaskResult]) -> dict[str, Any]:
    def block(rs: list[TaskResult]) -> dict[str, Any]:
        answered = [r for r in rs if r.answer_agree is not None]
        with_expected = [r for r in rs if r.student_correct is not None]
        return {
            "tasks": len(rs),
            "tool_agreement": _mean([float(r.tool_agree) for r in rs]),
            "args_agreement": _mean([float(r.args_agree) for r in rs if r.tool_agree]),
            "args_share": _mean([r.args_share for r in rs if r.args_share is not None]),
            "answer_agreement": _mean([float(r.answer_agree) for r in answered]),
            "answer_similarity": _mean([r.answer_similarity for r in answered if r.answer_similarity is not None]),
            "reasoning_similarity": _mean([r.reasoning_similarity for r in rs if r.reasoning_similarity is not None]),
            "agreement": _mean([float(r.agrees) for r in rs]),
            "kl": _mean([r.kl for r in rs if r.kl is not None]),
            "accuracy": {"teacher": _mean([float(r.teacher_correct) for r in with_expected]),
                         "student": _mean([float(r.student_correct) for r in with_expected]),
                         "tasks": len(with_expected)} if with_expected else None,
        }

    categories: dict[str, list[TaskResult]] = {}
    for r in results:
        categories.setdefault(r.category, []).append(r)
    per_category = {c: block(rs) for c, rs in categories.items()}
    ordered = dict(sorted(per_category.items(), key=lambda kv: (kv[1]["agreement"] or 0.0, kv[0])))
    return {"overall": block(results), "categories": ordered}


# -- calibration ------------------------------------------------------------------------------------
@dataclass
class Calibration:
    threshold: float
    escalation_rate: float
    expected_quality: float
    answered_by_student: int
    tasks: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _points(confidences: list[float | None], student_ok: list[bool], teacher_ok: list[bool]):
    rows = [(c if c is not None else 0.0, s, t) for c, s, t in zip(confidences, student_ok, teacher_ok, strict=True)]
    rows.sort(key=lambda r: r[0])
    return rows


def outcome(confidences: list[float | None], student_ok: list[bool], teacher_ok: list[bool],
            threshold: float) -> Calibration:
    """Escalate when confidence < threshold (missing confidence escalates). Quality is that of
    the tier that answers: the student's when kept, the teacher's when escalated."""
    n = len(confidences)
    kept = escalated = quality = 0
    for c, s, t in zip(confidences, student_ok, teacher_ok, strict=True):
        if c is not None and c >= threshold:
            kept += 1
            quality += s
        else:
            escalated += 1
            quality += t
    return Calibration(threshold, escalated / n if n else 0.0, quality / n if n else 0.0, kept, n)


def threshold_for_rate(confidences: list[float | None], student_ok: list[bool], teacher_ok: list[bool],
                       target_rate: float) -> Calibration:
    """The threshold whose escalation rate is closest to (not above, where possible) the target."""
    values = sorted(c if c is not None else -1.0 for c in confidences)
    n = len(values)
    if n == 0:
        return Calibration(0.0, 0.0, 0.0, 0, 0)
    k = max(0, min(n, int(round(target_rate * n))))
    threshold = 0.0 if k == 0 else (values[k - 1] + values[k]) / 2 if k < n else values[-1] + 1e-9
    threshold = max(0.0, threshold)  # may exceed 1 by a hair: "escalate everything", even confidence 1.0
    return outcome(confidences, student_ok, teacher_ok, threshold)


def threshold_for_quality(confidences: list[float | None], student_ok: list[bool], teacher_ok: list[bool],
                          target_quality: float) -> Calibration:
    """The lowest threshold (least escalation) whose expected quality meets the target; if none
    does, the threshold that escalates everything."""
    candidates = sorted({0.0, *(c for c in confidences if c is not None), 1.0 + 1e-9})
    for t in candidates:
        result = outcome(confidences, student_ok, teacher_ok, t)
        if result.expected_quality >= target_quality - 1e-12:
            return result
    return outcome(confidences, student_ok, teacher_ok, candidates[-1])
