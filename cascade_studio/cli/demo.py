"""`demo`: a demo workspace served by the built-in sandbox, opened in the GUI.

`demo --no-gui` prepares the workspace and keeps the sandbox serving until Ctrl+C (the demo tiers
answer only while it runs); `--once` prepares and exits. Neither imports Qt: the GUI path is
imported only when the GUI is shown.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from cascade_studio.cli.common import CliError, gui_workspace


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="open the GUI on a demo workspace served by the built-in sandbox")
    demo.add_argument("--reset", action="store_true", help="recreate the demo workspace")
    demo.add_argument("--no-gui", action="store_true",
                      help="no window: prepare the demo workspace and serve its sandbox until Ctrl+C")
    demo.add_argument("--once", action="store_true",
                      help="with --no-gui: prepare the workspace and exit (the sandbox stops with it)")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.once and not args.no_gui:
        raise CliError("--once goes with --no-gui (the GUI serves the sandbox while its window is open)", code=2)
    if args.no_gui:
        return serve_headless(gui_workspace(args), reset=args.reset, once=args.once)
    from cascade_studio.ui.app import run_demo

    return run_demo(workspace=gui_workspace(args), reset=args.reset, show_gui=True)


def serve_headless(workspace: Path | None, *, reset: bool, once: bool = False,
                   stop: threading.Event | None = None) -> int:
    """What `ui.app.run_demo` does without importing the GUI: the sandbox serves the demo tiers
    until SIGINT/SIGTERM (or `stop` is set), unless `once`."""
    from cascade_studio.sandbox.app import SandboxConfig
    from cascade_studio.sandbox.server import SandboxThread
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.services.paths import demo_workspace, sandbox_dir

    stop = stop or threading.Event()
    sandbox = SandboxThread(SandboxConfig(data_dir=sandbox_dir()))  # its fine-tuned models outlive a restart
    base_url = sandbox.start()
    previous: dict[int, object] = {}
    try:
        folder = workspace or demo_workspace()
        summary = prepare_demo(folder, base_url, reset=reset)
        print(f"Demo workspace {folder}: {summary}; sandbox at {base_url}", flush=True)
        if once:
            print(f"The sandbox stops now: the demo tiers ({base_url}) answer only while `cascade-studio demo "
                  "--no-gui` (without --once) or the demo GUI runs.", file=sys.stderr, flush=True)
            return 0
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        print(f"Serving the demo tiers at {base_url} until Ctrl+C (or SIGTERM). In another terminal: "
              f"cascade-studio -w {folder} collect --limit 5", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
    print("Sandbox stopped.", file=sys.stderr, flush=True)
    return 0
