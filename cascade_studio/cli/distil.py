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
    pr.add_argument("--draft-instruction", action="store_true",
                    help="ask the teacher (one request, paid) for an instruction from the student's disagreements; "
                         "read and edit it, then pass it with --instruction FILE")
    pr.add_argument("--out", metavar="FILE", help="with --draft-instruction: write the draft to FILE")
    pr.add_argument("--instruction", metavar="FILE", help="an instruction (e.g. the edited draft) placed before the "
                                                          "demonstrations")
    pr.add_argument("--json", action="store_true")


def run_distil(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cascade_studio.services.input_files import read_text
    from cascade_studio.services.output_files import write_text
    from cascade_studio.services.prompt_distill import distil_prompt, draft_instruction, remove_prompt
    from cascade_studio.services.secrets import SecretStore

    with open_ws(args) as ws:
        if args.remove:
            tier = remove_prompt(ws, args.student)
            print(f"Tier {tier.tier} ({tier.model}) answers without demonstrations again.")
            return 0
        if args.draft_instruction:
            draft = asyncio.run(draft_instruction(ws, args.student, SecretStore(), dataset_id=args.dataset))
            if args.out:
                write_text(Path(args.out), draft.text + "\n")
            if args.json:
                print_json(draft.to_json())
            else:
                print(draft.text)
                print(f"(drafted by the teacher from {draft.cases} disagreements, 1 request"
                      + ("" if draft.cost_micro is None else f", ${draft.to_json()['cost_usd']}") + "; edit it, then "
                      f"run distil prompt --student {args.student} --instruction {args.out or 'FILE'})")
            return 0
        instruction = ""
        if args.instruction:
            instruction = read_text(Path(args.instruction), lambda problem, line=None: CliError(
                f"{args.instruction}: {problem}")).strip()
            if not instruction:
                raise CliError(f"{args.instruction} is empty; write the instruction in it", code=2)
        if args.force and not args.evaluate_first:
            raise CliError("--force only applies with --evaluate-first", code=2)
        result = asyncio.run(distil_prompt(ws, args.student, args.k, args.mode, SecretStore(),
                                           dataset_id=args.dataset, reasoning=args.reasoning, seed=args.seed,
                                           evaluate_first=args.evaluate_first, force=args.force,
                                           use_embeddings=not args.no_embeddings, instruction=instruction))
    if args.json:
        print_json(result.to_json())
    else:
        print(result.sentence())
    return 0 if result.applied else 1
