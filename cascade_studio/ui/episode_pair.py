"""The Evaluation page's drill-down for an agent task: the teacher's and the student's episodes side
by side, aligned by step, the first step where the student's action differs highlighted."""

from __future__ import annotations

import html
import json

from cascade_studio.core.episode import END_LABELS, Episode, Step
from cascade_studio.core.episode_eval import BASIS_LABELS, episode_success
from cascade_studio.core.step_alignment import align_episodes
from cascade_studio.core.tasks import Task

DIVERGED = "#fde7e9"


def _action(step: Step | None) -> str:
    if step is None:
        return "<i>—</i>"
    c = step.call
    if not c.tool_calls:
        return f"<b>answer:</b> {html.escape(c.content or '')}" + _user_turns(step)
    parts = []
    for call, result in zip(c.tool_calls, step.results + [None] * len(c.tool_calls), strict=False):
        args = html.escape(json.dumps(call.get("arguments"), ensure_ascii=False))
        outcome = ""
        if result is not None:
            text = result.error or result.content
            flag = "✖ " if result.error or result.is_error else "→ "
            outcome = f"<br><small>{flag}{html.escape(text[:160])}{'…' if len(text) > 160 else ''}</small>"
        parts.append(f"<b>{html.escape(str(call.get('name')))}</b>({args}){outcome}")
    return "<br>".join(parts) + _user_turns(step)


def _user_turns(step: Step) -> str:
    """The user's turns that answered this step (inputs: they add no step)."""
    return "".join(f"<br><small><i>user:</i> {html.escape(str(t.get('content') or '')[:300])}</small>"
                   for t in step.user_turns)


def first_divergence(teacher: Episode, student: Episode) -> int | None:
    """The first step whose actions differ (tool or arguments, core.step_alignment), or where one ended."""
    return align_episodes(teacher.task_id, "", teacher, student).first_divergence


def _verdict(episode: Episode, task: Task | None, teacher_answer: str | None = None) -> str:
    ok, basis = episode_success(episode, task.expected if task else None, teacher_answer)
    reason = END_LABELS.get(episode.end_reason or "", episode.end_reason or "")
    mark = {True: "✔ success", False: "✖ failure", None: "not judged"}[ok]
    by = BASIS_LABELS.get(basis) if basis != "none" else None
    return f"{mark}{f' ({by})' if by else ''} · {len(episode.steps)} steps · ended: {reason}"


def episode_pair_html(task: Task | None, teacher: Episode, student: Episode, labels: tuple[str, str]) -> str:
    pair = align_episodes(teacher.task_id, "", teacher, student)
    diverge = pair.first_divergence
    rows = []
    for k in range(max(len(teacher.steps), len(student.steps))):
        style = f' style="background:{DIVERGED}"' if k == diverge else ""
        t = teacher.steps[k] if k < len(teacher.steps) else None
        s = student.steps[k] if k < len(student.steps) else None
        note = " <small><b>first divergence</b></small>" if k == diverge else ""
        rows.append(f"<tr{style}><td valign='top'><b>{k + 1}</b>{note}</td><td valign='top'>{_action(t)}</td>"
                    f"<td valign='top'>{_action(s)}</td></tr>")
    head = ("The student followed the teacher at every step." if diverge is None
            else f"The student first differs at step {diverge + 1}.")
    if teacher.steps:
        same = sum(a for _, a in pair.aligned.values())
        head += (f" Aligned in order, the student takes {len(pair.aligned)} of the teacher's {len(teacher.steps)} "
                 f"actions, {same} with the same arguments.")
    prompt = html.escape(task.prompt) if task else ""
    return (f"<p><b>{html.escape(teacher.task_id)}</b> · agent episode in "
            f"<i>{html.escape(teacher.environment)}</i></p><p>{prompt}</p><p>{head}</p>"
            f"<table width='100%' cellspacing='6' border='0'><tr><th></th><th align='left'>{html.escape(labels[0])}"
            f"<br><small>{_verdict(teacher, task)}</small></th><th align='left'>{html.escape(labels[1])}<br>"
            f"<small>{_verdict(student, task, teacher.final_answer)}</small></th></tr>{''.join(rows)}</table>")
