"""`collect`: run a tier over tasks, resuming an unfinished run of the same tier and tasks."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cascade_studio.cli.common import CliError, add_task_selection, open_ws, print_json, tier_or_teacher


def register(sub: argparse._SubParsersAction) -> None:
    col = sub.add_parser("collect", help="run a tier over tasks (resumes an unfinished run of the same tier and tasks)")
    col.add_argument("--tier", type=int, help="tier number (default: the teacher)")
    add_task_selection(col)
    col.add_argument("--concurrency", type=int)
    col.add_argument("--batch", action="store_true", help="through the Batch API (half price, results within 24 h)")
    col.add_argument("--again", action="store_true",
                     help="collect again on purpose: send tasks that already have an answer of this tier's model and "
                          "settings (by default they are skipped, so nothing is paid twice)")
    col.add_argument("--trials", type=int, default=1, metavar="N",
                     help="run every task N times (trial 0..N-1; agent benchmarks' pass^k needs several); trials "
                          "already collected are skipped")
    col.add_argument("--dry-run", action="store_true",
                     help="say how many requests would be sent and their estimated cost; send nothing")
    col.add_argument("--json", action="store_true")
    col.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cascade_studio.core.money import micro_to_usd
    from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
    from cascade_studio.services.run_plan import plan_run
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.tiers import TierRepository

    with open_ws(args) as ws:
        tier = tier_or_teacher(TierRepository(ws).list(), args.tier)
        if tier is None:
            raise CliError(f"no tier {args.tier or ''}; define one with `cascade-studio tiers set`".replace("  ", " "))
        task_ids = select_task_ids(ws, args.category, args.limit)
        if not task_ids:
            raise CliError("no tasks to run; import some with `cascade-studio tasks import FILE`")
        if args.trials < 1:
            raise CliError("--trials must be 1 or more", code=2)
        if args.batch and args.trials > 1:
            raise CliError("--trials runs tasks several times one by one; the Batch API takes one answer per task",
                           code=2)
        if args.batch:
            from cascade_studio.services.run_plan import batch_problem

            problem = batch_problem(ws, task_ids)
            if problem:
                raise CliError(problem, code=2)
        plan = plan_run(ws, tier, task_ids, again=args.again, batch=args.batch, trials=args.trials)
        if args.dry_run:
            if args.json:
                print_json(plan.to_json())
            else:
                print(f"Would send {plan.sentence()}; output estimated from the {plan.output_basis}.")
            return 0
        from cascade_studio.services.run_lock import TierRunLock

        TierRunLock.refuse_if_busy(ws.path, tier.tier)  # refused before "Resuming run N" is said
        print(plan.sentence() + (" (collecting again on purpose)" if args.again else ""), file=sys.stderr)
        run, resumed = start_or_resume(ws, tier, task_ids, {"category": args.category, "limit": args.limit,
                                                            "concurrency": args.concurrency, "batch": args.batch},
                                       batch=args.batch, again=args.again, trials=args.trials)
        last = [0.0]

        def progress(p) -> None:
            import time as _t

            if _t.monotonic() - last[0] < 1.0 and p.status == "running":
                return
            last[0] = _t.monotonic()
            eta = f", ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
            print(f"[run {p.run_id}] {p.done}/{p.total} done, {p.failed} failed, {p.rate:.1f}/s{eta}, "
                  f"{p.tokens:,} tokens, {p.cost_words()}", file=sys.stderr, flush=True)

        if resumed:
            print(f"Resuming run {run.id} of tier {tier.tier} ({tier.model})", file=sys.stderr)
        if args.batch:
            from cascade_studio.services.batch_runner import BatchCollection

            runner = BatchCollection(ws, tier, SecretStore(), run, on_progress=progress)
        else:
            runner = CollectionRun(ws, tier, SecretStore(), run, concurrency=args.concurrency, on_progress=progress)
        try:
            result = asyncio.run(runner.run())
        except KeyboardInterrupt:
            print(f"Interrupted; run `collect` again to resume run {run.id}.", file=sys.stderr)
            return 130
        summary = {"run_id": run.id, "tier": tier.tier, "model": tier.model, "generation": run.generation,
                   "resumed": resumed, "done": result.done, "failed": result.failed, "skipped": result.skipped,
                   "tokens": result.tokens, "cost_usd": str(micro_to_usd(result.cost_micro)),
                   "run_tokens": result.run_tokens, "run_cost_usd": str(micro_to_usd(result.run_cost_micro)),
                   "status": result.status, "message": result.message}
        if args.json:
            print_json(summary)
        else:
            print(f"Run {run.id}: {result.done}/{result.total} done, {result.failed} failed, "
                  f"{result.skipped} already done before; this time {result.tokens:,} tokens, ${summary['cost_usd']}; "
                  f"the whole run {result.run_tokens:,} tokens, ${summary['run_cost_usd']}")
        if result.status == "failed" and result.message:
            print(f"error: {result.message}", file=sys.stderr)
        return 0 if result.status == "done" else 1
