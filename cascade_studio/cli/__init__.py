"""Command line: the headless face of the same services the GUI uses.

`cascade-studio [--workspace DIR]` with no command opens the GUI. Each command group lives in
its own module, which adds its slice of the parser (`register`) and sets its handler; a handler
returns the exit status. Errors the user can fix are `core.errors.UserError`s: `main` prints them
as `error: message` and returns their code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from cascade_studio import __version__
from cascade_studio.cli import (
    catalog,
    collect,
    dataset,
    demo,
    distil,
    env,
    evaluate,
    finetune,
    gui,
    judge,
    keys,
    sandbox,
    serve,
    strategies,
    tasks,
    tiers,
    traffic,
    trajectories,
    whatif,
    workspace,
)
from cascade_studio.cli.common import CliError
from cascade_studio.core.errors import UserError

__all__ = ["CliError", "build_parser", "main"]

# The order of `--help`'s command list.
COMMAND_GROUPS = (gui, tiers, keys, env, tasks, collect, trajectories, evaluate, judge, whatif, strategies, dataset,
                  finetune, distil, catalog, sandbox, demo, workspace, serve, traffic)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cascade-studio", description="Cascade Studio: distil and cascade LLM agents.")
    p.add_argument("--version", action="version", version=f"cascade-studio {__version__}")
    p.add_argument("--workspace", "-w", metavar="DIR", help="workspace folder (default: the user data folder)")
    p.add_argument("--self-check", action="store_true", help="check the installation and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from cascade_studio.services.logging_setup import setup_logging

    setup_logging()
    try:
        if args.self_check:
            from cascade_studio.ui.selfcheck import run_self_check

            return run_self_check()
        handler = getattr(args, "handler", None) or gui.run
        return handler(args) or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
