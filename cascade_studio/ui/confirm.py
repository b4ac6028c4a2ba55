"""Questions before actions that cost: a choice whose default and Esc are Cancel, and a typed
confirmation (in red) before an action that is rarely meant, such as replacing the teacher."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QMessageBox, QVBoxLayout, QWidget

from cascade_studio.ui.style import ERROR_STYLE

CANCEL = "cancel"


def choice_box(parent: QWidget | None, title: str, text: str, choices: list[tuple[str, str]]) -> QMessageBox:
    """A question with one button per (key, label) of `choices` and a Cancel button, which is both
    the default (Enter) and the Esc answer."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("choiceBox")
    for key, label in choices:
        button = box.addButton(label, QMessageBox.ButtonRole.AcceptRole)
        button.setProperty("choice", key)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    cancel.setProperty("choice", CANCEL)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    return box


def ask_choice(parent: QWidget | None, title: str, text: str, choices: list[tuple[str, str]]) -> str:
    """The key of the button pressed; CANCEL for Cancel, Esc or closing the box."""
    box = choice_box(parent, title, text, choices)
    box.exec()
    clicked = box.clickedButton()
    return (clicked.property("choice") if clicked is not None else None) or CANCEL


class TypedConfirmation(QDialog):
    """Red text and a field: the action's button is enabled only once `phrase` is typed exactly.
    Enter does nothing until then and Esc cancels."""

    def __init__(self, parent: QWidget | None, title: str, text: str, phrase: str, action: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("typedConfirmation")
        self.phrase = phrase
        warning = QLabel(text, objectName="typedWarning")
        warning.setWordWrap(True)
        warning.setStyleSheet(ERROR_STYLE)
        self.field = QLineEdit(objectName="typedPhrase")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.DestructiveRole)
        self.ok.setObjectName("typedConfirm")
        self.ok.setEnabled(False)
        self.ok.setAutoDefault(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        self.ok.clicked.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.field.textChanged.connect(lambda text: self.ok.setEnabled(text.strip() == phrase))
        layout = QVBoxLayout(self)
        layout.addWidget(warning)
        layout.addWidget(QLabel(f"Type <b>{phrase}</b> to confirm:"))
        layout.addWidget(self.field)
        layout.addWidget(self.buttons)

    def confirmed(self) -> bool:
        return self.field.text().strip() == self.phrase


def confirm_typed(parent: QWidget | None, title: str, text: str, phrase: str, action: str) -> bool:
    dialog = TypedConfirmation(parent, title, text, phrase, action)
    return dialog.exec() == QDialog.DialogCode.Accepted and dialog.confirmed()
