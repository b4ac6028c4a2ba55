"""`whatif` (per-tier figures, the cascade at given thresholds, sweeps, monthly costs) and
`policy export` (the cascade policy as JSON and a Python snippet)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    pol = sub.add_parser("policy", help="the cascade policy")
    pol.set_defaults(handler=run_policy)
    pol_actions = pol.add_subparsers(dest="policy_cmd", metavar="ACTION", required=True)
    pol_exp = pol_actions.add_parser("export", help="write the policy JSON (no keys) and a Python snippet applying it")
    pol_exp.add_argument("file")
    pol_exp.add_argument("--episode-policy", choices=["step", "rest"], default="step",
                         help="agent episodes (each request a step): below its threshold a step escalates that step "
                              "(step) or the rest of the episode (rest), as `whatif --episodes --policy` simulated")

    wi = sub.add_parser("whatif", help="per-tier figures, the cascade at given thresholds, sweeps and monthly costs")
    wi.add_argument("--volume", type=float, default=1_000_000, help="requests per month (default 1,000,000)")
    wi.add_argument("--thresholds", help="T1[,T2]: escalation thresholds (default: the tiers' own)")
    wi.add_argument("--mode", choices=["cascade", "routing"], default="cascade")
    wi.add_argument("--sweep", action="store_true", help="add the cost-quality curve and router metrics")
    wi.add_argument("--category")
    wi.add_argument("--batch-discount", type=float, default=0.0, help="fraction off every price, e.g. 0.5")
    wi.add_argument("--training-cost", type=float, default=0.0, help="fine-tune training cost in USD")
    wi.add_argument("--amortize-months", type=int, default=12)
    wi.add_argument("--mix", metavar="CAT=SHARE,...",
                    help="traffic mix by category, e.g. simple=0.7,multiple=0.3 or a JSON object (default: as "
                         "recorded); categories left out get no traffic")
    wi.add_argument("--price-scale", metavar="TIER=X,...",
                    help="multiply a tier's recorded prices, e.g. 1=0.5,3=1.2 (default: 1 for every tier)")
    wi.add_argument("--episodes", action="store_true",
                    help="agent episodes: the per-step cascade (estimated from teacher-forced steps); --volume is then "
                         "episodes per month")
    wi.add_argument("--policy", choices=["step", "rest"], default="step",
                    help="episodes: below the threshold escalate that step (step) or the rest of the episode (rest)")
    wi.add_argument("--judge", metavar="NAME", help="quality = judged: a student's text answers graded against the "
                    "teacher's by this judge (tool calls stay matched); verdicts are stored and never paid twice")
    wi.add_argument("--dry-run", action="store_true", help="with --judge: estimate the judging cost, send nothing")
    wi.add_argument("--json", action="store_true")
    wi.set_defaults(handler=run_whatif)


def run_policy(args: argparse.Namespace) -> int:
    from cascade_studio.services.policy import export_policy
    from cascade_studio.store.tiers import TierRepository

    with open_ws(args) as ws:
        tiers = TierRepository(ws).list()
        if not tiers:
            raise CliError("no tiers to export; define them with `cascade-studio tiers set`")
        try:
            snippet = export_policy(tiers, Path(args.file), episode_policy=args.episode_policy)
        except OSError as exc:
            raise CliError(f"cannot write {args.file}: {exc.strerror}") from None
    print(f"Wrote the policy to {args.file} (no keys) and a snippet that applies it to {snippet}.\n"
          f"Serve it in production: cascade-studio serve --policy {args.file} --log DIR")
    return 0


def run_whatif(args: argparse.Namespace) -> int:
    from cascade_studio.core.tradeoffs import WhatIf, tradeoff_report
    from cascade_studio.services.tradeoffs import load_outcomes
    from cascade_studio.store.tiers import TierRepository

    with open_ws(args) as ws:
        tiers = TierRepository(ws).list()
        if len(tiers) < 2:
            raise CliError("what-if needs at least two tiers (a student and the teacher)")
        if args.episodes:
            return _episodes(args, ws, tiers)
        outcomes = load_outcomes(ws, tiers, args.category)
        if outcomes.n == 0:
            raise CliError("no task has trajectories of every tier; run `cascade-studio collect --tier N` for each tier")
        judged = _judge_quality(ws, args, tiers, outcomes)
        students = sorted(tiers, key=lambda t: t.tier)[:-1]
        if args.thresholds:
            try:
                thresholds = [float(x) for x in args.thresholds.split(",")]
            except ValueError:
                raise CliError("--thresholds takes numbers, e.g. 0.6 or 0.6,0.8", code=2) from None
        else:
            thresholds = [t.threshold for t in students]
        if len(thresholds) != len(tiers) - 1:
            raise CliError(f"{len(tiers)} tiers need {len(tiers) - 1} thresholds", code=2)
        scenario = WhatIf(monthly_volume=args.volume, mix=_pairs(args.mix, "--mix", str),
                          price_scale=_pairs(args.price_scale, "--price-scale", int),
                          batch_discount=args.batch_discount, training_cost_usd=args.training_cost,
                          amortize_months=args.amortize_months)
        out = tradeoff_report(outcomes, thresholds, scenario, args.mode, with_sweep=args.sweep)
        if judged is not None:
            out["quality_judge"] = judged
    if args.json:
        print_json(out)
    else:
        _print_whatif(out, outcomes, thresholds, args)
    return 0


def _judge_quality(ws, args: argparse.Namespace, tiers, outcomes) -> dict[str, Any] | None:
    if args.judge is None:
        if args.dry_run:
            raise CliError("--dry-run goes with --judge NAME", code=2)
        return None
    import asyncio

    from cascade_studio.services.judged_evaluation import judge_outcomes
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.judges import JudgeRepository

    judge = JudgeRepository(ws).get(args.judge)
    if judge is None:
        raise CliError(f"no judge {args.judge!r}; see `cascade-studio judge list`")
    return asyncio.run(judge_outcomes(ws, judge, tiers, outcomes, SecretStore(), dry_run=args.dry_run))
def _pairs(text: str | None, option: str, key_type: type) -> dict[Any, float] | None:
    """`a=0.5,b=0.5` (or a JSON object) as {key: number}; None when not given."""
    if not text:
        return None
    import json

    try:
        if text.lstrip().startswith("{"):
            raw = json.loads(text)
            return {key_type(k): float(v) for k, v in raw.items()}
        pairs = (item.rsplit("=", 1) for item in text.split(",") if item.strip())
        return {key_type(k.strip()): float(v) for k, v in pairs}
    except (ValueError, TypeError, AttributeError):
        raise CliError(f"{option} takes KEY=NUMBER pairs separated by commas (or a JSON object), not {text!r}",
                       code=2) from None


def _print_whatif(out: dict[str, Any], outcomes, thresholds: list[float], args: argparse.Namespace) -> None:
    print(f"{outcomes.n} tasks with every tier ({outcomes.excluded} excluded); quality = {outcomes.quality_basis}")
    judged = out.get("quality_judge")
    if judged is not None and judged.get("applied"):
        print(f"  judged by {judged['basis']}: " + ", ".join(
            f"tier {k} {v['judged']} judged, {v['matched']} matched" for k, v in judged["tiers"].items())
            + f"; judging cost ${judged['cost_usd']} ({judged['requests']} requests, {judged['reused']} reused)")
    elif judged is not None:
        print(f"  judge not applied: {judged['note']}")
    for f in out["tiers"]:
        print(f"  tier {f['tier']}: ${f['cost_per_request_usd']:.6f}/request, p50 {f['latency_p50_ms']:.0f} ms, "
              f"p95 {f['latency_p95_ms']:.0f} ms, quality {f['quality']:.0%}")
    c, w = out["cascade"], out["whatif"]
    print(f"{args.mode} at {thresholds}: ${c['cost_per_request_usd']:.6f}/request, quality {c['quality']:.0%}, "
          f"p95 {c['latency_p95_ms']:.0f} ms, escalation {', '.join(f'{e:.0%}' for e in c['escalation_rate'])}")
    be = "never" if w["break_even_month"] is None else f"month {w['break_even_month']}"
    print(f"At {args.volume:,.0f} requests/month: ${w['monthly_cost_usd']:,.2f}/month vs teacher-only "
          f"${w['teacher_only_monthly_usd']:,.2f} -> saves ${w['monthly_savings_usd']:,.2f}/month; break-even {be}")
    if "metrics" in out:
        m = out["metrics"]
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float)))
        if m.get("unstable"):
            print(f"  unstable: {m['unstable']}")


def _episodes(args: argparse.Namespace, ws, tiers) -> int:
    from cascade_studio.services.agent.tradeoffs import episode_whatif

    thresholds = None
    if args.thresholds:
        try:
            thresholds = [float(x) for x in args.thresholds.split(",")]
        except ValueError:
            raise CliError(f"--thresholds {args.thresholds!r}: give numbers like 0.7,0.8", code=2) from None
    try:
        out = episode_whatif(ws, tiers, thresholds=thresholds, policy=args.policy, volume=args.volume,
                             category=args.category, with_sweep=args.sweep)
    except ValueError as exc:
        raise CliError(str(exc), code=2) from None
    if args.json:
        print_json(out)
        return 0
    if "cascade" not in out:
        print(out.get("message", "No agent episodes."))
        return 1
    c, w = out["cascade"], out["whatif"]
    print(f"Per-step cascade ({out['policy']} policy) over {out['episodes']} episodes, thresholds {c['thresholds']}:")
    print(f"  ${c['cost_per_episode_usd']} per episode (teacher only ${out['teacher_only']['cost_per_episode_usd']}); "
          "steps answered per tier " + ", ".join(f"tier {k} {v:.0%}" for k, v in c["share_answered"].items()))
    print(f"  step agreement {c['step_agreement']:.1%}, episodes with every step agreeing {c['episode_agreement']:.1%}")
    print(f"  {w['volume_episodes_per_month']:,.0f} episodes a month: ${w['monthly_cost_usd']} "
          f"(teacher only ${w['teacher_only_monthly_cost_usd']})")
    measured = out.get("measured_free_running")
    if measured:
        print(f"  measured, free-running: tier {measured['tier']} succeeds on {measured['student_success_rate']:.0%} "
              f"of {measured['tasks']} episodes (teacher {measured['teacher_success_rate']:.0%})")
    print(f"  ({out['basis']})")
    return 0

