"""The operator's path: start a local job from the Fine-tuning page, follow it like any other job
(status, events, loss parts), and put the model in a tier."""

import asyncio

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.trainer.tiny import examples, teacher_logprobs, write_jsonl
from tests.ui.conftest import run_until


def test_start_follow_and_use_a_local_job(qtbot, tmp_path, qloop, tiny_model, monkeypatch):
    rows = examples(24)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:20])
    valid = write_jsonl(tmp_path / "train.validation.jsonl", rows[20:])
    write_jsonl(tmp_path / "train.logprobs.jsonl", teacher_logprobs(tiny_model, rows[:20]))
    Workspace.open(tmp_path / "ws").close()
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.show()
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    page.backend.setCurrentIndex(page.backend.findData("local"))
    assert page.local_box.isVisible() and not page.remote_box.isVisible() and not page.deprecation.isVisible()
    page.dataset_path, page.validation_path = train, valid
    page.start_button.click()
    assert "base model folder first" in page.status.text()  # nothing started without one
    page.local_model.setText(str(tiny_model))
    page.method.setCurrentIndex(page.method.findData("full"))
    page.epochs.setValue(2)
    page.alpha.setValue(0.6)
    page.start_button.click()
    run_until(qloop, lambda: not page.calls.running("start"), timeout=30)
    assert page.jobs.rowCount() == 1, page.status.text()
    for _ in range(300):
        page.poll()
        run_until(qloop, lambda: not page.calls.running("poll"), timeout=10)
        if page.jobs.item(0, 1).text() in ("succeeded", "failed", "cancelled"):
            break
        qloop.run_until_complete(asyncio.sleep(0.1))
    assert page.jobs.item(0, 1).text() == "succeeded", page.job_status.text()
    page.show_job()
    assert "local" in page.job_status.text() and "SERVE.md" in page.job_status.text()
    assert len(page.curves["train_loss"].getData()[0]) == 40  # 2 epochs of 20 at batch size 1
    assert len(page.curves["kd_loss"].getData()[0]) > 0 and len(page.curves["ce_loss"].getData()[0]) == 40
    assert len(page.curves["valid_loss"].getData()[0]) == 2
    assert "Soft labels" in page.events.toPlainText() and "successfully completed" in page.events.toPlainText()
    from cascade_studio.ui import confirm

    asked = []
    monkeypatch.setattr(confirm, "ask_choice", lambda parent, title, text, choices: asked.append(text) or "switch")
    page.use_tier.setCurrentIndex(max(0, page.use_tier.findData(1)))
    page.use_button.click()
    assert "no tiers yet" in asked[0]  # the only tier: asked (Cancel by default), not switched at once
    assert "vllm serve" in page.status.text()
    with Workspace.open(tmp_path / "ws") as ws:
        tier = TierRepository(ws).get(1)
        assert tier.base_url == "http://localhost:8000/v1" and tier.model == page.jobs.item(0, 5).text()


def test_a_running_local_job_is_tracked_when_the_app_opens(qtbot, tmp_path, qloop, tiny_model):
    import json
    import subprocess
    import sys

    from cascade_studio.services.finetune import tracker

    rows = examples(24)
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    ws_dir = str(tmp_path / "ws")
    started = subprocess.run(  # another process starts the job and exits, as a closed app would
        [sys.executable, "-m", "cascade_studio", "-w", ws_dir, "finetune", "start", "--backend", "local",
         "--dataset", str(train), "--base-model", str(tiny_model), "--epochs", "2", "--method", "full", "--json"],
        capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["id"]
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")  # the Fine-tuning page is not opened: tracking starts by itself
    run_until(qloop, lambda: window._lazy.get("finetune") is not None, timeout=5)

    def finished() -> bool:
        return tracker.JobStore(window.ws).get(job_id)["status"] == "succeeded"

    run_until(qloop, finished, timeout=120)
    steps = [m["step"] for m in tracker.JobStore(window.ws).metrics(job_id)]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] == 2 * 24  # batch size 1: 24 steps an epoch
