"""`dataset`: build a fine-tuning dataset from curated teacher trajectories, validate a JSONL file."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade_studio.cli.common import CliError, open_ws, print_json, workspace_path


def register(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser("dataset", help="fine-tuning datasets")
    ds.set_defaults(handler=run)
    actions = ds.add_subparsers(dest="dataset_cmd", metavar="ACTION", required=True)
    ds_build = actions.add_parser("build", help="build a dataset from curated teacher trajectories")
    ds_build.add_argument("--out", required=True, metavar="FILE")
    ds_build.add_argument("--tier", type=int, help="default: the teacher")
    ds_build.add_argument("--accepted-only", action="store_true")
    ds_build.add_argument("--category")
    ds_build.add_argument("--tool")
    ds_build.add_argument("--min-confidence", type=float)
    ds_build.add_argument("--validation-share", type=float, default=0.1)
    ds_build.add_argument("--seed", type=int, default=0)
    ds_build.add_argument("--reasoning", choices=["final", "reasoning"], default="final",
                          help="final answer only, or keep the teacher's reasoning in the assistant message")
    ds_build.add_argument("--system-prompt", help="replace the examples' system prompt")
    ds_build.add_argument("--no-dedupe", action="store_true")
    ds_build.add_argument("--last-turn-only", action="store_true",
                          help="episodes: train on each episode's last assistant turn only (earlier turns weight 0)")
    ds_build.add_argument("--format", choices=["openai", "sharegpt", "preference"], default="openai",
                          help="preference: DPO pairs where the teacher (--tier) and a student (--student) disagreed "
                               "on a task, the teacher's answer preferred (Together's preference format)")
    ds_build.add_argument("--student", type=int, metavar="N",
                          help="--format preference: the student tier (default: the lowest tier but the teacher)")
    ds_build.add_argument("--json", action="store_true")
    ds_val = actions.add_parser("validate", help="check a chat fine-tuning JSONL file (exit 1 on errors)")
    ds_val.add_argument("file")
    ds_val.add_argument("--model", default="gpt-4o-mini")
    ds_val.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.dataset_cmd == "validate":
        return _validate(args)
    return _build(args)


def _validate(args: argparse.Namespace) -> int:
    from cascade_studio.services import datasets as dsvc

    ws_dir = workspace_path(args) if args.workspace else None
    try:
        report = dsvc.validate_file(Path(args.file), args.model, ws_dir)
    except ValueError as exc:  # services.datasets words the user's mistakes (missing file, not UTF-8) as ValueError
        raise CliError(str(exc)) from None
    if args.json:
        print_json(report.to_json())
        return 0 if report.ok else 1
    print(f"{args.file}: {report.examples} examples, {len(report.errors)} errors, "
          f"{len(report.warnings)} warnings")
    for e in report.errors[:50]:
        print(f"  line {e['line']}: {e['kind']}{' (' + e['detail'] + ')' if e.get('detail') else ''}")
    for w in report.warnings:
        print(f"  warning: {w['kind']}: {w.get('examples', '')} {w.get('detail', '')}".rstrip())
    t = report.tokens_per_example
    if t:
        print(f"  tokens per example: min {t['min']}, mean {t['mean']:.0f}, max {t['max']}; "
              f"{report.over_limit} over the {report.token_limit:,}-token limit")
    cost = "" if report.estimated_cost_usd is None else f", about ${report.estimated_cost_usd:,.2f}"
    print(f"  {report.n_epochs} epochs by default -> {report.billed_tokens:,} billed training tokens{cost}")
    return 0 if report.ok else 1


def _build(args: argparse.Namespace) -> int:
    from cascade_studio.core.tiers import teacher_of
    from cascade_studio.services import datasets as dsvc
    from cascade_studio.store.tiers import TierRepository

    with open_ws(args) as ws:
        f = dsvc.DatasetFilters(tier=args.tier, accepted_only=args.accepted_only, category=args.category,
                                min_confidence=args.min_confidence, tool=args.tool, strategy=args.reasoning,
                                system_prompt=args.system_prompt, dedupe=not args.no_dedupe,
                                validation_share=args.validation_share, seed=args.seed,
                                last_turn_only=args.last_turn_only, student=args.student)
        if f.tier is not None or f.min_confidence is not None:
            # The confidence column follows the chosen tier's method (the GUI's dataset page chooses it too).
            tiers = TierRepository(ws).list()
            tier = next((t for t in tiers if t.tier == f.tier), None) if f.tier is not None else teacher_of(tiers)
            if tier is not None:
                f.confidence_method = tier.confidence_method.value
        try:
            built = dsvc.build_dataset(ws, Path(args.out), f, args.format)
        except ValueError as exc:  # services.datasets: "no trajectories match the filters" and the like
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    if args.json:
        print_json(built.to_json())
    else:
        print(f"Dataset {built.id}: {built.examples} training examples -> {built.path}"
              + (f", {built.validation_examples} validation -> {built.validation_path}" if built.validation_path else "")
              + (f" ({built.duplicates_dropped} duplicates dropped)" if built.duplicates_dropped else ""))
        if built.preference:
            p = built.preference
            print(f"Preference pairs: tier {p['teacher_tier']} (preferred) against tier {p['student_tier']} "
                  f"({p['student_model']}): {p['pairs']} disagreements kept, {p['agreed_dropped']} agreements dropped"
                  + (f", {p['no_student_answer']} tasks without a student answer" if p['no_student_answer'] else "")
                  + (f", {p['episodes_skipped']} agent episodes skipped" if p['episodes_skipped'] else "")
                  + f". Train with `cascade-studio finetune start --backend local --method dpo --dataset {built.path}`")
        if built.teacher_logprobs:
            print(f"The teacher's logprobs (soft labels for `finetune start --backend local`) -> {built.teacher_logprobs}")
    return 0
