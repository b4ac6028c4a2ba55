from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"


def test_import_filter_search_and_detail(qtbot, tmp_path):
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    page = window.tasks_page
    assert page.model.total == 0
    assert page.import_file(BFCL / "BFCL_v4_simple_python.json")
    assert page.import_file(BFCL / "BFCL_v4_irrelevance.json")
    assert page.model.total == 140 and "140 tasks" in page.count_label.text()
    assert page.model.rowCount() == 140
    page.category_combo.setCurrentIndex(page.category_combo.findData("irrelevance"))
    assert page.model.total == 40
    assert page.model.index(0, 4).data() == "no call"
    page.search_edit.setText("triangle")
    qtbot.waitUntil(lambda: page.model.total < 40)
    page.category_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: all("triangle" in (page.model.index(r, 3).data() or "").lower()
                                or "triangle" in page.model.index(r, 2).data().lower()
                                for r in range(page.model.rowCount())))
    page.table.selectRow(0)
    assert "Tools" in page.detail.toPlainText()


def test_lazy_fetch_and_bad_file(qtbot, tmp_path):
    import json

    rows = [{"id": f"t{i}", "category": "c", "messages": [{"role": "user", "content": f"q{i}"}], "tools": []}
            for i in range(1300)]
    f = tmp_path / "many.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    page = window.tasks_page
    assert page.import_file(f)
    assert page.model.total == 1300 and page.model.rowCount() == 500  # fetched lazily
    while page.model.canFetchMore(page.model.index(-1, -1)):
        page.model.fetchMore(page.model.index(-1, -1))
    assert page.model.rowCount() == 1300
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}')
    assert not page.import_file(bad)
    box = page.findChild(QMessageBox, "errorDialog")
    assert box is not None and "bad.jsonl:1" in box.text() and "Nothing was imported" in box.text()
    assert page.model.total == 1300
