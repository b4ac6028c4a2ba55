"""Issue 19: the demo's first start does not warn that its sandbox tiers' requests will fail (the sandbox
serves every model it simulates); the same model on a real endpoint still gets the warning."""

import datetime as dt

from PySide6.QtWidgets import QLabel

from cascade_studio.core.tiers import Provider
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow


def test_demo_tiers_do_not_say_requests_will_fail(qtbot, tmp_path, sandbox_thread):
    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 28))
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    page = window.tiers_page
    editor = page.editor
    for row in range(page.list.count()):
        page.list.setCurrentRow(row)
        shown = [w.text() for w in window.findChildren(QLabel) if w.isVisible()]
        assert not any("will fail" in t or "⚠" in t for t in shown), shown
        assert not editor.deprecation_label.isVisible()
    page.list.setCurrentRow(0)  # tier 1: gpt-4.1-nano, retired on OpenAI on 2026-10-23
    assert editor.model_edit.text() == "gpt-4.1-nano"
    assert "On OpenAI this model was retired on 2026-10-23; the sandbox still simulates it" in editor.catalog_label.text()
    # the same model on OpenAI itself: the warning is real
    editor.provider_combo.setCurrentIndex(editor.provider_combo.findData(Provider.OPENAI.value))
    assert editor.deprecation_label.isVisible() and "requests will fail" in editor.deprecation_label.text()
    page.revert()  # no "save changes?" question when the window closes
