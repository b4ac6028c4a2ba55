"""HTML for the detail pane: conversation, reasoning, tool calls, answer, usage, and a token-level
logprob heat map (hover a token for its top alternatives)."""

from __future__ import annotations

import html
import json
import math
from typing import Any

from cascade_studio.core.episode import END_LABELS, Episode, ToolResult
from cascade_studio.core.money import micro_to_usd
from cascade_studio.core.trajectory import Trajectory


def _color(p: float) -> str:
    p = max(0.0, min(1.0, p))
    if p < 0.5:
        t = p / 0.5
        return f"rgb(248,{int(180 + 50 * t)},{int(180 - 40 * t)})"
    t = (p - 0.5) / 0.5
    return f"rgb({int(248 - 80 * t)},{int(230 - 10 * t)},{int(140 + 40 * t)})"


def heatmap_html(logprobs: list[dict[str, Any]] | None) -> str:
    if not logprobs:
        return "<p><i>No logprobs in this response.</i></p>"
    spans = []
    for tok in logprobs:
        p = math.exp(tok["logprob"])
        alts = ", ".join(f"{a['token']!r} {math.exp(a['logprob']):.2f}" for a in tok.get("top_logprobs") or [])
        text = html.escape(tok["token"]).replace("\n", "↵<br>").replace(" ", "&nbsp;")
        spans.append(f'<a title="p={p:.3f}; {html.escape(alts)}" style="background-color:{_color(p)};'
                     f'color:#1b1b1b;text-decoration:none">{text}</a>')
    legend = "".join(f'<span style="background-color:{_color(p)}">&nbsp;{p:.1f}&nbsp;</span>'
                     for p in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0))
    return (f'<p style="font-family:monospace">{"".join(spans)}</p>'
            f"<p><small>Token probability: {legend}</small></p>")


COLLAPSED_CHARS = 300


def episode_filter_items() -> list[tuple[str, str | None]]:
    """The inspector's Steps filter: all rows, single requests, agent episodes (any end, or one end)."""
    return [("Any steps", None), ("Single requests", "single"), ("Agent episodes", "episodes"),
            *((f"Episodes: {label}", reason) for reason, label in END_LABELS.items())]


def detail_html(t: Trajectory, meta: dict[str, Any], episode: Episode | None = None,
                expanded: frozenset[tuple[int, int]] | set[tuple[int, int]] = frozenset()) -> str:
    if episode is not None and episode.steps:
        return episode_html(t, meta, episode, expanded)
    parts = [f"<h3>{html.escape(t.task_id)} <small>· tier {t.tier} · {html.escape(t.model)} · "
             f"{html.escape(meta.get('category') or '')}</small></h3>"]
    if t.status == "error":
        parts.append(f'<p style="color:#a4262c"><b>Error after {t.attempts} attempt(s):</b> '
                     f"{html.escape(t.error or '')}</p>")
    parts.append("<h4>Conversation</h4>")
    for m in t.request.get("messages", []):
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        parts.append(f"<p><b>{html.escape(m.get('role', ''))}:</b> {html.escape(text or '')}</p>")
    if t.content and t.tool_calls:
        parts.append(f"<h4>Reasoning</h4><p>{html.escape(t.content)}</p>")
    if t.tool_calls:
        calls = [{"name": c["name"], "arguments": c["arguments"]} for c in t.tool_calls]
        parts.append(f"<h4>Tool calls ({len(calls)})</h4><pre>{html.escape(json.dumps(calls, indent=2))}</pre>")
    if t.final_answer:
        parts.append(f"<h4>Answer</h4><p>{html.escape(t.final_answer)}</p>")
    parts.append(_usage_html(t, meta))
    parts.append("<h4>Token heat map</h4>" + heatmap_html(t.logprobs))
    return "".join(parts)


def _conf_text(t: Trajectory) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in (("mean", t.conf_mean), ("min", t.conf_min),
                                                               ("tool name", t.conf_tool)) if value is not None)


def _usage_html(t: Trajectory, meta: dict[str, Any], episode: Episode | None = None) -> str:
    conf = _conf_text(t)
    u = t.usage
    known = episode.known if episode is not None else (lambda _what: True)
    tokens = (f"{u.prompt_tokens:,} prompt ({u.cached_tokens:,} cached), {u.completion_tokens:,} "
              f"completion ({u.reasoning_tokens:,} reasoning)") if known("usage") else "unknown"
    user = ""
    if episode is not None and (episode.user_usage is not None or episode.user_cost_micro is not None):
        uu = episode.user_usage
        user = (f"<tr><td>User (simulated)</td><td>{'unknown' if uu is None else f'{uu.total:,}'} tokens, "
                f"{'$unknown' if episode.user_cost_micro is None else f'${micro_to_usd(episode.user_cost_micro):.6f}'}"
                " (not the agent's cost)</td></tr>")
    return (
        "<h4>Usage</h4><table cellspacing=4>"
        f"<tr><td>Tokens</td><td>{tokens}</td></tr>"
        f"<tr><td>Cost</td><td>{'unknown' if not known('cost') else f'${micro_to_usd(t.cost_micro):.6f}'}</td></tr>"
        f"<tr><td>Latency</td><td>{'unknown' if not known('latency') else f'{t.latency_ms:,.0f} ms'} · "
        f"{t.attempts} attempt(s)</td></tr>{user}"
        f"<tr><td>Confidence</td><td>{conf or '—'}</td></tr>"
        f"<tr><td>Fingerprint</td><td>{html.escape(t.system_fingerprint or '—')}</td></tr>"
        f"<tr><td>Curation</td><td>{html.escape(meta.get('curation') or '—')} "
        f"{html.escape(meta.get('tags') or '')}</td></tr></table>")


def episode_html(t: Trajectory, meta: dict[str, Any], episode: Episode,
                 expanded: frozenset[tuple[int, int]] | set[tuple[int, int]]) -> str:
    """An agent episode as a timeline: each step's reasoning, tool calls, their results (long ones
    collapsed: click to open), duration, errors, confidence and its own token heat map."""
    reason = END_LABELS.get(episode.end_reason or "", episode.end_reason or "")
    parts = [f"<h3>{html.escape(t.task_id)} <small>· tier {t.tier} · {html.escape(t.model)} · "
             f"{html.escape(meta.get('category') or '')}</small></h3>",
             f"<p><b>Agent episode</b> in <i>{html.escape(episode.environment or '?')}</i>: {len(episode.steps)} "
             f"step(s), {episode.tool_calls} tool call(s)"
             + (f", {sum(len(s.user_turns) for s in episode.steps)} user turn(s)"
                if any(s.user_turns for s in episode.steps) else "")
             + f", ended: <b>{html.escape(reason)}</b>"
             + (f" · trial {episode.trial}" if episode.trial else "")
             + (f" · recorded outcome: {'success' if episode.outcome.get('success') else 'failure'}"
                + (f" (reward {episode.outcome['reward']:g})" if episode.outcome.get("reward") is not None else "")
                if episode.outcome else "") + "</p>"]
    if episode.error:
        parts.append(f'<p style="color:#a4262c"><b>Error:</b> {html.escape(episode.error)}</p>')
    parts.append("<h4>Task</h4>")
    first = episode.steps[0].call
    for m in first.request.get("messages", []):
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        parts.append(f"<p><b>{html.escape(m.get('role', ''))}:</b> {html.escape(text or '')}</p>")
    for step in episode.steps:
        c = step.call
        conf = _conf_text(c)
        figures = (f"{'unknown' if not episode.known('latency') else f'{c.latency_ms:,.0f}'} ms · "
                   f"{'$unknown' if not episode.known('cost') else f'${micro_to_usd(c.cost_micro):.6f}'} · "
                   f"{'unknown' if not episode.known('usage') else f'{c.usage.total:,}'} tokens")
        parts.append(f'<h4 style="margin-bottom:2px">Step {step.index + 1} <small>· {figures}'
                     f"{' · confidence ' + conf if conf else ''}</small></h4>")
        if c.content and c.tool_calls:
            parts.append(f"<p><i>{html.escape(c.content)}</i></p>")
        elif c.content:
            parts.append(f"<p><b>Answer:</b> {html.escape(c.content)}</p>")
        for n, result in enumerate(step.results):
            args = json.dumps(result.arguments, indent=2)
            parts.append(f"<p><b>→ {html.escape(result.name)}</b> <small>{result.duration_ms:,.0f} ms</small></p>"
                         f"<pre>{html.escape(args)}</pre>")
            parts.append(_result_html(step.index, n, result, (step.index, n) in expanded))
        missing = len(c.tool_calls) - len(step.results)
        if missing > 0:
            parts.append(f"<p><i>{missing} tool call(s) not run (the episode stopped).</i></p>")
        parts.append("<p><small>Token heat map</small></p>" + heatmap_html(c.logprobs))
        for turn in step.user_turns:  # the user's answer: an input of the next step, not a step
            text = turn.get("content")
            parts.append(f'<p style="background:#eef4fb"><b>user:</b> '
                         f"{html.escape(text if isinstance(text, str) else json.dumps(text))}</p>")
    parts.append("<h4>Episode totals</h4>" + _usage_html(t, meta, episode))
    return "".join(parts)


def _result_html(step: int, n: int, result: ToolResult, open_: bool) -> str:
    if result.error:
        return f'<p style="color:#a4262c">✖ {html.escape(result.error)}</p>'
    text = result.content
    try:
        text = json.dumps(json.loads(text), indent=2)
    except (ValueError, TypeError):
        pass
    head = '<p style="color:#a4262c"><b>Tool error</b></p>' if result.is_error else ""
    if len(text) > COLLAPSED_CHARS and not open_:
        return (f"{head}<pre style=\"background:#f3f3f3\">{html.escape(text[:COLLAPSED_CHARS])}…</pre>"
                f'<p><a href="expand:{step}:{n}">Show the whole result ({len(text):,} characters)</a></p>')
    fold = f'<p><a href="expand:{step}:{n}">Fold</a></p>' if len(text) > COLLAPSED_CHARS else ""
    return f'{head}<pre style="background:#f3f3f3">{html.escape(text)}</pre>{fold}'
