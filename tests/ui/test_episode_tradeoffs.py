"""Issue 17: the Trade-offs page's agent-episode tab (the per-step cascade), on the demo's travel desk."""

from __future__ import annotations

import json

from cascade_studio.cli import main
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow


def test_episode_tab_sweeps_and_answers_the_sliders(qtbot, tmp_path, sandbox_thread, capsys):
    ws = tmp_path / "ws"
    prepare_demo(ws, sandbox_thread.base_url)
    for student, mode in (("1", "both"), ("2", "steps")):  # tier 1's free-running episodes: the measured line
        assert main(["-w", str(ws), "evaluate", "--student", student, "--category", "travel-flights", "--mode", mode,
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
    tab.policy.setCurrentIndex(0)

    # issue 27, one truth per figure: every figure of the tab is `whatif --episodes --json`'s, written the tab's way
    tab.sliders[0][0].setValue(60)
    tab.sliders[1][0].setValue(70)
    tab.volume.setValue(250_000)
    shown = tab.recompute()
    capsys.readouterr()
    assert main(["-w", str(ws), "whatif", "--episodes", "--thresholds", "0.6,0.7", "--volume", "250000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("cascade", "teacher_only", "whatif"):
        assert json.loads(json.dumps(shown[key], default=str)) == out[key], key
    c, w = out["cascade"], out["whatif"]
    text = tab.summary.text()
    assert f"<b>{out['episodes']} episodes</b>" in text
    assert f"${c['cost_per_episode_usd']} per episode (teacher only ${out['teacher_only']['cost_per_episode_usd']})" \
        in text
    assert "Steps answered: " + ", ".join(f"tier {k} {v:.0%}" for k, v in c["share_answered"].items()) in text
    assert f"Step agreement {c['step_agreement']:.1%}" in text and f"agreeing {c['episode_agreement']:.1%}" in text
    assert (f"{w['volume_episodes_per_month']:,.0f} episodes a month: ${float(w['monthly_cost_usd']):,.2f}</b> "
            f"(teacher only ${float(w['teacher_only_monthly_cost_usd']):,.2f})") in text
    measured = out["measured_free_running"]
    assert (f"tier {measured['tier']} succeeds on {measured['student_success_rate']:.0%} of {measured['tasks']} "
            f"episodes (teacher {measured['teacher_success_rate']:.0%})") in tab.measured.text()

    # and the Evaluation page's agent sentence is `evaluate --json`'s step agreement and episodes
    from cascade_studio.ui.evaluation_page import _pct

    window.nav.setCurrentRow(4)
    evaluation = window.evaluation_page
    evaluation.student_combo.setCurrentIndex(evaluation.student_combo.findData(1))
    evaluation.category_combo.setCurrentIndex(evaluation.category_combo.findData("travel-flights"))
    evaluation.collect_check.setChecked(False)  # all recorded above: nothing to collect
    evaluation.run_button.click()
    qtbot.waitUntil(lambda: evaluation.worker is None and evaluation.report is not None, timeout=30_000)
    capsys.readouterr()
    assert main(["-w", str(ws), "evaluate", "--student", "1", "--category", "travel-flights", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    steps, episodes = out["step_agreement"], out["episodes"]
    text = evaluation.status.text()
    assert (f"step agreement {_pct(steps['overall']['agreement'])} over {steps['overall']['steps']} teacher-forced "
            f"steps") in text, text
    from cascade_studio.core.episode_eval import episode_lines

    for line in episode_lines(episodes):  # the CLI's words for the episodes, each in the page's sentence
        assert line.strip() in text, (line, text)
    assert json.loads(json.dumps(evaluation.report.agents, default=str))["step_agreement"] == steps
