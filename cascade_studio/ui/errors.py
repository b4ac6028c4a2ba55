"""One place where uncaught exceptions become a dialog and a log entry."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtWidgets import QApplication, QMessageBox

from cascade_studio.services.paths import log_file

log = logging.getLogger("cascade_studio.ui")
_showing = False
_open_dialogs: list[QMessageBox] = []  # keep parentless dialogs alive while they are shown


def show_error(title: str, message: str, parent=None) -> None:
    """A user-facing error: the problem and the fix. Tracebacks never go here."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    box.open()


def ask_yes_no(parent, title: str, text: str) -> bool:
    """A question whose safe answer (No) is the default: confirmations before spending or losing."""
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def report_exception(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    global _showing
    log.error("Uncaught exception", exc_info=(exc_type, exc, tb))
    if QApplication.instance() is None or _showing:
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        return
    _showing = True
    try:
        box = QMessageBox(
            QMessageBox.Icon.Critical,
            "Unexpected error",
            f"Something went wrong: {exc_type.__name__}: {exc}\n\n"
            f"Your saved work is safe. The details were written to the log file:\n{log_file()}\n\n"
            "Please include that file when you report the problem.",
        )
        box.setObjectName("crashDialog")
        _open_dialogs.append(box)
        box.finished.connect(lambda *_: _open_dialogs.remove(box) if box in _open_dialogs else None)
        box.exec() if not _is_test() else box.open()
    finally:
        _showing = False
_open_dialogs: list[QMessageBox] = []  # keep parentless dialogs alive while they are shown


def _is_test() -> bool:
    return "pytest" in sys.modules


def install_exception_hooks(loop=None) -> None:
    sys.excepthook = report_exception

    if loop is not None:
        def handler(_loop, context):
            exc = context.get("exception")
            if exc is None:
                log.error("Event loop error: %s", context.get("message"))
                return
            report_exception(type(exc), exc, exc.__traceback__)

        loop.set_exception_handler(handler)
