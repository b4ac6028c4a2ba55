"""Issue 17: the Trade-offs page's agent-episode tab (the per-step cascade), on the demo's travel desk."""

from __future__ import annotations

from cascade_studio.cli import main
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow


def test_episode_tab_sweeps_and_answers_the_sliders(qtbot, tmp_path, sandbox_thread, capsys):
    ws = tmp_path / "ws"
    prepare_demo(ws, sandbox_thread.base_url)
    for student in ("1", "2"):
        assert main(["-w", str(ws), "evaluate", "--student", student, "--category", "travel-flights", "--mode", "steps",
                     "--collect", "--no-embeddings"]) == 0
    capsys.readouterr()
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(ws)
    window.show()
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    page.tabs.setCurrentWidget(page.episodes)
    tab = page.episodes
    qtbot.waitUntil(lambda: "episodes</b>" in tab.summary.text() or "✖" in tab.summary.text(), timeout=30000)
    assert "per episode" in tab.summary.text() and "episodes a month" in tab.summary.text()
    assert "estimated from teacher-forced steps" in tab.basis.text().lower()
    xs, _ = tab.curve.getData()
    assert len(xs) == 101 and len(tab.sliders) == 2
    cost_before = tab.point.getData()[0][0]
    tab.sliders[0][0].setValue(0)  # tier 1 always acts: the cheapest point
    tab.sliders[1][0].setValue(0)
    assert tab.point.getData()[0][0] < cost_before
    tab.policy.setCurrentIndex(1)  # "rest" recomputes the sweep
    assert "rest" == tab.policy.currentData() and len(tab.curve.getData()[0]) == 101
