"""The one startup path: QApplication, qasync loop, exception hooks, main window."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from cascade_studio import APP_ID, APP_NAME, __version__
from cascade_studio.services.paths import default_workspace, resources_dir
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.errors import install_exception_hooks

log = logging.getLogger(__name__)


def make_app() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_ID)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    icon = resources_dir() / "icons" / "cascade-studio.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    return app  # type: ignore[return-value]


def create_main_window(workspace: Path | None, secrets: SecretStore | None = None,
                       settings: AppSettings | None = None):
    from cascade_studio.ui.main_window import MainWindow

    settings = settings or AppSettings()
    window = MainWindow(secrets or SecretStore(), settings)
    if workspace is None:
        recents = [Path(p) for p in settings.recent_workspaces if (Path(p) / "workspace.sqlite").exists()]
        workspace = recents[0] if recents else default_workspace()
    window.open_workspace(workspace, create=True)
    return window


def warn_about_the_binding(window) -> None:
    """Say so, once at start, when the Qt binding is one known to crash the app (ui/qt_binding.py)."""
    from cascade_studio.ui.qt_binding import binding_problem

    problem = binding_problem()
    if problem:
        from PySide6.QtWidgets import QMessageBox

        log.error("%s", problem)
        QMessageBox.warning(window, "Qt binding", problem)


def run_gui(workspace: Path | None = None, *, on_started: Callable[[object], None] | None = None,
            extra_cleanup: Callable[[], None] | None = None) -> int:
    """Show the window first, then load the async machinery (qasync/asyncio) and run the loop."""
    app = make_app()
    install_exception_hooks()
    window = create_main_window(workspace)
    window.show()
    warn_about_the_binding(window)
    app.processEvents()  # paint the first frame before the ~70 ms asyncio/qasync import
    if on_started:
        on_started(window)
    probe = os.environ.get("CASCADE_STUDIO_STARTUP_PROBE")  # epoch seconds when the launcher started
    if probe:  # packaging check: report the time to the first painted window, then quit
        import time

        print(f"main window shown {time.time() - float(probe):.2f} s after launch", flush=True)
        window.close()
        return 0

    import asyncio

    import qasync

    async def main() -> int:
        install_exception_hooks(asyncio.get_running_loop())
        closed = asyncio.Event()
        app.aboutToQuit.connect(closed.set)
        app.lastWindowClosed.connect(closed.set)
        if window.isVisible():
            await closed.wait()
        return 0

    try:
        return qasync.run(main())
    except asyncio.CancelledError:
        return 0
    finally:
        if extra_cleanup:
            extra_cleanup()


def run_demo(workspace: Path | None = None, *, reset: bool = False, show_gui: bool = True) -> int:
    from cascade_studio.sandbox.app import SandboxConfig
    from cascade_studio.sandbox.server import SandboxThread
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.services.paths import demo_workspace, sandbox_dir

    sandbox = SandboxThread(SandboxConfig(data_dir=sandbox_dir()))  # its fine-tuned models outlive a restart
    base_url = sandbox.start()
    folder = workspace or demo_workspace()
    summary = prepare_demo(folder, base_url, reset=reset)
    print(f"Demo workspace {folder}: {summary}; sandbox at {base_url}", flush=True)
    if not show_gui:
        sandbox.stop()
        return 0
    return run_gui(folder, extra_cleanup=sandbox.stop)
