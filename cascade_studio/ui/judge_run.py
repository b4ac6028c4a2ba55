"""The Evaluation page's judge for a run (issue 30): Evaluate with a judge is `evaluate --judge NAME`
(the same service calls, the same figures), and before anything is paid the page shows what
`evaluate --judge NAME --dry-run` estimates and asks (Cancel is the default and the Esc answer)."""

from __future__ import annotations

from typing import Any

from cascade_studio.services.judged_evaluation import judge_totals
from cascade_studio.ui import confirm

JUDGE = "judge"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def run_output(report: Any) -> dict[str, Any]:
    """The parts of `evaluate --judge --json`'s output the judge figures come from."""
    agents = report.agents or {}
    return {"judged": report.judged, "episodes": agents.get("episodes") if agents.get("episode_tasks") else None}


def estimate_totals(reports: list[Any]) -> dict[str, Any]:
    """judge_totals over every student's dry run (one per student tier)."""
    from decimal import Decimal

    parts = [judge_totals(run_output(r)) for r in reports]
    return {"judge": next((p["judge"] for p in parts if p["judge"]), None),
            "requests": sum(p["requests"] for p in parts), "reused": sum(p["reused"] for p in parts),
            "cost_usd": str(sum((Decimal(p["cost_usd"]) for p in parts), Decimal(0))),
            "cost_unknown_requests": sum(p["cost_unknown_requests"] for p in parts)}


def cost_question(judge_name: str, totals: dict[str, Any], collect: bool) -> str:
    unknown = (f" {totals['cost_unknown_requests']} of them of unknown cost (the judge's model has no price): "
               "the true cost is higher." if totals["cost_unknown_requests"] else "")
    collected = (" Answers collected by this run are judged too and are not in this estimate."
                 if collect else "")
    return (f"Judging with {judge_name} would cost about ${totals['cost_usd']}: {totals['requests']} requests "
            f"to send, {totals['reused']} verdicts reused (stored verdicts are never paid twice).{unknown}"
            f"{collected}\n\nEvaluate with this judge?")


def ask_to_judge(parent, judge_name: str, totals: dict[str, Any], collect: bool) -> bool:
    answer = confirm.ask_choice(parent, "Evaluate with a judge", cost_question(judge_name, totals, collect),
                                [(JUDGE, "Evaluate and judge")])
    return answer == JUDGE


def judged_sentence(report: Any) -> str:
    """The judge's figures on the page, each naming the judge, its template version and the
    unparseable verdicts (the CLI's _print_judged in words)."""
    out = run_output(report)
    parts = []
    judged = out["judged"]
    if judged is not None:
        if judged["text_tasks"]:
            parts.append(f" Answer agreement by {judged['basis']}: {_pct(judged['answer_agreement'])} on "
                         f"{judged['judged_tasks']} of {judged['text_tasks']} text answers (text match on the same: "
                         f"{_pct(judged['text_match_on_judged_tasks'])}); {judged['failed']} failed.")
        else:
            parts.append(f" Answer agreement by judge {judged['judge']}: no task where both answered in text.")
    episode_judge = (out["episodes"] or {}).get("judge")
    if episode_judge is not None and "note" in episode_judge:
        parts.append(f" Episodes: not judged ({episode_judge['note']}).")
    elif episode_judge is not None:
        parts.append(f" Episodes judged by {episode_judge['basis']}: {episode_judge['episodes_judged']}.")
    if judged is not None or episode_judge is not None:
        totals = judge_totals(out)
        parts.append(f" Judging cost ${totals['cost_usd']}: {totals['requests']} requests sent, "
                     f"{totals['reused']} verdicts reused"
                     + (f", {totals['cost_unknown_requests']} of unknown cost." if totals["cost_unknown_requests"]
                        else "."))
    return "".join(parts)
