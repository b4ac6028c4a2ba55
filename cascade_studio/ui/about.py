"""About box: version, log file, licenses and data attributions."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from cascade_studio import __version__
from cascade_studio.services.paths import log_file, resources_dir


def about_html(keyring_message: str = "") -> str:
    notices = ""
    path = resources_dir() / "THIRD_PARTY_NOTICES.md"
    if path.exists():
        notices = path.read_text(encoding="utf-8")
    body = "".join(f"<p>{_escape(p)}</p>" for p in notices.split("\n\n") if p.strip())
    return (
        f"<h2>Cascade Studio {__version__}</h2>"
        "<p>Distil an expensive teacher LLM agent into cheaper students and serve them as a cascade.</p>"
        f"<p><b>Log file:</b> {_escape(str(log_file()))}<br>"
        f"<b>Keyring:</b> {_escape(keyring_message)}<br>"
        f"<b>Runtime:</b> Python {platform.python_version()}, PySide6 {pyside_version} (Qt, LGPL-3.0)</p>"
        f"<h3>Licenses and data attributions</h3>{body}"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


class AboutDialog(QDialog):
    def __init__(self, keyring_message: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Cascade Studio")
        self.browser = QTextBrowser(objectName="aboutText")
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(about_html(keyring_message))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(640, 520)
