"""Open the GUI (real xcb window under Xvfb) and save a screenshot of the whole screen.

    xvfb-run -s "-screen 0 1300x820x24" .venv/bin/python tools/screenshot.py WORKSPACE OUT.png [PAGE] [--demo]
"""

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from cascade_studio.ui.app import create_main_window, make_app

args = [a for a in sys.argv[1:] if not a.startswith("--")]
workspace, out = Path(args[0]), args[1]
page = int(args[2]) if len(args) > 2 else 0
sandbox = None
if "--demo" in sys.argv:
    from cascade_studio.sandbox.server import SandboxThread
    from cascade_studio.services.demo import prepare_demo

    sandbox = SandboxThread()
    prepare_demo(workspace, sandbox.start())
app = make_app()
window = create_main_window(workspace)
window.nav.setCurrentRow(page)
window.move(0, 0)
window.show()


def shoot() -> None:
    QApplication.primaryScreen().grabWindow(0).save(out)
    app.quit()


QTimer.singleShot(1500, shoot)
app.exec()
if sandbox:
    sandbox.stop()
