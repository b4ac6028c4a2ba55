"""Issue 19, the tier editor: typing a catalog model id fills unset prices, the issues banner follows the
fixes, unsaved tiers are marked in the list, and the window title shows unsaved changes through [*]."""

from PySide6.QtCore import Qt

from tests.ui.test_tiers_page import make_window, two_tiers


def test_typing_a_known_model_fills_unset_prices_and_keeps_typed_ones(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, two_tiers())
    page = window.tiers_page
    page.add_button.click()  # a new tier: no model, prices 0
    editor = page.editor
    qtbot.keyClicks(editor.model_edit, "gpt-4.1")  # no Enter, no "Fill from catalog"
    assert editor.input_price.text() == "2.00" and editor.output_price.text() == "8.00"
    qtbot.keyClicks(editor.model_edit, "-mini")  # the prices follow the id while they are the catalog's
    assert editor.input_price.text() == "0.40"
    editor.input_price.setText("0.33")
    editor.input_price.textEdited.emit("0.33")  # typed by hand: never overwritten
    editor.model_edit.setText("")
    qtbot.keyClicks(editor.model_edit, "gpt-4.1")
    assert editor.input_price.text() == "0.33"
    page.revert()


def test_issue_banner_goes_when_fixed_and_unsaved_tiers_are_marked(qtbot, tmp_path, qtlog):
    window = make_window(qtbot, tmp_path, two_tiers())
    page = window.tiers_page
    editor = page.editor
    assert window.windowTitle().count("[*]") == 1 and not window.isWindowModified()
    page.list.setCurrentRow(0)
    editor.model_edit.setText("")
    editor.model_edit.textEdited.emit("")
    assert not page.save()
    assert editor.issues_label.isVisible() and "Model id" in editor.issues_label.text()
    qtbot.keyClicks(editor.model_edit, "gpt-4.1-nano")
    assert not editor.issues_label.isVisible()
    assert "unsaved" in page.list.item(0).text() and "unsaved" not in page.list.item(1).text()
    assert window.isWindowModified()
    page.list.setCurrentRow(1)  # switching keeps the draft, and says so on its item
    assert "unsaved" in page.list.item(0).text() and page.list.item(0).toolTip()
    qtbot.keyClick(page, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert "unsaved" not in page.list.item(0).text() and not window.isWindowModified()
    assert not [r for r in qtlog.records if "[*]" in r.message]
