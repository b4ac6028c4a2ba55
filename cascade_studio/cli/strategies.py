"""`strategies`: teacher only, the best prompt-distilled student, the best fine-tuned student and the
cascade, side by side on the held-out tasks (services.strategies; the Trade-offs page's Strategies tab)."""

from __future__ import annotations

import argparse
from typing import Any

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("strategies", help="the four approaches (teacher only, prompt-distilled, fine-tuned, "
                                           "cascade) side by side on the held-out tasks")
    st.add_argument("--dataset", type=int, help="whose validation split is held out (default: the newest with one)")
    st.add_argument("--volume", type=float, default=1_000_000, help="requests per month (default 1,000,000)")
    st.add_argument("--thresholds", help="T1[,T2]: the cascade's thresholds (default: the tiers' own)")
    st.add_argument("--judge", metavar="NAME", help="quality = judged: the students' text answers graded against the "
                    "teacher's by this judge on every row (tool calls stay matched); verdicts are stored, never paid twice")
    st.add_argument("--dry-run", action="store_true", help="with --judge: estimate the judging cost, send nothing")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=run_strategies)


def run_strategies(args: argparse.Namespace) -> int:
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.services.strategies import judging_by, strategies_report

    thresholds = None
    if args.thresholds:
        try:
            thresholds = [float(x) for x in args.thresholds.split(",")]
        except ValueError:
            raise CliError("--thresholds takes numbers, e.g. 0.6 or 0.6,0.8", code=2) from None
    if args.dry_run and not args.judge:
        raise CliError("--dry-run goes with --judge NAME", code=2)
    with open_ws(args) as ws:
        out = strategies_report(ws, dataset_id=args.dataset, volume=args.volume, thresholds=thresholds,
                                judging=judging_by(ws, args.judge, SecretStore(), dry_run=args.dry_run)
                                if args.judge else None)
    if args.json:
        print_json(out)
    else:
        print_table(out)
    return 0


def _usd(value: float | None, digits: int = 6) -> str:
    return "unknown" if value is None else f"${value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0%}"


def print_table(out: dict[str, Any]) -> None:
    print(f"On {out['tasks_note']}; {out['volume']:,.0f} requests a month.")
    for row in out["rows"]:
        if not row["available"]:
            print(f"  {row['label']}: no data. {row['how_to_fill']}")
            continue
        p95 = "unknown" if row["latency_p95_ms"] is None else f"{row['latency_p95_ms']:.0f} ms"
        print(f"  {row['label']} ({row['model']}, {row['tasks']} tasks): {_usd(row['cost_per_request_usd'])}/request, "
              f"{_usd(row['monthly_cost_usd'], 2)}/month, {_pct(row['cost_reduction'])} cheaper than the teacher; "
              f"quality {_pct(row['quality'])} ({row['quality_basis']}), loss {_pct(row['quality_loss'])}; "
              f"p95 {p95}; cost to make {_usd(row['cost_to_make_usd'], 2)} ({row['cost_to_make_note']})")
    judged = out.get("quality_judge")
    if judged is not None:
        if judged.get("applied"):
            cost = "estimated " if judged.get("estimate") else ""
            print(f"  quality judged by {judged['basis']}: {judged['requests']} requests, {judged['reused']} verdicts "
                  f"reused, {cost}judging cost ${judged['cost_usd']}")
        else:
            print(f"  no quality was judged: {judged.get('note', 'nothing to judge')}")
