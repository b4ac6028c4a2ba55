"""The pages' shared look: label styles, the status line, tier colours."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

WARN_STYLE = "QLabel { background: #fff4ce; color: #5c4400; border: 1px solid #e0c36c; border-radius: 4px; padding: 6px; }"
ERROR_STYLE = "QLabel { background: #fde7e9; color: #a4262c; border: 1px solid #f1bbbc; border-radius: 4px; padding: 6px; }"
OK_STYLE = "QLabel { background: #dff6dd; color: #0b5a08; border: 1px solid #9fd89f; border-radius: 4px; padding: 6px; }"
INFO_STYLE = "QLabel { color: palette(mid); }"
INSECURE_STYLE = "QCheckBox { color: #a4262c; font-weight: bold; }"
BAD_FIELD = "border: 1px solid #d13438; background: #fff6f6;"
TIER_COLORS = ["#7fd1ff", "#3fa7f5", "#f5a623"]  # cheapest tier first, the teacher last
PALETTE = ["#3fa7f5", "#f5a623", "#7ed321", "#bd10e0"]  # one series each (curves over time)


def show_status(label: QLabel, text: str, error: bool = False) -> None:
    """The pages' one-line status: plain, or styled as an error."""
    label.setText(text)
    label.setStyleSheet(ERROR_STYLE if error else INFO_STYLE)


def styled_label(object_name: str = "", style: str = INFO_STYLE, *, wrap: bool = True,
                 hidden: bool = False) -> QLabel:
    """A label with one of the styles above (a page's status line, a note, a warning)."""
    label = QLabel(objectName=object_name)
    label.setWordWrap(wrap)
    label.setStyleSheet(style)
    if hidden:
        label.hide()
    return label


def show_run_bar(bar, p) -> None:
    """A run's progress bar counts finished tasks; failures are named in its text and turn its chunk
    red (all failed) or amber (some failed), so a run that failed never looks like a full, healthy bar."""
    bar.setMaximum(max(p.total, 1))
    bar.setValue(min(p.done + p.failed, p.total))
    if p.failed:
        bar.setFormat(f"{p.done:,} ok, {p.failed:,} failed / {p.total:,}")
        color = "#d13438" if p.done == 0 else "#e8a33d"
        bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {color}; }}")
    else:
        bar.setFormat("%v / %m")
        bar.setStyleSheet("")


class WrappingLabel(QLabel):
    """A word-wrapped label that asks for the height its text needs at its width. A layout inside a
    scroll area sizes its rows from size hints, which know nothing of wrapping, so a long note would
    otherwise be cut to one line."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setWordWrap(True)

    def _fit(self) -> None:
        need = self.heightForWidth(self.width()) if self.width() > 0 else -1
        if need > 0 and self.minimumHeight() != need:
            self.setMinimumHeight(need)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

