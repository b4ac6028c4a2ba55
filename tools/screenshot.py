"""Open the GUI (real xcb window under Xvfb) and save a screenshot of the whole screen.

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python tools/screenshot.py WORKSPACE OUT.png [PAGE]
"""

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from cascade_studio.ui.app import create_main_window, make_app

workspace, out = Path(sys.argv[1]), sys.argv[2]
page = int(sys.argv[3]) if len(sys.argv) > 3 else 0
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
