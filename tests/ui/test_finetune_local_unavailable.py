"""Without the `local` extra the Fine-tuning page lists the local backend as not installed, with the
install command, and never starts it."""

import importlib.util

from cascade_studio.services.secrets import SecretStore
from cascade_studio.ui.finetune_page import FineTunePage


def test_local_backend_listed_as_not_installed(qtbot, monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    page = FineTunePage(SecretStore())
    qtbot.addWidget(page)
    i = page.backend.findData("local")
    assert page.backend.itemText(i).endswith("— not installed")
    page.backend.setCurrentIndex(i)
    assert "pip install 'cascade-studio[local]'" in page.backend_note.text()
    assert not page.start_button.isEnabled()
    page.backend.setCurrentIndex(page.backend.findData("openai"))
    assert page.start_button.isEnabled() and page.remote_box.isVisibleTo(page)
