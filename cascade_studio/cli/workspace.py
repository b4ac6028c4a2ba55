"""`workspace check`: the full integrity check on demand (opening a big workspace checks it only on
a schedule: once a day, and after an unclean shutdown)."""

from __future__ import annotations

import argparse
import sys
import time

from cascade_studio.cli.common import CliError, print_json, workspace_path


def register(sub: argparse._SubParsersAction) -> None:
    ws = sub.add_parser("workspace", help="check the workspace file")
    ws.set_defaults(handler=run)
    actions = ws.add_subparsers(dest="workspace_cmd", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="check the workspace file for damage now (PRAGMA integrity_check)")
    check.add_argument("--quick", action="store_true", help="quick_check: skips index contents (faster)")
    check.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from cascade_studio.store.workspace import DB_NAME, Workspace

    folder = workspace_path(args)
    db_file = folder / DB_NAME
    if not db_file.is_file():
        raise CliError(f"No workspace in {folder} (no {DB_NAME}). Name one with --workspace DIR.")
    size = db_file.stat().st_size
    kind = "quick check" if args.quick else "full integrity check"
    started = time.monotonic()
    problem = Workspace.check_integrity(folder, quick=args.quick)
    seconds = time.monotonic() - started
    if args.json:
        print_json({"workspace": str(folder), "bytes": size, "check": "quick" if args.quick else "full",
                    "ok": problem is None, "problem": problem, "seconds": round(seconds, 3)})
    elif problem is None:
        print(f"{db_file} ({_size(size)}): no damage found ({kind}, {seconds:.1f} s).")
    else:
        print(f"{db_file} ({_size(size)}): the {kind} found a problem.", file=sys.stderr)
        print(problem, file=sys.stderr)
    return 0 if problem is None else 1


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
