"""pytest-qt: edit tiers in the real window, save, reopen, and see the values."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QMessageBox

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until


def make_window(qtbot, ws_dir: Path, tiers=None, secrets=None) -> MainWindow:
    if tiers is not None:
        with Workspace.open(ws_dir) as ws:
            TierRepository(ws).replace_all(tiers)
    window = MainWindow(secrets or SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    assert window.open_workspace(ws_dir)
    window.show()
    return window


def two_tiers(url="https://api.openai.com/v1", provider=Provider.OPENAI):
    return [Tier(tier=1, name="Student", model="gpt-4o-mini", base_url=url, provider=provider,
                 input_price=Decimal("0.15"), output_price=Decimal("0.6")),
            Tier(tier=2, name="Teacher", model="gpt-4o", base_url=url, provider=provider,
                 input_price=Decimal("2.5"), output_price=Decimal("10"))]


def test_edit_save_reopen(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, two_tiers())
    page = window.tiers_page
    page.list.setCurrentRow(0)
    editor = page.editor
    editor.name_edit.clear()
    qtbot.keyClicks(editor.name_edit, "Nano student")
    editor.model_edit.setText("")
    qtbot.keyClicks(editor.model_edit, "gpt-4.1-nano")
    editor.input_price.clear()
    editor.output_price.clear()
    editor.model_edit.editingFinished.emit()  # pre-fills prices from the catalog
    assert editor.input_price.text() == "0.10" and editor.output_price.text() == "0.40"
    editor.threshold_spin.setValue(0.35)
    editor.concurrency_spin.setValue(16)
    assert page.dirty and window.isWindowModified() and "[*]" in window.windowTitle()
    qtbot.keyClick(page, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not page.dirty
    window.close()

    again = make_window(qtbot, tmp_path)
    again.tiers_page.list.setCurrentRow(0)
    ed = again.tiers_page.editor
    assert ed.name_edit.text() == "Nano student" and ed.model_edit.text() == "gpt-4.1-nano"
    assert ed.threshold_spin.value() == 0.35 and ed.concurrency_spin.value() == 16
    assert ed.input_price.text() == "0.10"
    assert "retired" in ed.deprecation_label.text() and ed.deprecation_label.isVisible()


def test_invalid_values_are_shown_and_not_saved(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, two_tiers())
    page = window.tiers_page
    editor = page.editor
    editor.input_price.setText("-2")
    editor.input_price.textEdited.emit("-2")
    editor.base_url_edit.setText("localhost:8000")
    editor.base_url_edit.textEdited.emit("localhost:8000")
    assert not page.save()
    text = editor.issues_label.text()
    assert editor.issues_label.isVisible()
    assert "Input price is negative" in text and "Base URL" in text and "http://" in text
    assert "border" in editor.input_price.styleSheet()
    with Workspace.open(tmp_path) as ws:
        assert TierRepository(ws).get(2).input_price == Decimal("2.5")
    page.revert()
    assert editor.input_price.text() == "2.50" and not page.dirty


def test_deprecation_warning_and_teacher_role(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, two_tiers())
    page = window.tiers_page
    assert page.list.currentRow() == 1  # the teacher is shown first
    assert "Teacher" in page.list.item(1).text()
    editor = page.editor
    assert "retires on 2027-01-14" in editor.deprecation_label.text()
    assert not editor.threshold_spin.isEnabled()  # the teacher never escalates
    editor.model_edit.setText("gpt-5.2")
    assert not editor.deprecation_label.isVisible()


def test_add_and_remove_tiers(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, two_tiers())
    page = window.tiers_page
    page.add_button.click()
    assert page.list.count() == 3 and not page.add_button.isEnabled()
    page.editor.model_edit.setText("gpt-4.1")
    page.editor.model_edit.textEdited.emit("gpt-4.1")
    page.editor.fill_button.click()
    assert page.editor.output_price.text() == "8.00"
    assert page.save()
    with Workspace.open(tmp_path) as ws:
        assert [t.model for t in TierRepository(ws).list()] == ["gpt-4o-mini", "gpt-4o", "gpt-4.1"]
    page.remove_button.click()
    assert page.save()
    with Workspace.open(tmp_path) as ws:
        assert len(TierRepository(ws).list()) == 2


def test_connection_test_button(qtbot, tmp_path, qloop, sandbox_thread):
    window = make_window(qtbot, tmp_path, two_tiers(sandbox_thread.base_url, Provider.SANDBOX))
    page = window.tiers_page
    assert "simulated" in page.list.item(0).text()
    assert page.editor.simulated_label.isVisible()
    qtbot.waitUntil(lambda: "not needed" in page.key_label.text())
    page.test_button.click()
    run_until(qloop, lambda: page.test_result.text().startswith(("✔", "✖")))
    assert page.test_result.text().startswith("✔") and "answered in" in page.test_result.text()
    page.editor.model_edit.setText("gpt-unknown")
    page.test_button.click()
    run_until(qloop, lambda: "404" in page.test_result.text())
    assert page.test_button.isEnabled()


def test_set_key_dialog_stores_in_keyring(qtbot, tmp_path, monkeypatch, memory_keyring):
    window = make_window(qtbot, tmp_path, two_tiers("http://localhost:8000/v1", Provider.COMPATIBLE))
    page = window.tiers_page
    qtbot.waitUntil(lambda: "No API key" in page.key_label.text())

    def fake_exec(dialog):
        dialog.key_edit.setText("sk-typed-in-dialog-123")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr("cascade_studio.ui.tiers_page.KeyDialog.exec", fake_exec)
    page.set_key_button.click()
    qtbot.waitUntil(lambda: "OS keyring" in page.key_label.text())
    assert "sk-typed-in-dialog-123" in memory_keyring.store.values()


def test_unsaved_changes_prompt_on_close(qtbot, tmp_path, monkeypatch):
    window = make_window(qtbot, tmp_path, two_tiers())
    window.tiers_page.editor.name_edit.setText("Changed")
    window.tiers_page.editor.name_edit.textEdited.emit("Changed")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    window.close()
    assert window.isVisible()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Save)
    window.close()
    assert not window.isVisible()
    with Workspace.open(tmp_path) as ws:
        assert TierRepository(ws).get(2).name == "Changed"


def test_plain_http_to_another_machine_needs_the_red_checkbox(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, two_tiers("http://localhost:8000/v1", Provider.COMPATIBLE))
    page, editor = window.tiers_page, window.tiers_page.editor
    page.list.setCurrentRow(0)
    assert not editor.insecure_check.isVisible()
    editor.base_url_edit.setText("http://192.168.1.20:8000/v1")
    editor.base_url_edit.textEdited.emit("http://192.168.1.20:8000/v1")
    assert editor.insecure_check.isVisible() and "192.168.1.20:8000" in editor.insecure_check.text()
    assert not page.save()
    assert "clear text" in editor.issues_label.text()
    editor.insecure_check.setChecked(True)
    assert "a4262c" in editor.insecure_check.styleSheet()  # shown in red while allowed
    assert page.save()
    with Workspace.open(tmp_path) as ws:
        assert TierRepository(ws).get(1).allow_insecure
    window.close()
    window = make_window(qtbot, tmp_path)
    window.tiers_page.list.setCurrentRow(0)
    editor = window.tiers_page.editor
    assert editor.insecure_check.isChecked() and editor.insecure_check.isVisible()
    editor.insecure_check.setChecked(False)
    editor.base_url_edit.setText("http://localhost:8000/v1")  # loopback: no checkbox needed
    assert not editor.insecure_check.isVisible()
    assert window.tiers_page.save()


def test_import_asks_before_keeping_a_files_key_settings(qtbot, tmp_path, monkeypatch):
    import json

    window = make_window(qtbot, tmp_path / "ws", two_tiers())
    source = tmp_path / "tiers.json"
    tiers = [t.to_json() for t in two_tiers("http://127.0.0.1:9/v1", Provider.COMPATIBLE)]
    tiers[0]["api_key_env"] = "AWS_SECRET_ACCESS_KEY"
    source.write_text(json.dumps({"tiers": tiers}))
    asked = []
    shown = []
    moved_asked = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a: shown.append(a[2]))
    for answer, expected in ((None, "gpt-4o-mini"), (False, ""), (True, "AWS_SECRET_ACCESS_KEY")):
        monkeypatch.setattr(window, "confirm_key_settings", lambda s, a=answer: asked.append(s) or a)
        monkeypatch.setattr(window, "confirm_new_origins", lambda moved: moved_asked.append(moved) or False)
        window.import_tiers_dialog(str(source))
        with Workspace.open(tmp_path / "ws") as ws:
            t1 = TierRepository(ws).get(1)
        if answer is None:  # cancelled: nothing changed
            assert t1.base_url == "https://api.openai.com/v1"
        else:
            assert t1.api_key_env == expected and t1.base_url == "http://127.0.0.1:9/v1"
    assert "AWS_SECRET_ACCESS_KEY" in asked[0][0].describe() and "127.0.0.1:9" in asked[0][0].describe()
    assert "Dropped" in shown[0] and "Kept" in shown[1]
    assert [c.tier for c in moved_asked[0]] == [1, 2]  # asked once: the second import moved nothing
    assert len(moved_asked) == 1 and "withheld" in shown[0]


def test_logprobs_settings_and_learned_support_round_trip(qtbot, tmp_path):
    from cascade_studio.core.tiers import LogprobsMode, WithoutLogprobs

    tiers = two_tiers("http://localhost:8000/v1", Provider.COMPATIBLE)
    tiers[0] = tiers[0].replace(logprobs_unsupported=True)
    window = make_window(qtbot, tmp_path, tiers)
    page, editor = window.tiers_page, window.tiers_page.editor
    page.list.setCurrentRow(0)
    assert editor.learned_label.isVisible() and "failed when asked for logprobs" in editor.learned_label.text()
    editor.top_logprobs_spin.setValue(20)
    editor.without_combo.setCurrentIndex(editor.without_combo.findData("answer"))
    editor.no_key_check.setChecked(True)
    editor.ask_again_button.click()
    assert not editor.learned_label.isVisible()
    assert page.save()
    with Workspace.open(tmp_path) as ws:
        t1 = TierRepository(ws).get(1)
    assert (t1.top_logprobs, t1.without_logprobs, t1.no_key, t1.logprobs_unsupported, t1.logprobs) == \
        (20, WithoutLogprobs.ANSWER, True, False, LogprobsMode.AUTO)


def test_import_withholds_keys_from_moved_tiers_until_confirmed(qtbot, tmp_path, monkeypatch):
    """Issue 33: a tier file that moves a tier to another host asks before its key variables go there."""
    import json

    window = make_window(qtbot, tmp_path / "ws", two_tiers())
    source = tmp_path / "tiers.json"
    source.write_text(json.dumps({"tiers": [t.to_json() for t in two_tiers("https://evil.example/v1",
                                                                           Provider.COMPATIBLE)]}))
    monkeypatch.setattr(QMessageBox, "information", lambda *a: None)
    for answer, pending in ((None, None), (False, True), (True, False)):
        monkeypatch.setattr(window, "confirm_new_origins", lambda moved, a=answer: a)
        with Workspace.open(tmp_path / "ws") as ws:
            from cascade_studio.services.tier_service import save_tiers
            save_tiers(ws, two_tiers())
        window.import_tiers_dialog(str(source))
        with Workspace.open(tmp_path / "ws") as ws:
            t1 = TierRepository(ws).get(1)
        if answer is None:
            assert t1.base_url == "https://api.openai.com/v1"
        else:
            assert t1.base_url == "https://evil.example/v1" and t1.key_origin_pending is pending
    # the editor keeps the pending mark when the address is left as imported
    with Workspace.open(tmp_path / "ws") as ws:
        save_tiers(ws, [t.replace(key_origin_pending=True) if t.tier == 1 else t for t in TierRepository(ws).list()])
    window.tiers_page.set_workspace(window.ws, window.catalog)
    editor = window.tiers_page.editor
    editor.set_tier(TierRepository(window.ws).get(1), is_teacher=False)
    assert editor.read()[0].key_origin_pending and editor.confirm_origin_button.isVisibleTo(editor)
    editor.base_url_edit.setText("https://api.openai.com/v1")
    assert not editor.read()[0].key_origin_pending
    editor.set_tier(TierRepository(window.ws).get(1), is_teacher=False)
    editor.confirm_origin_button.click()  # or confirm the imported host as it is
    assert not editor.read()[0].key_origin_pending and not editor.confirm_origin_button.isVisibleTo(editor)
