"""Issue 27: no slip costs the teacher. A student's model into the teacher's tier needs the teacher's
name typed; "Evaluate before switching?" answers Cancel to Enter and Esc; a switch, a threshold and a
removal can be undone (Edit > Undo Tier Change, `tiers undo`); the wheel edits no unfocused field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from cascade_studio.core.finetune import JobState
from cascade_studio.core.tiers import Tier
from cascade_studio.services.finetune.tracker import TeacherTierRefused, use_as_tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui import confirm

FT = "ft:gpt-4o-mini:org::abc123"


def tiers() -> list[Tier]:
    return [Tier(tier=1, model="gpt-4.1-nano", input_price=Decimal("0.1"), output_price=Decimal("0.4"), threshold=0.8),
            Tier(tier=2, model="gpt-4o", input_price=Decimal("2.5"), output_price=Decimal("10"))]


def workspace_with_job(folder) -> Workspace:
    """Tiers 1 (student) and 2 (teacher), and a succeeded fine-tune job: its model may take a tier."""
    ws = Workspace.open(folder)
    TierRepository(ws).replace_all(tiers())
    JobStore(ws).save(JobState("ftjob-1", "succeeded", "gpt-4o-mini", "file-1", fine_tuned_model=FT),
                      backend="openai", base_url="https://api.openai.com/v1", tier=2)
    return ws


@pytest.fixture
def window(qtbot, tmp_path):
    from cascade_studio.ui.main_window import MainWindow

    workspace_with_job(tmp_path / "ws").close()
    w = MainWindow(SecretStore(), AppSettings(tmp_path / "settings.json"), today=dt.date(2026, 11, 27))
    qtbot.addWidget(w)
    assert w.open_workspace(tmp_path / "ws")
    w.resize(1024, 700)
    w.show()
    return w


def finetune(window, tier_no: int):
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    page.jobs_panel.refresh_jobs(select="ftjob-1")
    page.use_tier.setCurrentIndex(page.use_tier.findData(tier_no))
    assert page.use_button.isEnabled()
    return page


def test_the_service_refuses_a_students_model_in_the_teachers_tier(tmp_path):
    with workspace_with_job(tmp_path / "ws") as ws:
        for tier_no in (2, 3):  # the teacher's tier, or a new tier above it
            with pytest.raises(TeacherTierRefused, match="teacher"):
                use_as_tier(ws, "ftjob-1", tier_no)
        assert [t.model for t in TierRepository(ws).list()] == ["gpt-4.1-nano", "gpt-4o"]
        assert use_as_tier(ws, "ftjob-1", 2, replace_teacher=True).model == FT  # said in so many words


def test_use_as_tier_into_the_teacher_needs_the_teachers_name_typed(window, monkeypatch):
    page = finetune(window, 2)
    asked = []
    monkeypatch.setattr(confirm, "confirm_typed", lambda parent, title, text, phrase, action:
                        asked.append((text, phrase)) or False)
    page.use_button.click()
    assert asked and asked[0][1] == "gpt-4o" and "teacher" in asked[0][0]
    assert TierRepository(window.ws).get(2).model == "gpt-4o" and "unchanged" in page.status.text()
    monkeypatch.setattr(confirm, "confirm_typed", lambda *a: True)
    page.use_button.click()
    assert TierRepository(window.ws).get(2).model == FT


def test_the_typed_confirmation_is_red_and_enabled_only_by_the_exact_name(qtbot):
    dialog = confirm.TypedConfirmation(None, "Replace the teacher?", "Tier 2 is the teacher's place.", "gpt-4o",
                                       "Replace the teacher")
    qtbot.addWidget(dialog)
    from PySide6.QtWidgets import QLabel

    assert "#a4262c" in dialog.findChild(QLabel, "typedWarning").styleSheet()
    assert not dialog.ok.isEnabled()
    dialog.field.setText("gpt-4")
    assert not dialog.ok.isEnabled()
    dialog.field.setText("gpt-4o")
    assert dialog.ok.isEnabled() and dialog.confirmed()
    dialog.show()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert dialog.result() == dialog.DialogCode.Rejected


def test_evaluate_before_switching_defaults_to_cancel_and_esc_cancels(qtbot):
    box = confirm.choice_box(None, "Evaluate before switching?", "…",
                             [("evaluate", "Evaluate first"), ("switch", "Switch without evaluating")])
    qtbot.addWidget(box)
    assert box.defaultButton() is box.escapeButton()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    assert [b.text() for b in box.buttons() if b.property("choice") != confirm.CANCEL] == \
        ["Evaluate first", "Switch without evaluating"]
    box.show()
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert box.clickedButton().property("choice") == confirm.CANCEL


def test_use_as_tier_without_a_yes_changes_nothing(window, monkeypatch):
    page = finetune(window, 1)
    page.use_button.click()  # the question is answered Cancel (Enter, Esc): tests/ui/conftest.py
    assert TierRepository(window.ws).get(1).model == "gpt-4.1-nano" and "unchanged" in page.status.text()
    monkeypatch.setattr(confirm, "ask_choice", lambda *a: "switch")
    page.use_button.click()
    assert TierRepository(window.ws).get(1).model == FT


def test_a_switch_a_threshold_and_a_removal_can_be_undone(window, monkeypatch):
    monkeypatch.setattr(confirm, "ask_choice", lambda *a: "switch")
    page = finetune(window, 1)
    page.use_button.click()
    assert TierRepository(window.ws).get(1).model == FT
    undo = window.tier_undo
    undo.update()
    assert undo.undo_action.isEnabled() and f"model {FT} -> gpt-4.1-nano" in undo.undo_action.text()
    undo.undo_action.trigger()
    assert TierRepository(window.ws).get(1).model == "gpt-4.1-nano"
    assert "Tiers put back" in window.statusBar().currentMessage()
    assert page.use_tier.itemText(page.use_tier.findData(1)).endswith("gpt-4.1-nano")  # the page followed

    repo = TierRepository(window.ws)  # a threshold applied (Evaluation, Trade-offs save one tier at a time)
    repo.save(repo.get(1).replace(threshold=0.65))
    undo.update()
    assert "threshold 0.65 -> 0.8" in undo.undo_action.text()
    undo.undo_action.trigger()
    assert repo.get(1).threshold == 0.8

    window.nav.setCurrentRow(0)  # a tier removed on the Tiers page and saved
    tiers_page = window.tiers_page
    tiers_page.remove_top_tier()
    assert tiers_page.save() and [t.tier for t in repo.list()] == [1]
    undo.update()
    undo.undo_action.trigger()
    assert [t.model for t in repo.list()] == ["gpt-4.1-nano", "gpt-4o"]
    assert tiers_page.list.count() == 2  # the Tiers page shows it back

    from cascade_studio.ui.tier_undo import TierHistoryDialog

    dialog = TierHistoryDialog(undo, window)
    assert dialog.table.rowCount() == 6 and "undoes" in dialog.table.item(0, 2).text()
    dialog.table.setCurrentCell(0, 0)  # put the newest undo back: tier 2 removed again
    dialog.put_back.click()
    assert [t.tier for t in repo.list()] == [1] and dialog.table.rowCount() == 7
    dialog.close()


def test_undo_asks_before_dropping_unsaved_tier_edits(window, monkeypatch):
    repo = TierRepository(window.ws)
    repo.save(repo.get(1).replace(threshold=0.5))
    page = window.tiers_page
    page.list.setCurrentRow(0)
    page.editor.concurrency_spin.setValue(3)
    assert page.dirty
    window.tier_undo.undo()  # asked; the safe answer (No) keeps the edits and undoes nothing
    assert page.dirty and repo.get(1).threshold == 0.5
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert window.tier_undo.undo()
    assert not page.dirty and repo.get(1).threshold == 0.8


def test_the_wheel_over_an_unfocused_field_of_the_tier_editor_changes_nothing(window, qtbot):
    page = window.tiers_page
    page.list.setCurrentRow(0)
    editor = page.editor
    spin, combo = editor.concurrency_spin, editor.method_combo
    spin.setValue(16)
    page.revert()
    page.list.setCurrentRow(0)
    before, before_method = spin.value(), combo.currentIndex()
    window.activateWindow()
    page.list.setFocus()

    def wheel(widget, dy=-120):
        centre = QPointF(widget.rect().center())
        event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, dy),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QApplication.sendEvent(widget, event)

    for _ in range(3):
        wheel(spin)
        wheel(combo)
    assert spin.value() == before and combo.currentIndex() == before_method and not page.dirty
    assert not spin.hasFocus() and not combo.hasFocus()
    spin.setFocus()  # a field the user is in: the wheel edits it
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    wheel(spin)
    assert spin.value() != before and page.dirty
