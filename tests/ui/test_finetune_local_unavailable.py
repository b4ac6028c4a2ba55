"""Without the `local` extra the Fine-tuning page lists the local backend as not installed, with the
install command, and never starts it."""

import importlib.util

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow


def test_local_backend_listed_as_not_installed(qtbot, monkeypatch, tmp_path, qloop):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    # the page inside the main window, as the app shows it (pyqtgraph widgets are torn down with it)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.show()
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    i = page.backend.findData("local")
    assert page.backend.itemText(i).endswith("— not installed")
    page.backend.setCurrentIndex(i)
    assert "pip install 'cascade-studio[local]'" in page.backend_note.text()
    assert not page.start_button.isEnabled()
    page.backend.setCurrentIndex(page.backend.findData("openai"))
    assert page.start_button.isEnabled() and page.remote_box.isVisible()
