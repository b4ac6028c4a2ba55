"""Fine-tuning page: build + validate a dataset, start a job on the sandbox, follow it live to
success (curves, events), use the model as a tier; tracking resumes when the workspace reopens."""

import asyncio

from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until


def succeeded_job_page(qtbot, tmp_path, qloop, sandbox_thread):
    """The Fine-tuning page with a dataset (with a validation split) built and its job succeeded."""
    sandbox_thread.config.job_seconds = 1.0
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        teacher = max(TierRepository(ws).list(), key=lambda t: t.tier)
        run, _ = start_or_resume(ws, teacher, select_task_ids(ws, limit=30), {})
        asyncio.run(CollectionRun(ws, teacher, SecretStore(), run).run())
    asyncio.set_event_loop(qloop)  # asyncio.run() above unset the current loop
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.show()
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    page.build(tmp_path / "out" / "train.jsonl")
    assert "training and" in page.status.text()
    assert "0 errors" in page.ds_report.toPlainText() and page.start_button.isEnabled()
    page.suffix.setText("gui")
    page.start_button.click()
    run_until(qloop, lambda: not page.calls.running("start"), timeout=30)
    assert page.jobs.rowCount() == 1, page.status.text()
    for _ in range(100):
        page.poll()
        run_until(qloop, lambda: not page.calls.running("poll"), timeout=10)
        if page.jobs.item(0, 1).text() == "succeeded":
            break
        qloop.run_until_complete(asyncio.sleep(0.1))
    assert page.jobs.item(0, 1).text() == "succeeded" and page.jobs.item(0, 5).text().startswith("ft:gpt-4o-mini")
    page.show_job()
    assert len(page.curves["train_loss"].getData()[0]) > 0 and "successfully completed" in page.events.toPlainText()
    assert page.use_button.isEnabled()
    return window, page


def test_build_validate_start_follow_use(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch):
    from cascade_studio.ui import confirm

    _, page = succeeded_job_page(qtbot, tmp_path, qloop, sandbox_thread)
    page.use_tier.setCurrentIndex(page.use_tier.findData(1))
    page.use_button.click()  # "evaluate first?" answered Cancel (tests/ui/conftest.py): nothing changes
    assert not TierRepository(page.ws).get(1).model.startswith("ft:") and "unchanged" in page.status.text()
    monkeypatch.setattr(confirm, "ask_choice", lambda *a, **k: "switch")
    page.use_button.click()  # switch without evaluating
    with Workspace.open(tmp_path / "ws") as ws:
        assert TierRepository(ws).get(1).model.startswith("ft:gpt-4o-mini")


def test_use_as_tier_evaluates_first_and_shows_both(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch):
    from cascade_studio.store.evaluations import history
    from cascade_studio.ui import errors

    window, page = succeeded_job_page(qtbot, tmp_path, qloop, sandbox_thread)
    panel = page.jobs_panel
    from cascade_studio.ui import confirm

    questions: list[str] = []
    answers = iter([False, True])  # switch? no; (after the second evaluation) switch? yes
    monkeypatch.setattr(errors, "ask_yes_no", lambda parent, title, text: questions.append(text) or next(answers))
    monkeypatch.setattr(confirm, "ask_choice", lambda parent, title, text, choices: questions.append(text) or "evaluate")
    before = TierRepository(window.ws).get(1).model
    page.use_tier.setCurrentIndex(page.use_tier.findData(1))
    page.use_button.click()
    assert "validation tasks of dataset" in questions[0] and f"current model ({before})" in questions[0]
    assert not page.use_button.isEnabled()  # one evaluation at a time
    run_until(qloop, lambda: panel.candidate_worker is None, timeout=60)
    shown = panel.comparison.text()
    assert panel.comparison.isVisible() and "validation tasks of dataset" in shown
    assert "ft:gpt-4o-mini" in shown and f"now in tier 1: {before} agreement" in shown and shown in questions[1]
    assert TierRepository(window.ws).get(1).model == before and "unchanged" in page.status.text()
    rows = history(window.ws)
    assert [r["student_model"][:14] for r in rows] == ["ft:gpt-4o-mini", before[:14]]
    page.use_button.click()
    run_until(qloop, lambda: panel.candidate_worker is None, timeout=60)
    assert TierRepository(window.ws).get(1).model.startswith("ft:gpt-4o-mini") and "now uses" in page.status.text()


def test_tracking_resumes_on_reopen(qtbot, tmp_path, qloop, sandbox_thread):
    import json

    from cascade_studio.services.finetune import tracker
    from cascade_studio.services.finetune.backend import JobSpec

    sandbox_thread.config.job_seconds = 1.0
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    data = tmp_path / "t.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                       {"role": "assistant", "content": "a"}]}) for i in range(10)))
    with Workspace.open(tmp_path / "ws") as ws:
        state, _ = asyncio.run(tracker.start_job(ws, JobSpec("gpt-4o-mini", data), None, SecretStore()))
    asyncio.set_event_loop(qloop)  # asyncio.run() above unset the current loop
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")  # the page is not opened: tracking starts by itself
    run_until(qloop, lambda: window._lazy.get("finetune") is not None, timeout=5)

    def finished() -> bool:
        job = tracker.JobStore(window.ws).get(state.id)
        return job["status"] == "succeeded"

    run_until(qloop, finished, timeout=30)


def test_paused_means_paused_and_cancel_asks(qtbot, tmp_path, qloop, sandbox_thread, monkeypatch):
    sandbox_thread.config.job_seconds = 60.0
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        teacher = max(TierRepository(ws).list(), key=lambda t: t.tier)
        run, _ = start_or_resume(ws, teacher, select_task_ids(ws, limit=30), {})
        asyncio.run(CollectionRun(ws, teacher, SecretStore(), run).run())
    asyncio.set_event_loop(qloop)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.nav.setCurrentRow(3)
    page = window.finetune_page
    page.build(tmp_path / "out" / "train.jsonl")
    page.start_button.click()
    run_until(qloop, lambda: not page.calls.running("start"), timeout=30)

    def poll_until(text):
        for _ in range(100):
            page.poll()
            run_until(qloop, lambda: not page.calls.running("poll"), timeout=10)
            if page.jobs.item(0, 1).text() == text:
                return
            qloop.run_until_complete(asyncio.sleep(0.1))
        raise AssertionError(f"never {text}: {page.jobs.item(0, 1).text()}")

    poll_until("running")
    panel = page.jobs_panel
    page.jobs.selectRow(0)
    page.show_job()
    assert panel.pause_button.isEnabled() and not panel.resume_button.isEnabled()
    panel.control("pause")
    qloop.run_until_complete(asyncio.sleep(0.3))
    poll_until("paused")
    page.show_job()
    assert not panel.pause_button.isEnabled() and panel.resume_button.isEnabled() and panel.cancel_button.isEnabled()
    asked = []
    monkeypatch.setattr(type(panel), "confirm_cancel", lambda self, job_id: asked.append(job_id) or False)
    panel.control("cancel")  # declined: nothing happens
    qloop.run_until_complete(asyncio.sleep(0.3))
    poll_until("paused")
    assert asked
