"""Issue 27, one truth per figure: on the demo workspace, every figure that Evaluation, Trade-offs (single
requests here, agent episodes in test_episode_tradeoffs.py) and Production show is the CLI's JSON for the same inputs, written the page's
way. A page that computed a figure on its own (the what-if's traffic mix read back from its two-decimal
display) fails here."""

from __future__ import annotations

import json

from cascade_studio.cli import main
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until
from tests.ui.test_tradeoffs_page import collected


def cli(capsys, ws, *args: str) -> dict | list:
    capsys.readouterr()
    assert main(["-w", str(ws), *args]) == 0
    return json.loads(capsys.readouterr().out)


def as_json(value):
    """What `--json` would print for a value the page holds (str for Decimal, keys as strings)."""
    return json.loads(json.dumps(value, default=str))


def open_window(qtbot, ws, row: int) -> MainWindow:
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(ws)
    window.show()
    window.nav.setCurrentRow(row)
    return window


def cells(table, row: int) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]


def test_tradeoffs_single_requests_equal_whatif_json(qtbot, tmp_path, capsys, sandbox_thread):
    from cascade_studio.ui.tradeoffs_parts import metrics_text, money_text, ms_text

    ws = tmp_path / "ws"
    collected(ws, sandbox_thread.base_url, limit=45)  # uneven shares (0.62...): their 2-place display is not the mix
    window = open_window(qtbot, ws, 5)
    page = window.tradeoffs_page
    assert page.wait_loaded()
    page.sliders[0].setValue(80)
    page.sliders[1].setValue(70)
    page.volume.setValue(2_000_000)
    page.update_whatif()
    out = cli(capsys, ws, "whatif", "--thresholds", "0.8,0.7", "--volume", "2000000", "--sweep", "--json")
    assert page.cli_arguments() == ["whatif", "--mode", "cascade", "--thresholds", "0.8,0.7", "--volume", "2000000"]
    # the numbers: one function, the same inputs (the recorded mix, not its rounded display)
    assert as_json(page.report["whatif"]) == out["whatif"]
    assert as_json(page.report["cascade"]) == out["cascade"]
    assert as_json(page.figures) == out["tiers"] and as_json(page.metrics) == out["metrics"]
    # the words: every figure on the page is the JSON's, formatted
    assert f"{out['tasks']} tasks have outcomes for every tier ({out['excluded']} excluded" in page.status.text()
    for r, f in enumerate(out["tiers"]):
        assert cells(page.tier_table, r) == [
            f"Tier {f['tier']}", str(f["requests"]), money_text(f["cost_per_request_usd"]),
            money_text(f["cost_p95_usd"]), ms_text(f["latency_p50_ms"]), ms_text(f["latency_p95_ms"]),
            f"{f['quality']:.0%}"]
    c, w = out["cascade"], out["whatif"]
    point = page.point_label.text()
    assert f"<b>{money_text(c['cost_per_request_usd'])}</b> per request" in point
    assert f"quality <b>{c['quality']:.1%}</b>" in point and f"p95 <b>{ms_text(c['latency_p95_ms'])}</b>" in point
    assert "escalated past each tier: " + ", ".join(f"{e:.0%}" for e in c["escalation_rate"]) in point
    assert "answered by each tier: " + ", ".join(f"{a:.0%}" for a in c["answered_share"]) in point
    text = page.whatif_label.text()
    for key in ("monthly_cost_usd", "monthly_run_cost_usd", "monthly_training_usd", "teacher_only_monthly_usd",
                "monthly_savings_usd"):
        assert money_text(w[key], 2) in text, key
    assert f"Latency p95 {ms_text(w['latency_p95_ms'])}" in text
    assert f"quality {w['quality']:.1%} (teacher {w['teacher_quality']:.1%})" in text
    assert page.metrics_label.text() == metrics_text(out["metrics"])

    # an edited mix and price multiplier: the page names the `whatif` arguments that print its figures
    page.mix_table.item(0, 1).setText("0.5")
    page.price_spins[1].setValue(0.5)
    page.update_whatif()
    args = page.cli_arguments()
    assert "--mix" in args and "--price-scale" in args
    again = cli(capsys, ws, *args, "--json")
    assert as_json(page.report["whatif"]) == again["whatif"]
    assert money_text(again["whatif"]["monthly_cost_usd"], 2) in page.whatif_label.text()


def test_evaluation_page_equals_evaluate_json(qtbot, tmp_path, qloop, capsys, sandbox_thread):
    from cascade_studio.ui.evaluation_page import _pct

    ws = tmp_path / "ws"
    prepare_demo(ws, sandbox_thread.base_url)
    window = open_window(qtbot, ws, 4)
    page = window.evaluation_page
    page.student_combo.setCurrentIndex(page.student_combo.findData(1))
    page.category_combo.setCurrentIndex(page.category_combo.findData("multiple"))
    page.limit_spin.setValue(20)
    page.run_button.click()
    run_until(qloop, lambda: page.worker is None and page.report is not None, timeout=60)
    out = cli(capsys, ws, "evaluate", "--student", "1", "--category", "multiple", "--limit", "20",
              "--target-rate", "0.3", "--json")
    mine = as_json(page.report.to_json())
    for key in ("teacher", "student", "missing", "similarity_method", "overall", "categories"):
        assert mine[key] == out[key], key
    o = out["overall"]
    assert (f"agrees with the teacher on {_pct(o['agreement'])} of {o['tasks']} tasks (tool "
            f"{_pct(o['tool_agreement'])}, arguments {_pct(o['args_agreement'])}). Similarity: "
            f"{out['similarity_method']}.") in page.status.text()
    rows = [("All categories", o), *out["categories"].items()]
    assert page.category_table.rowCount() == len(rows)
    for r, (name, b) in enumerate(rows):
        acc = b["accuracy"]
        assert cells(page.category_table, r) == [
            name, str(b["tasks"]), _pct(b["agreement"]), _pct(b["tool_agreement"]), _pct(b["args_agreement"]),
            _pct(b["answer_agreement"]), f"{_pct(acc['teacher'])} / {_pct(acc['student'])}" if acc else "—",
            "—" if b["kl"] is None else f"{b['kl']:.3f}"]
    cal = out["calibration"]  # the page calibrates at its default 30% escalation rate
    assert (f"Threshold <b>{cal['threshold']:.3f}</b>" in page.cal_result.text()
            and f"escalates <b>{cal['escalation_rate']:.0%}</b>" in page.cal_result.text()
            and f"<b>{cal['expected_quality']:.0%}</b>; the student answers {cal['answered_by_student']} of "
                f"{cal['tasks']}" in page.cal_result.text())
    history = cli(capsys, ws, "evaluate", "--history", "--json")
    table = page.history.table
    qtbot.waitUntil(lambda: table.rowCount() == len(history), timeout=5000)  # the CLI's evaluation too
    for i, h in enumerate(reversed(history)):  # newest first
        row = cells(table, i)
        assert row[1:] == [f"tier {h['student_tier']} · {h['student_model']}", h["student_generation"],
                           f"tier {h['teacher_tier']} · {h['teacher_model']} · {h['teacher_generation']}",
                           str(h["tasks"]), _pct(h["agreement"])]


def test_production_page_equals_traffic_report_json(qtbot, tmp_path, capsys, sandbox_thread):
    import asyncio

    from cascade_studio.store.tasks import TaskRepository
    from cascade_studio.store.workspace import Workspace
    from tests.gateway.conftest import write_policy
    from tests.gateway.test_traffic_import import serve_tasks

    ws = tmp_path / "ws"
    prepare_demo(ws, sandbox_thread.base_url)
    policy = write_policy(ws, tmp_path / "policy.json")
    with Workspace.open(ws) as opened:
        tasks = TaskRepository(opened).list(limit=20)
    asyncio.run(serve_tasks(policy, tmp_path / "logs", tasks + tasks[:6], category="production"))  # some asked twice
    window = open_window(qtbot, ws, 6)
    page = window.production_page
    page.import_logs(tmp_path / "logs")
    qtbot.waitUntil(lambda: page.worker is None, timeout=30_000)
    f = cli(capsys, ws, "traffic", "report", "--json")
    hard = cli(capsys, ws, "traffic", "hard-cases", "--json")
    assert f["hard_cases"] == len(hard) > 0 and f["escalated"] > f["hard_cases"]  # tasks asked twice
    # the import line and the header name the same things with the same words
    status = page.status.text()
    assert f"{f['escalated']} requests escalated, on {f['hard_cases']} tasks (hard cases)" in status, status
    saved = f"{f['savings_share']:.0%} less"
    p95 = "n/a" if f["latency_p95_ms"] is None else f"{f['latency_p95_ms']:.0f} ms"
    assert page.summary.text() == (
        f"{f['requests']:,} requests ({f['failed']} failed), {f['escalated']:,} requests escalated. Cost "
        f"${float(f['cost_usd']):,.4f} against ${float(f['teacher_only_usd']):,.4f} teacher-only ({saved}). "
        f"Latency p95 {p95}. {f['hard_cases']} hard cases (tasks with an escalated request).")
    assert page.tier_table.rowCount() == len(f["answered_share"])
    for r, (tier, share) in enumerate(f["answered_share"].items()):
        live = f["live_agreement"].get(tier)
        assert cells(page.tier_table, r) == [
            f"Tier {tier}", f"{share:.1%}", "—" if live is None else f"{live['agreement']:.0%} of {live['samples']} "
            "samples"]
    assert [cells(page.hard_table, r) for r in range(page.hard_table.rowCount())] == [
        [h["task_id"], h["category"], str(h["requests"]), h["last_seen"]] for h in hard]
    assert sum(page.bars.opts["height"]) == sum(n for _, n in f["series"]) == f["requests"]
    assert page.drift_warning.isHidden() == (not f["drift_warnings"])
