"""`tasks`: import and list tasks."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="import and list tasks")
    tasks.set_defaults(handler=run)
    actions = tasks.add_subparsers(dest="tasks_cmd", metavar="ACTION", required=True)
    ta_imp = actions.add_parser("import",
                                help="import a task file (all or nothing; same ids are updated, not duplicated)")
    ta_imp.add_argument("file")
    ta_imp.add_argument("--format", choices=["native", "bfcl", "csv"], help="default: detected from the file")
    ta_imp.add_argument("--answers", metavar="FILE", help="BFCL possible_answer file (default: found next to FILE)")
    ta_imp.add_argument("--env", metavar="NAME", help="run every task of the file as an agent episode in environment NAME")
    ta_imp.add_argument("--max-steps", type=int, metavar="N", help="the episodes' step limit (default 8)")
    ta_imp.add_argument("--json", action="store_true")
    ta_list = actions.add_parser("list", help="list tasks")
    ta_list.add_argument("--category")
    ta_list.add_argument("--limit", type=int)
    ta_list.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    with open_ws(args) as ws:
        if args.tasks_cmd == "import":
            return _import(args, ws)
        return _list(args, ws)


def _import(args: argparse.Namespace, ws) -> int:
    from cascade_studio.core.tasks import TaskImportError
    from cascade_studio.services.task_import import import_tasks

    try:
        result = import_tasks(ws, Path(args.file), args.format, Path(args.answers) if args.answers else None,
                              environment=args.env, max_steps=args.max_steps)
    except TaskImportError as exc:
        raise CliError(f"{exc}. Nothing was imported.") from None
    if args.json:
        print_json({"file": args.file, **result.to_json()})
    else:
        print(f"Imported {args.file}: {result.added} added, {result.updated} updated, "
              f"{result.unchanged} unchanged")
    if args.env:
        from cascade_studio.store.environments import EnvironmentRepository

        if EnvironmentRepository(ws).get(args.env) is None:
            print(f"Note: there is no environment {args.env!r} yet; add it before collecting: "
                  f"cascade-studio env add {args.env} --stdio \"COMMAND\"")
    return 0


def _list(args: argparse.Namespace, ws) -> int:
    from cascade_studio.store.tasks import TaskRepository

    tasks = TaskRepository(ws).list(args.category, args.limit)
    if args.json:
        print_json([{"id": t.id, "category": t.category, "tools": t.tool_names, "prompt": t.prompt,
                     "has_expected": t.expected is not None, "environment": t.environment or None,
                     "max_steps": t.max_steps} for t in tasks])
    else:
        for t in tasks:
            print(f"{t.id:<24} {t.category:<16} {','.join(t.tool_names)[:40]:<40} {t.prompt[:60]}")
        print(f"{len(tasks)} tasks" + (f" in {args.category}" if args.category else ""))
    return 0
