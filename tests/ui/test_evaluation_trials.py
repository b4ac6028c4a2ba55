"""Issue 29 on the Evaluation page: a workspace with several trials per task and side (a benchmark's
results file imported as transcripts, 5 tasks x 4 trials, two models) shows each side's success per
trial and pass^k, the figures of `evaluate --mode episodes` and of the benchmark's own count by hand."""

import datetime as dt
import json

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from tests.agent.test_benchmark_results import DATA, converter, published
from tests.agent.test_episodes import cli
from tests.ui.conftest import run_until


def test_pass_k_per_side_on_the_evaluation_page(qtbot, tmp_path, capsys, qloop):
    ws = tmp_path / "ws"
    tool = converter()
    figures = {}
    for tier, model in ((1, "gpt-4.1-mini"), (2, "gpt-4.1")):
        assert cli(capsys, ws, "tiers", "set", str(tier), "--model", model, "--base-url", "http://127.0.0.1:9/v1",
                   "--provider", "sandbox")[0] == 0
        figures[tier] = published(json.loads((DATA / f"airline_{model}.json").read_text()))
        out = tmp_path / f"{model}.jsonl"
        assert tool.main([str(DATA / f"airline_{model}.json"), str(out)]) == 0
        assert cli(capsys, ws, "trajectories", "import", str(out), "--tier", str(tier), "--format", "transcripts",
                   "--json")[0] == 0
    code, cli_text, err = cli(capsys, ws, "evaluate", "--student", "1", "--teacher", "2", "--mode", "episodes",
                              "--all-tasks")
    assert code == 0, err
    trial_lines = [line.strip() for line in cli_text.splitlines() if line.strip().startswith("trials:")]
    assert len(trial_lines) == 2  # one per side: several trials each

    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(ws)
    window.show()
    window.nav.setCurrentRow(4)
    page = window.evaluation_page
    page.teacher_combo.setCurrentIndex(page.teacher_combo.findData(2))
    page.student_combo.setCurrentIndex(page.student_combo.findData(1))
    page.collect_check.setChecked(False)  # recorded episodes only: nothing is asked of any model
    page.run_button.click()
    run_until(qloop, lambda: page.worker is None, timeout=90)
    status = page.status.text()
    assert "Episodes on its own:" in status, status
    # the CLI's trial lines, word for word, on the page: success per trial and pass^1..4 per side
    for line in trial_lines:
        assert line in status, (line, status)
    teacher_at, student_at = status.index("Episodes, teacher:"), status.index("Episodes, student:")
    for tier, (start, end) in ((2, (teacher_at, student_at)), (1, (student_at, len(status)))):
        side = status[start:end]
        for k, v in figures[tier]["pass_k"].items():  # the benchmark's own pass^k, counted by hand
            assert f"pass^{k} {float(v):.0%}" in side, (tier, k, side)
    assert "paired with the teacher's trial of the same number: 20" in status
