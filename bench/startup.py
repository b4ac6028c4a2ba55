"""Cold start to main window shown, against a bare QMainWindow, each in a fresh process.

Both children start a new Python interpreter, import what they need, show a window and report
once it has been exposed; we time from spawn to that report. Median of N runs each.
Last line: `ratio=<app/bare>` (goal: <= 2.0).

    python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow(); w.resize(1200, 760); w.show()
app.processEvents()  # the first frame, as the app does before entering its loop
print("shown", flush=True)
"""

APP = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from cascade_studio.ui.app import run_gui

def started(window):  # the real startup path: hooks, workspace, main window shown and painted
    print("shown", flush=True)
    QTimer.singleShot(0, lambda: (window.close(), QApplication.quit()))

run_gui(Path(sys.argv[1]), on_started=started)
"""


def once(code: str, *args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd=ROOT, text=True)
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait()
    if line.strip() != "shown":
        raise RuntimeError("the window did not show")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # An installed app ships compiled bytecode (pip and PyInstaller compile it); a source checkout
    # under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module at each start.
    import compileall

    compileall.compile_dir(str(ROOT / "cascade_studio"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               "PYTHONPATH": str(ROOT), "CASCADE_STUDIO_CONFIG_DIR": f"{tmp}/cfg",
               "CASCADE_STUDIO_DATA_DIR": f"{tmp}/data", "CASCADE_STUDIO_LOG_DIR": f"{tmp}/log"}
        workspace = f"{tmp}/ws"
        once(APP, workspace, env=env)  # create the workspace and warm the OS file cache for both
        once(BARE, env=env)
        bare, app = [], []
        for _ in range(args.runs):  # interleave so drift affects both equally
            bare.append(once(BARE, env=env))
            app.append(once(APP, workspace, env=env))
    b, a = statistics.median(bare), statistics.median(app)
    print(f"bare QMainWindow: {b * 1000:.0f} ms; Cascade Studio main window: {a * 1000:.0f} ms (median of {args.runs})")
    print(f"ratio={a / b:.2f}")


if __name__ == "__main__":
    main()
