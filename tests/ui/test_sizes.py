"""Issue 19, every size: at 1024x700 (the smallest size supported) with the demo workspace, no visible
button, check box, label or table header is narrower than its text needs, unless it says the whole text
in a tooltip (elided text)."""

import pytest
from PySide6.QtWidgets import QAbstractButton, QCheckBox, QHeaderView, QLabel, QPushButton, QStyle, QTableView

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from tests.ui.test_tradeoffs_page import collected

SIZE = (1024, 700)


def clipped_widgets(window) -> list[str]:
    out = []
    for w in window.findChildren(QAbstractButton) + window.findChildren(QLabel):
        if not w.isVisible() or w.toolTip() or not w.text().strip():
            continue
        if isinstance(w, (QPushButton, QCheckBox)):
            text = w.fontMetrics().horizontalAdvance(w.text().replace("&", ""))  # the text itself, not a style minimum
            need = text + (8 if isinstance(w, QPushButton) else w.sizeHint().width() - text)
            if w.width() < need:
                out.append(f"{type(w).__name__} {w.text()!r}: {w.width()} < {need}")
        elif isinstance(w, QLabel) and w.textFormat() != 1 and not w.pixmap().width():
            if w.wordWrap():
                need_h = w.heightForWidth(w.width())
                if need_h > 0 and w.height() < need_h - 2:
                    out.append(f"QLabel {w.text()[:40]!r}: height {w.height()} < {need_h}")
            else:
                need = w.sizeHint().width()
                if w.width() < need - 1:
                    out.append(f"QLabel {w.text()[:40]!r}: {w.width()} < {need}")
    for view in window.findChildren(QTableView):
        if not view.isVisible():
            continue
        header: QHeaderView = view.horizontalHeader()
        if header.isHidden():
            continue
        model = view.model()
        for i in range(header.count()):
            if header.isSectionHidden(i):
                continue
            text = model.headerData(i, header.orientation())
            tip = model.headerData(i, header.orientation(), 3)  # ToolTipRole
            margin = header.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
            need = header.fontMetrics().horizontalAdvance(str(text)) + 2 * margin if text else 0
            if text and not tip and header.sectionSize(i) < need:
                out.append(f"{view.objectName()} header {text!r}: {header.sectionSize(i)} < {need}")
    return out


@pytest.fixture
def demo_window(qtbot, tmp_path, sandbox_thread):
    collected(tmp_path / "ws", sandbox_thread.base_url, limit=10)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.resize(*SIZE)
    window.show()
    return window


def test_every_page_fits_at_1024x700(qtbot, demo_window):
    problems = {}
    for row in range(demo_window.nav.count()):
        demo_window.nav.setCurrentRow(row)
        qtbot.wait(50)
        found = clipped_widgets(demo_window)
        if demo_window.width() > SIZE[0] or demo_window.height() > SIZE[1]:
            found.append(f"the window grew to {demo_window.width()}x{demo_window.height()}")
        if found:
            problems[demo_window.nav.item(row).text()] = found
    assert not problems, "\n".join(f"{page}: {p}" for page, ps in problems.items() for p in ps)
