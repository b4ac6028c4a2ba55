"""Fine-tune jobs against the sandbox: lifecycle to succeeded with metrics, a bad file fails with
its reason, cancel, tracking resumes after the workspace is reopened, and the model becomes a tier."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.finetune import tracker
from cascade_studio.services.finetune.backend import JobSpec, openai_deprecation
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


def dataset(path, n=12):
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"a{i}"}]} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def workspace(tmp_path, url):
    ws = Workspace.open(tmp_path / "ws")
    TierRepository(ws).replace_all([
        Tier(tier=1, model="gpt-4o-mini", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("0.15"),
             output_price=Decimal("0.6")),
        Tier(tier=2, model="gpt-4o", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("2.5"),
             output_price=Decimal("10"))])
    return ws


async def test_lifecycle_to_succeeded_with_metrics(sandbox, tmp_path):
    sandbox.config.job_seconds = 1.0
    ws = workspace(tmp_path, sandbox.base_url)
    spec = JobSpec("gpt-4o-mini", dataset(tmp_path / "t.jsonl"), validation_file=dataset(tmp_path / "v.jsonl"),
                   n_epochs=2, suffix="demo")
    state, warning = await tracker.start_job(ws, spec, None, SecretStore())
    assert state.status == "validating_files" and warning is None  # not OpenAI: no cutoff warning
    seen = []
    final = await tracker.watch(ws, state.id, SecretStore(), on_event=seen.append, poll_s=0.05, max_poll_s=0.1)
    assert final.status == "succeeded" and final.fine_tuned_model.startswith("ft:gpt-4o-mini:sandbox-org:demo:")
    store = tracker.JobStore(ws)
    metrics = store.metrics(state.id)
    assert len(metrics) == 2 * 12 and {"train_loss", "valid_loss"} <= set(metrics[0])
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"] + 0.5
    assert [e.message for e in seen][-1] == "The job has successfully completed"
    assert len(store.events(state.id)) == len(seen)  # stored once each
    ws.close()


async def test_bad_file_fails_with_reason_and_cancel(sandbox, tmp_path):
    sandbox.config.job_seconds = 0.5
    ws = workspace(tmp_path, sandbox.base_url)
    # the validator refuses a file OpenAI would reject, before anything is uploaded
    with pytest.raises(tracker.DatasetRefused, match="at least 10"):
        await tracker.start_job(ws, JobSpec("gpt-4o-mini", dataset(tmp_path / "small.jsonl", n=3)), None, SecretStore())
    assert tracker.JobStore(ws).list() == [] and sandbox.sandbox.files == {}  # nothing uploaded
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"bad": 1}\n' * 12)
    with pytest.raises(tracker.DatasetRefused, match="missing_messages_list"):
        await tracker.start_job(ws, JobSpec("gpt-4o-mini", bad), None, SecretStore())
    assert sandbox.sandbox.files == {}
    # a server that rejects the file anyway: the job's failure is reported with the server's reason
    check = tracker.check_dataset
    tracker.check_dataset = lambda *a, **k: None
    try:
        state, _ = await tracker.start_job(ws, JobSpec("gpt-4o-mini", dataset(tmp_path / "small.jsonl", n=3)), None,
                                           SecretStore())
    finally:
        tracker.check_dataset = check
    final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.05)
    assert final.status == "failed" and final.error["code"] == "invalid_training_file"
    assert "at least 10" in tracker.JobStore(ws).get(state.id)["error"]["message"]
    sandbox.config.job_seconds = 30
    state, _ = await tracker.start_job(ws, JobSpec("gpt-4o-mini", dataset(tmp_path / "t.jsonl")), None, SecretStore())
    cancelled = await tracker.control(ws, state.id, "cancel", SecretStore())
    assert cancelled.status == "cancelled"
    ws.close()


async def test_tracking_resumes_after_reopen(sandbox, tmp_path):
    sandbox.config.job_seconds = 1.0
    ws = workspace(tmp_path, sandbox.base_url)
    state, _ = await tracker.start_job(ws, JobSpec("gpt-4o-mini", dataset(tmp_path / "t.jsonl")), None, SecretStore())
    ws.close()  # the app quits while the job runs
    ws = Workspace.open(tmp_path / "ws")
    unfinished = tracker.JobStore(ws).unfinished()
    assert [j["id"] for j in unfinished] == [state.id]
    final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.05)
    assert final.status == "succeeded" and tracker.JobStore(ws).unfinished() == []
    ws.close()


def test_openai_deprecation_warning():
    text = openai_deprecation("https://api.openai.com/v1", "gpt-4o-mini", dt.date(2026, 11, 27))
    assert "no new fine-tuning jobs after 2027-01-06" in text and "retire on 2027-01-14" in text
    assert "stopped accepting" in openai_deprecation("https://api.openai.com/v1", "gpt-4.1", dt.date(2027, 2, 1))
    assert openai_deprecation("http://localhost:8000/v1", "gpt-4o-mini", dt.date(2026, 11, 27)) is None


def test_cli_start_watch_use(tmp_path, capsys, sandbox_thread):
    from cascade_studio.cli import main

    sandbox_thread.config.job_seconds = 1.0
    workspace(tmp_path, sandbox_thread.base_url).close()
    ws = str(tmp_path / "ws")
    assert main(["-w", ws, "finetune", "start", "--dataset", str(dataset(tmp_path / "t.jsonl")), "--base-model",
                 "gpt-4o-mini", "--suffix", "cli", "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert main(["-w", ws, "finetune", "watch", job["id"]]) == 0
    out = capsys.readouterr().out
    assert "successfully completed" in out and "ft:gpt-4o-mini" in out
    assert main(["-w", ws, "finetune", "status", job["id"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "succeeded" and status["metrics"]
    assert main(["-w", ws, "finetune", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["-w", ws, "finetune", "use", job["id"], "--tier", "1"]) == 0
    assert "now uses ft:gpt-4o-mini" in capsys.readouterr().out
    assert main(["-w", ws, "tiers", "list", "--json"]) == 0
    tier1 = json.loads(capsys.readouterr().out)[0]
    assert tier1["model"] == status["fine_tuned_model"] and tier1["input_price"] == "0.3"  # fine-tuned price
    assert main(["-w", ws, "tiers", "test", "1"]) == 0  # the sandbox answers with the fine-tuned model
    assert main(["-w", ws, "finetune", "status", "ftjob_nope"]) == 1
    pytest.importorskip("openai")


async def test_a_paused_job_reads_paused(sandbox, tmp_path):
    from cascade_studio.core.finetune import shown_status

    sandbox.config.job_seconds = 30
    ws = workspace(tmp_path, sandbox.base_url)
    state, _ = await tracker.start_job(ws, JobSpec("gpt-4o-mini", dataset(tmp_path / "t.jsonl")), None, SecretStore())
    import asyncio

    for _ in range(100):
        state, _ = await tracker.refresh(ws, state.id, SecretStore())
        if state.status == "running":
            break
        await asyncio.sleep(0.1)
    async def shown_after(action):
        await tracker.control(ws, state.id, action, SecretStore())
        for _ in range(40):  # the event may land a poll later
            await tracker.refresh(ws, state.id, SecretStore())
            job = tracker.JobStore(ws).get(state.id)
            if job["shown_status"] == ("paused" if action == "pause" else "running"):
                return job
            await asyncio.sleep(0.05)
        return job

    job = await shown_after("pause")
    assert job["status"] == "running" and job["shown_status"] == "paused"
    assert (await shown_after("resume"))["shown_status"] == "running"
    assert shown_status("running", ["Paused at step 3; the model stays in memory"]) == "paused"  # the local trainer's
    assert shown_status("succeeded", ["Fine-tuning job paused"]) == "succeeded"
    ws.close()
