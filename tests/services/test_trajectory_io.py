"""Trajectory import/export (native JSONL, Batch API files, CSV) and collection through the Batch API."""

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services import trajectory_io as tio
from cascade_studio.services.batch_runner import BatchCollection
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"


def tier(url, n=1, model="gpt-4o-mini"):
    return Tier(tier=n, model=model, base_url=url, provider=Provider.SANDBOX, input_price=Decimal("0.15"),
                output_price=Decimal("0.6"), max_concurrency=8)


def workspace(path, url):
    ws = Workspace.open(path)
    TierRepository(ws).replace_all([tier(url)])
    import_tasks(ws, BFCL / "BFCL_v4_multiple.json")
    return ws


async def test_native_round_trip_is_idempotent(sandbox, tmp_path):
    a = workspace(tmp_path / "a", sandbox.base_url)
    t = tier(sandbox.base_url)
    run, _ = start_or_resume(a, t, select_task_ids(a, limit=10), {})
    await CollectionRun(a, t, SecretStore(), run).run()
    out = tmp_path / "t.jsonl"
    assert tio.export_native(a, out) == 10
    b = workspace(tmp_path / "b", sandbox.base_url)
    first = tio.import_native(b, out, t)
    assert (first.added, first.updated, first.unchanged) == (10, 0, 0)
    again = tio.import_native(b, out, t)  # same file again: nothing changes, nothing is duplicated
    assert (again.added, again.updated, again.unchanged) == (0, 0, 10)
    rows_a, rows_b = tio.list_rows(a), tio.list_rows(b)
    assert len(rows_b) == 10
    assert [r["cost_usd"] for r in rows_a] == [r["cost_usd"] for r in rows_b]
    assert [r["tool"] for r in rows_a] == [r["tool"] for r in rows_b]
    a.close()
    b.close()


def test_native_import_errors_name_line_and_field(tmp_path):
    ws = workspace(tmp_path / "w", "http://127.0.0.1:9/v1")
    f = tmp_path / "bad.jsonl"
    good = {"task_id": "multiple_0", "model": "m", "latency_ms": 5,
            "response": {"choices": [{"message": {"role": "assistant", "content": "x"}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1}}}
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "response": {"choices": []}}).replace('"choices": []',
                                                                                                      '"x": 1'))
    with pytest.raises(tio.TrajectoryImportError) as err:
        tio.import_native(ws, f, tier("http://127.0.0.1:9/v1"))
    assert "bad.jsonl:2: response" in str(err.value)
    assert ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == 0
    f.write_text(json.dumps({k: v for k, v in good.items() if k != "latency_ms"}))
    with pytest.raises(tio.TrajectoryImportError) as err:
        tio.import_native(ws, f, tier("http://127.0.0.1:9/v1"))
    assert "latency_ms: is missing" in str(err.value)
    ws.close()


def test_batch_files_round_trip_through_the_sandbox(sandbox_thread, tmp_path):
    import openai

    ws = workspace(tmp_path / "w", sandbox_thread.base_url)
    t = tier(sandbox_thread.base_url)
    batch_in = tmp_path / "batch_in.jsonl"
    assert tio.export_batch_input(ws, batch_in, t, select_task_ids(ws, limit=6)) == 6
    client = openai.OpenAI(api_key="sk-x", base_url=sandbox_thread.base_url)
    upload = client.files.create(file=("in.jsonl", batch_in.read_bytes()), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    import time

    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        time.sleep(0.05)
    out = tmp_path / "out.jsonl"
    out.write_text(client.files.content(batch.output_file_id).text)
    assert tio.import_batch_output(ws, out, t).added == 6
    rows = tio.list_rows(ws)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    # priced at half the synchronous rate
    traj_cost = Decimal(rows[0]["cost_usd"])
    assert traj_cost > 0
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"custom_id": "nope", "response": {"status_code": 200, "body": {}}}))
    with pytest.raises(tio.TrajectoryImportError):
        tio.import_batch_output(ws, unknown, t)
    ws.close()


async def test_batch_collection_resumes_the_same_batch(sandbox, tmp_path):
    sandbox.config.job_seconds = 1.5
    ws = workspace(tmp_path / "w", sandbox.base_url)
    t = tier(sandbox.base_url)
    ids = select_task_ids(ws, limit=12)
    run, _ = start_or_resume(ws, t, ids, {"batch": True}, batch=True)
    first = BatchCollection(ws, t, SecretStore(), run, poll_s=0.05, max_poll_s=0.1)
    task = asyncio.ensure_future(first.run())
    for _ in range(3000):  # bounded: a run that fails before creating its batch fails the test, not hangs it
        if run.params.get("batch_id") is not None:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    assert run.params.get("batch_id") is not None
    task.cancel()  # the app goes away while the batch runs on the provider's side
    with pytest.raises(asyncio.CancelledError):
        await task
    again, resumed = start_or_resume(ws, t, ids, {"batch": True}, batch=True)
    assert resumed and again.params["batch_id"] == run.params["batch_id"]
    result = await BatchCollection(ws, t, SecretStore(), again, poll_s=0.05, max_poll_s=0.1).run()
    assert result.status == "done" and result.done == 12, result.message
    assert len(sandbox.sandbox.batches) == 1  # no second batch was paid for
    sync_cost = ws.conn.execute("SELECT sum(prompt_tokens) * 0.15 + sum(completion_tokens) * 0.6 FROM trajectories"
                                ).fetchone()[0]
    assert abs(result.cost_micro - sync_cost / 2) <= 12  # half price (rounding per request)
    ws.close()


def test_cli_trajectories_import_and_batch_export(tmp_path, capsys, sandbox_thread):
    from cascade_studio.cli import main

    ws = tmp_path / "w"
    workspace(ws, sandbox_thread.base_url).close()
    assert main(["-w", str(ws), "collect", "--limit", "4", "--batch", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["done"] == 4 and "batch price" in summary["message"]
    exported = tmp_path / "t.jsonl"
    assert main(["-w", str(ws), "trajectories", "export", str(exported)]) == 0
    assert main(["-w", str(ws), "trajectories", "export", str(tmp_path / "b.jsonl"), "--format", "batch"]) == 0
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 60
    capsys.readouterr()
    other = tmp_path / "other"
    workspace(other, sandbox_thread.base_url).close()
    assert main(["-w", str(other), "trajectories", "import", str(exported), "--tier", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 4
    assert main(["-w", str(other), "trajectories", "import", str(tmp_path / "nope.jsonl"), "--tier", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err
