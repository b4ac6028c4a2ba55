"""`traffic`: production requests brought home from the gateway's logs (import, report, hard cases)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("traffic", help="production traffic from the gateway's logs")
    actions = p.add_subparsers(dest="traffic_cmd", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="read gateway request logs (a file or the --log folder) into the workspace")
    imp.add_argument("path")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(handler=run_import)
    rep = actions.add_parser("report", help="requests, share per tier, cost vs teacher-only, latency, live agreement")
    rep.add_argument("--alert-level", type=float, default=0.8, help="warn when live agreement is below it")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(handler=run_report)
    hard = actions.add_parser("hard-cases", help="list the escalated requests' tasks; optionally collect the "
                                                 "teacher for them and build the next dataset")
    hard.add_argument("--collect", action="store_true", help="collect the teacher's answers for them")
    hard.add_argument("--dataset", metavar="FILE", help="then build the next dataset (teacher trajectories) to FILE")
    hard.add_argument("--json", action="store_true")
    hard.set_defaults(handler=run_hard_cases)


def run_import(args: argparse.Namespace) -> int:
    from cascade_studio.services.traffic import import_traffic

    with open_ws(args) as ws:
        result = import_traffic(ws, Path(args.path))
    if args.json:
        print_json(result.to_json())
    else:
        print(f"Imported {result}.")
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from cascade_studio.services.traffic import report

    with open_ws(args) as ws:
        out = report(ws, args.alert_level)
    if args.json:
        print_json(out)
        return 0
    if not out["requests"]:
        print("No production requests yet: serve the policy with --log DIR, then `cascade-studio traffic import DIR`.")
        return 0
    shares = ", ".join(f"tier {t} {s:.0%}" for t, s in out["answered_share"].items())
    print(f"{out['requests']} requests ({out['first']} to {out['last']}), {out['failed']} failed; answered: {shares}")
    print(f"Cost ${out['cost_usd']} vs teacher-only ${out['teacher_only_usd']}; p95 latency "
          f"{out['latency_p95_ms'] or 0:.0f} ms; {out['hard_cases']} hard cases")
    for tier, live in out["live_agreement"].items():
        print(f"Live agreement of tier {tier}: {live['agreement']:.0%} over {live['samples']} shadow samples")
    for warning in out["drift_warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_hard_cases(args: argparse.Namespace) -> int:
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.production import ProductionRepository

    if args.dataset and not args.collect:
        raise CliError("--dataset goes with --collect (collect the teacher's answers, then build)", code=2)
    with open_ws(args) as ws:
        if not args.collect:
            rows = ProductionRepository(ws).hard_cases()
            if args.json:
                print_json(rows)
            else:
                for r in rows:
                    print(f"{r['task_id']}  {r['category']}  {r['requests']} request(s), last {r['last_seen']}")
                print(f"{len(rows)} hard cases")
            return 0
        from cascade_studio.services.hard_cases import collect_hard_cases

        result = asyncio.run(collect_hard_cases(ws, SecretStore(), Path(args.dataset) if args.dataset else None))
    if args.json:
        print_json(result.to_json())
    else:
        print(f"{result.hard_cases} hard cases: {result.collected} teacher answers collected, {result.failed} failed"
              + (f"; dataset {result.dataset.path} ({result.dataset.examples} examples)" if result.dataset else ""))
    return 1 if result.failed else 0
