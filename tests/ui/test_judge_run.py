"""Issue 30 in the GUI: the Evaluation page's judge runs as `evaluate --judge NAME` does, and the
Trade-offs page's quality "judged by NAME" is `whatif --judge NAME`. Each shows the dry run's estimate
and asks first (Cancel sends nothing), and its figures equal the CLI's."""

from __future__ import annotations

import datetime as dt
import json

from cascade_studio.cli import main
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui import confirm
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until
from tests.ui.test_judge_gui import PLAIN
from tests.ui.test_pages_equal_cli import as_json


def plain_workspace(tmp_path, base_url):
    """Two tiers that answered three plain questions (no expected answers: quality is agreement), and
    a simulated reference judge "ref"."""
    ws = tmp_path / "ws"
    with Workspace.open(ws) as w:
        TierRepository(w).replace_all([
            Tier(tier=1, model="gpt-4.1-nano", base_url=base_url, provider=Provider.SANDBOX),
            Tier(tier=2, model="gpt-4o", base_url=base_url, provider=Provider.SANDBOX)])
    tasks = tmp_path / "plain.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"plain-{i}", "category": "plain", "tools": [],
                                         "messages": [{"role": "user", "content": p}]}) + "\n"
                             for i, p in enumerate(PLAIN)))
    for args in (["tasks", "import", str(tasks)], ["collect", "--tier", "1"], ["collect", "--tier", "2"],
                 ["judge", "add", "ref", "--tier", "2", "--model", "judge-sim-0"]):
        assert main(["-w", str(ws), *args]) == 0
    return ws


def test_evaluate_with_a_judge_asks_then_equals_the_cli(qtbot, tmp_path, qloop, sandbox_thread, capsys,
                                                        monkeypatch):
    ws = plain_workspace(tmp_path, sandbox_thread.base_url)
    capsys.readouterr()
    assert main(["-w", str(ws), "evaluate", "--student", "1", "--judge", "ref", "--dry-run", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)["judge_totals"]
    assert estimate["estimate"] and estimate["requests"] == len(PLAIN)

    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(ws)
    page = window.evaluation_page
    assert page.judge_combo.currentData() == ""  # no judge unless chosen
    page.judge_combo.setCurrentIndex(page.judge_combo.findData("ref"))
    page.collect_check.setChecked(False)
    asked = []

    def cancel(parent, title, text, choices):
        asked.append(text)
        return confirm.CANCEL

    monkeypatch.setattr(confirm, "ask_choice", cancel)
    page.run_evaluation()
    run_until(qloop, lambda: page.worker is None and asked)
    assert f"would cost about ${estimate['cost_usd']}: {estimate['requests']} requests to send" in asked[0]
    assert "nothing was sent" in page.status.text()
    with Workspace.open(ws) as w:  # Cancel judged nothing and recorded no evaluation
        assert w.conn.execute("SELECT COUNT(*) FROM judge_verdicts").fetchone()[0] == 0

    monkeypatch.setattr(confirm, "ask_choice", lambda *a, **k: "judge")
    page.run_evaluation()
    run_until(qloop, lambda: page.worker is None and page.report is not None)
    judged = page.report.judged
    assert judged["requests"] == len(PLAIN) and not judged["estimate"]
    capsys.readouterr()
    assert main(["-w", str(ws), "evaluate", "--student", "1", "--judge", "ref", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["judged"]
    assert cli["reused"] == len(PLAIN) and cli["requests"] == 0  # the page's verdicts, stored and not paid twice
    for key in ("judge", "template_version", "answer_agreement", "text_tasks", "judged_tasks", "not_judged",
                "unparseable", "failed", "basis", "text_match_on_judged_tasks", "agreement_mixed"):
        assert judged[key] == cli[key], key
    text = page.status.text()
    assert f"Answer agreement by {cli['basis']}" in text
    assert "template" in text and "unparseable" in text and "judge ref" in text


def test_tradeoffs_quality_judged_equals_whatif_judge(qtbot, tmp_path, qloop, sandbox_thread, capsys, monkeypatch):
    ws = plain_workspace(tmp_path, sandbox_thread.base_url)
    capsys.readouterr()
    assert main(["-w", str(ws), "whatif", "--judge", "ref", "--dry-run", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)["quality_judge"]
    assert estimate["estimate"] and estimate["requests"] == len(PLAIN)
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(ws)
    window.show()
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    assert page.wait_loaded() and page.outcomes.quality_basis == "agreement"
    asked = []

    def cancel(parent, title, text, choices):
        asked.append(text)
        return confirm.CANCEL

    monkeypatch.setattr(confirm, "ask_choice", cancel)
    page.quality_combo.setCurrentIndex(page.quality_combo.findData("ref"))
    assert page.wait_loaded()
    assert f"would cost about ${estimate['cost_usd']}: {estimate['requests']} requests to send" in asked[0]
    assert page.outcomes.quality_basis == "agreement" and page.quality_combo.currentData() == ""
    assert "nothing was sent" in page.status.text()

    monkeypatch.setattr(confirm, "ask_choice", lambda *a, **k: "judge")
    page.quality_combo.setCurrentIndex(page.quality_combo.findData("ref"))
    assert page.wait_loaded()
    assert page.outcomes.quality_basis == "judged" and page.quality_judge["requests"] == len(PLAIN)
    page.update_whatif()
    args = page.cli_arguments()
    assert args[-2:] == ["--judge", "ref"]
    capsys.readouterr()
    assert main(["-w", str(ws), *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quality_basis"] == "judged" and out["quality_judge"]["reused"] == len(PLAIN)
    assert as_json(page.figures) == out["tiers"] and as_json(page.report["whatif"]) == out["whatif"]
    assert as_json(page.report["cascade"]) == out["cascade"]
    qj = out["quality_judge"]
    assert page.quality_judge["tiers"] == qj["tiers"] and page.quality_judge["basis"] == qj["basis"]
    assert f"Judged by {qj['basis']}: tier 1 " in page.status.text()
    assert "template" in page.status.text() and "unparseable" in page.status.text()
