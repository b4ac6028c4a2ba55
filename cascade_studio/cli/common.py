"""What every command shares: the workspace, JSON output, and the CLI's user error."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascade_studio.core.errors import UserError


class CliError(UserError):
    """An error for stderr with exit code 2 (usage) or 1 (operation failed)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message, code)


def decimal_arg(text: str) -> Decimal:
    """argparse type for a price: USD per 1M tokens."""
    try:
        value = Decimal(text)
    except Exception:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (USD per 1M tokens, e.g. 2.50)") from None
    return value


def workspace_path(args: argparse.Namespace) -> Path:
    from cascade_studio.services.paths import default_workspace

    return Path(args.workspace).expanduser() if args.workspace else default_workspace()


def workspace_exists(args: argparse.Namespace) -> bool:
    """Whether the command should read the workspace: named with -w, or the default one exists."""
    return bool(args.workspace) or workspace_path(args).exists()


def open_ws(args: argparse.Namespace, *, create: bool = True):
    from cascade_studio.store.workspace import Workspace, WorkspaceError

    try:  # a big workspace is checked on a schedule (daily, after a crash), not on every command
        ws = Workspace.open(workspace_path(args), create=create,
                            announce=lambda sentence: print(sentence, file=sys.stderr, flush=True))
    except WorkspaceError as exc:
        raise CliError(str(exc)) from None
    from cascade_studio.store.datasets import DatasetRepository

    if DatasetRepository(ws).pending_files():  # a build killed while putting its files in place
        from cascade_studio.services.datasets import finish_on_open

        if (sentence := finish_on_open(ws)) is not None:
            print(sentence, file=sys.stderr, flush=True)
    return ws


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def gui_workspace(args: argparse.Namespace) -> Path | None:
    """The workspace the GUI opens: the one named with -w, else the GUI picks its default."""
    return Path(args.workspace).expanduser() if args.workspace else None


def tier_or_teacher(tiers: list, number: int | None):
    """Tier `number`, or the teacher when no number is given; None when there is no such tier."""
    from cascade_studio.core.tiers import teacher_of

    return next((t for t in tiers if t.tier == number), None) if number else teacher_of(tiers)


def add_task_selection(parser: argparse.ArgumentParser) -> None:
    """The options that choose the tasks a command runs on (collect, evaluate): one wording for both."""
    parser.add_argument("--category", help="only the tasks of this category")
    parser.add_argument("--limit", type=int, help="at most this many tasks (the first in the task table's order)")
