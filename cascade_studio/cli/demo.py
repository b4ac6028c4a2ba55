"""`demo`: a demo workspace served by the built-in sandbox, opened in the GUI.

`demo --no-gui` only prepares the workspace, so it must not import Qt: the GUI path is imported
only when the GUI is shown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade_studio.cli.common import gui_workspace


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="open the GUI on a demo workspace served by the built-in sandbox")
    demo.add_argument("--reset", action="store_true", help="recreate the demo workspace")
    demo.add_argument("--no-gui", action="store_true", help="prepare the demo workspace and exit")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.no_gui:
        return prepare_only(gui_workspace(args), reset=args.reset)
    from cascade_studio.ui.app import run_demo

    return run_demo(workspace=gui_workspace(args), reset=args.reset, show_gui=True)


def prepare_only(workspace: Path | None, *, reset: bool) -> int:
    """What `ui.app.run_demo(show_gui=False)` does, without importing the GUI."""
    from cascade_studio.sandbox.server import SandboxThread
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.services.paths import demo_workspace

    sandbox = SandboxThread()
    base_url = sandbox.start()
    try:
        folder = workspace or demo_workspace()
        summary = prepare_demo(folder, base_url, reset=reset)
        print(f"Demo workspace {folder}: {summary}; sandbox at {base_url}", flush=True)
    finally:
        sandbox.stop()
    return 0
