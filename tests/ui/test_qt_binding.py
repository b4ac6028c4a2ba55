"""Issue 19's rare native crash: PySide6 6.12.0 lost a reference to None on every call of a void
method (processEvents, setText, ...), so a long UI run freed None and crashed. The binding the app
runs on must keep its references, and the app says so plainly when it does not."""

import sys

import pytest
from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QLabel, QMessageBox

from cascade_studio.ui import qt_binding


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: nothing to lose")
def test_void_methods_keep_their_reference_to_none(qapp):
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(500):
        QCoreApplication.processEvents()
        label.setText("x")
    assert before - sys.getrefcount(None) < 50, "this PySide6 loses a reference to None per call: pin another"
    assert qt_binding.none_references_lost() == 0 and qt_binding.binding_problem() is None


def test_a_leaking_binding_is_named_with_its_fix(qtbot, monkeypatch):
    from cascade_studio.ui.app import warn_about_the_binding

    monkeypatch.setattr(qt_binding.sys, "version_info", (3, 11, 7))
    monkeypatch.setattr(qt_binding, "none_references_lost", lambda: qt_binding.CALLS)
    problem = qt_binding.binding_problem()
    assert "PySide6" in problem and "!=6.12.0" in problem and "crash" in problem
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    label = QLabel()
    qtbot.addWidget(label)
    warn_about_the_binding(label)
    assert shown == [problem]
