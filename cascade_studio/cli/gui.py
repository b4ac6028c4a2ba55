"""`gui`: open the desktop app (also what `cascade-studio` with no command does)."""

from __future__ import annotations

import argparse

from cascade_studio.cli.common import gui_workspace


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("gui", help="open the GUI (the default)").set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cascade_studio.ui.app import run_gui

    return run_gui(workspace=gui_workspace(args))
