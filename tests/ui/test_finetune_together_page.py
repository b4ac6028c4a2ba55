"""The Fine-tuning page with Together: the line of backends that start jobs today (the same rows as
`finetune backends`), a job quoted, confirmed, started and followed to success on the sandbox's
Together routes from the dataset built for OpenAI, and a declined quote that starts nothing."""

import asyncio
import datetime as dt
import json

from cascade_studio.cli import main
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.finetune import backend as ft_backend
from cascade_studio.services.finetune import tracker
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until

MODEL = "meta-llama/Llama-3.2-1B-Instruct"


def test_together_from_the_page(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch, capsys):
    monkeypatch.setattr(ft_backend, "today", lambda: dt.date(2026, 12, 7))
    sandbox_thread.config.job_seconds = 1.0
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        teacher = max(TierRepository(ws).list(), key=lambda t: t.tier)
        run, _ = start_or_resume(ws, teacher, select_task_ids(ws, limit=30), {})
        asyncio.run(CollectionRun(ws, teacher, SecretStore(), run).run())
    asyncio.set_event_loop(qloop)
    SecretStore().set_key(sandbox_thread.base_url, "tk-together-gui-0123456789")
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    launcher = page.launcher

    # the deadline: the page's line and the CLI's JSON come from the same rows
    text = launcher.backends_line.text()
    assert text == tracker.backends_line() and "OpenAI: until 2027-01-06" in text and "Together: yes" in text
    assert main(["-w", str(tmp_path / "cli-ws"), "finetune", "backends", "--json"]) == 0
    rows = {b["name"]: b for b in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["openai"]["starts_jobs_today"] and rows["openai"]["closes_on"] == "2027-01-06"
    assert "30 days" in launcher.backends_line.toolTip()

    page.build(tmp_path / "out" / "train.jsonl")  # built for OpenAI: tools, parallel_tool_calls
    launcher.backend.setCurrentIndex(launcher.backend.findData("together"))
    assert launcher.together_box.isVisibleTo(page) and not launcher.remote_box.isVisibleTo(page)
    assert not launcher.deprecation.isVisibleTo(page) and "quoted by Together" in page.ds_report.toPlainText()
    launcher.together_url.setText(sandbox_thread.base_url)
    launcher.together_model.setCurrentText(MODEL)
    page.suffix.setText("gui")

    quotes = []
    monkeypatch.setattr(launcher, "confirm_price", lambda prepared: quotes.append(prepared.estimate) or False)
    page.start_button.click()
    run_until(qloop, lambda: bool(quotes) and not page.calls.running("start"), timeout=30)
    assert "Not started" in page.status.text() and tracker.JobStore(window.ws).list() == []
    assert page.start_button.isEnabled()

    monkeypatch.setattr(launcher, "confirm_price", lambda prepared: quotes.append(prepared.estimate) or True)
    page.start_button.click()
    run_until(qloop, lambda: len(quotes) == 2 and page.jobs.rowCount() == 1 and not page.calls.running("start"),
              timeout=30)
    assert "Started ft-" in page.status.text(), page.status.text()
    for _ in range(100):
        page.poll()
        run_until(qloop, lambda: not page.calls.running("poll"), timeout=10)
        if page.jobs.item(0, 1).text() == "succeeded":
            break
        qloop.run_until_complete(asyncio.sleep(0.1))
    assert page.jobs.item(0, 1).text() == "succeeded"
    assert page.jobs.item(0, 5).text().startswith("sandbox-user/Llama-3.2-1B-Instruct-gui-")
    page.show_job()
    assert len(page.curves["train_loss"].getData()[0]) > 0 and "completed" in page.events.toPlainText()
    assert "together" in page.job_status.text() and "estimated_price_usd" in page.job_status.text()
    assert page.use_button.isEnabled()

    # use as tier: Together's OpenAI-compatible endpoint, and what must exist before requests work
    from cascade_studio.ui import confirm

    monkeypatch.setattr(confirm, "ask_choice", lambda *a, **k: "switch")  # "Switch without evaluating"
    page.use_tier.setCurrentIndex(page.use_tier.findData(1))
    page.use_button.click()
    tier = TierRepository(window.ws).get(1)
    assert tier.model.startswith("sandbox-user/Llama-3.2-1B-Instruct-gui-") and tier.base_url == sandbox_thread.base_url
    assert "LoRA adapter" in page.status.text() and "dedicated endpoint" in page.status.text()
