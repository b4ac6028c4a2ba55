"""Evaluation page: evaluate (collecting what is missing), drill down, calibrate, apply, export, drift."""

import datetime as dt
import json

from PySide6.QtWidgets import QFileDialog

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until


def test_evaluate_drill_down_calibrate_export(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch):
    from cascade_studio.services.demo import prepare_demo

    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    window.nav.setCurrentRow(4)
    page = window.evaluation_page
    assert page.plot is not None  # created when the page is shown
    page.student_combo.setCurrentIndex(page.student_combo.findData(1))
    page.category_combo.setCurrentIndex(page.category_combo.findData("multiple"))
    page.limit_spin.setValue(20)
    page.run_button.click()
    run_until(qloop, lambda: page.report is not None, timeout=60)
    assert "agrees with the teacher" in page.status.text()
    assert page.category_table.rowCount() == 2  # overall + multiple
    assert page.category_table.item(1, 0).text() == "multiple"
    assert page.task_table.rowCount() == 20
    first = page.task_table.item(0, 1).text()
    assert first in ("NO", "yes")
    page.task_table.selectRow(0)
    assert "Teacher (tier 3)" in page.pair_view.toPlainText() and "Student (tier 1)" in page.pair_view.toPlainText()

    page.rate_spin.setValue(0.25)
    page.by_rate.click()
    assert "escalates <b>25%</b>" in page.cal_result.text()
    page.apply_button.click()
    with Workspace.open(tmp_path) as ws:
        assert TierRepository(ws).get(1).threshold == round(page._calibration[1].threshold, 4)
    page.quality_spin.setValue(1.0)
    page.by_quality.click()
    assert "expected quality" in page.cal_result.text()

    target = tmp_path / "policy.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    page.export_button.click()
    doc = json.loads(target.read_text())
    assert doc["tiers"][0]["calibration"]["tasks"] == 20 and (tmp_path / "policy_apply.py").exists()

    # drift: a second evaluation adds a point; an alert level above it raises the warning
    page.run_button.click()
    run_until(qloop, lambda: page.worker is None, timeout=60)
    curve = page._curves[1]
    assert len(curve.getData()[0]) == 2
    page.alert_spin.setValue(1.0)
    assert page.drift_warning.isVisible() and "Re-distil" in page.drift_warning.text()


def test_all_students_at_once(qtbot, tmp_path, qloop, sandbox_thread):
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.store.evaluations import history

    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    page = window.evaluation_page
    page.student_combo.setCurrentIndex(page.student_combo.findData(-1))
    page.limit_spin.setValue(10)
    page.run_button.click()
    run_until(qloop, lambda: page.worker is None and page.report is not None, timeout=60)
    assert "tier 1" in page.status.text() and "tier 2" in page.status.text()
    assert {r["student_tier"] for r in history(window.ws)} == {1, 2}


def test_history_names_generations_and_compares_old_with_new(qtbot, tmp_path, qloop, sandbox_thread):
    from cascade_studio.core.tiers import generation_id
    from cascade_studio.services.demo import prepare_demo

    prepare_demo(tmp_path, sandbox_thread.base_url)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    window.nav.setCurrentRow(4)
    page = window.evaluation_page
    history = page.history

    def evaluate_tier1():
        page.student_combo.setCurrentIndex(page.student_combo.findData(1))
        page.category_combo.setCurrentIndex(page.category_combo.findData(None))
        page.limit_spin.setValue(12)
        page.run_button.click()
        run_until(qloop, lambda: page.worker is None, timeout=60)

    evaluate_tier1()
    old = generation_id(TierRepository(window.ws).get(1))
    assert history.table.rowCount() == 1 and history.table.item(0, 2).text() == old
    assert not history.legend.isVisible()  # one series: no legend
    history.compare_button.click()
    run_until(qloop, lambda: history.worker is None, timeout=30)
    assert "one generation only" in history.compare_result.text()

    repo = TierRepository(window.ws)
    repo.save(repo.get(1).replace(model="gpt-4.1-mini"))  # a new generation of the student
    page.set_workspace(window.ws)
    evaluate_tier1()
    new = generation_id(TierRepository(window.ws).get(1))
    assert [history.table.item(r, 2).text() for r in range(2)] == [new, old]  # newest first
    assert "gpt-4.1-mini" in history.table.item(0, 1).text()
    history.compare_button.click()
    run_until(qloop, lambda: history.worker is None, timeout=30)
    text = history.compare_result.text()
    assert f"previous generation {old} (" in text
    assert f"current generation {new} (gpt-4.1-mini)" in text and "on the same 12 tasks" in text
    assert history.comparison.tasks == 12

    page.student_combo.setCurrentIndex(page.student_combo.findData(2))  # a second student: a legend
    page.run_button.click()
    run_until(qloop, lambda: page.worker is None, timeout=60)
    assert history.legend.isVisible() and len(page._curves) == 2
