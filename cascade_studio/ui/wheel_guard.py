"""The mouse wheel scrolls forms; it changes a spin box or a combo box only when that field has the
focus (clicked or tabbed into), so scrolling past a field never edits it by accident."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget


class _WheelGuard(QObject):
    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            event.ignore()  # handed on to the parent: the scroll area scrolls
            return True
        return False


def guard_wheel(root: QWidget) -> None:
    """Every spin box and combo box under `root`: no focus from the wheel, no change by it unfocused."""
    guard = root.findChild(_WheelGuard, "wheelGuard") or _WheelGuard(root, objectName="wheelGuard")
    for field in (*root.findChildren(QAbstractSpinBox), *root.findChildren(QComboBox)):
        field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        field.installEventFilter(guard)
