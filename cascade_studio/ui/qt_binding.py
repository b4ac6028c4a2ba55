"""Is the Qt binding sound? PySide6 6.12.0 (shiboken6 6.12.0) returns None from every wrapped
method that returns void (`QLabel.setText`, `QCoreApplication.processEvents`, ...) without taking a
reference to it: each call drops one of None's references. On Python 3.11 None is not immortal, so
after enough calls its count reaches zero and the interpreter aborts ("deallocating None"), or
memory it freed is reused and it crashes later in whatever touches it: the rare native crash of
long UI test runs (issue 19). 6.11.3 is sound; the dependency excludes 6.12.0, and the app warns
when it runs on a binding that still leaks (an installation that forced it)."""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QObject

CALLS = 200


def none_references_lost() -> int:
    """How many references to None CALLS calls of a void method lose (0 on a sound binding)."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        probe.setObjectName("probe")
    lost = before - sys.getrefcount(None)
    return max(lost, 0)


def binding_problem() -> str | None:
    """A sentence naming the problem and the fix, or None when the binding keeps its references."""
    if sys.version_info >= (3, 12):  # None is immortal: a lost reference cannot free it
        return None
    if none_references_lost() < CALLS // 2:
        return None
    return (f"PySide6 {PySide6.__version__} loses a reference to None on every call of a Qt method that returns "
            f"nothing; on Python {sys.version_info[0]}.{sys.version_info[1]} Cascade Studio will crash after a "
            "while. Install a sound version: pip install 'PySide6-Essentials>=6.6,!=6.12.0' (6.11.3 is tested).")
