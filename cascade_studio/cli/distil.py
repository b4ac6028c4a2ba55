"""`distil prompt`: a prompt-distilled generation of a student tier (demonstrations from the
teacher's trajectories, services.prompt_distill), and `distil prompt --remove`."""

from __future__ import annotations

import argparse
import asyncio

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    di = sub.add_parser("distil", help="prompt distillation: demonstrations from the teacher for a student tier")
    di.set_defaults(handler=run_distil)
    actions = di.add_subparsers(dest="distil_cmd", metavar="ACTION", required=True)
    pr = actions.add_parser("prompt", help="give a student tier a new generation with the teacher's demonstrations "
                                           "before each task (never from the dataset's validation tasks)")
    pr.add_argument("--student", type=int, required=True, help="the student tier")
    pr.add_argument("--k", type=int, default=4, help="demonstrations per request (default 4)")
    pr.add_argument("--mode", choices=["fixed", "nearest"], default="fixed",
                    help="fixed: the same k for every request (stratified by category, tasks the student got wrong "
                         "first); nearest: per request, the k most similar teacher answers")
    pr.add_argument("--dataset", type=int, help="the dataset whose validation split is left out (default: newest)")
    pr.add_argument("--reasoning", action="store_true", help="keep the teacher's text before its tool calls")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--evaluate-first", action="store_true",
                    help="evaluate the new and the current generation on the validation split first (collects the "
                         "missing answers: paid) and change the tier only if the new one agrees at least as often")
    pr.add_argument("--force", action="store_true", help="with --evaluate-first: change the tier whatever it shows")
    pr.add_argument("--no-embeddings", action="store_true", help="evaluate with the offline similarity")
    pr.add_argument("--remove", action="store_true", help="back to the plain student (no demonstrations)")
    pr.add_argument("--json", action="store_true")


def run_distil(args: argparse.Namespace) -> int:
    from cascade_studio.services.prompt_distill import distil_prompt, remove_prompt
    from cascade_studio.services.secrets import SecretStore

    with open_ws(args) as ws:
        if args.remove:
            tier = remove_prompt(ws, args.student)
            print(f"Tier {tier.tier} ({tier.model}) answers without demonstrations again.")
            return 0
        if args.force and not args.evaluate_first:
            raise CliError("--force only applies with --evaluate-first", code=2)
        result = asyncio.run(distil_prompt(ws, args.student, args.k, args.mode, SecretStore(),
                                           dataset_id=args.dataset, reasoning=args.reasoning, seed=args.seed,
                                           evaluate_first=args.evaluate_first, force=args.force,
                                           use_embeddings=not args.no_embeddings))
    if args.json:
        print_json(result.to_json())
    else:
        print(result.sentence())
    return 0 if result.applied else 1
