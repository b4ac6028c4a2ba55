"""Several processes, one training: two CPU processes (gloo, started by torchrun as for GPUs) train
the tiny model on the same global batches as one process, to the same loss curve (within 1e-3 at
every logged step, the soft-label loss included); a job stopped at step k goes on on one process
from its checkpoint, on the same curve."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade_studio.services.finetune import local_backend, tracker
from cascade_studio.services.finetune.backend import JobSpec
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from tests.trainer.tiny import examples, teacher_logprobs, write_jsonl


async def _job(ws, model, train, valid, **options):
    spec = JobSpec(str(model), train, valid, n_epochs=2, batch_size=4, seed=7,
                   options={"method": "full", "learning_rate": 3e-3, "device": "cpu", "merge": False, **options})
    state, _ = await tracker.start_job(ws, spec, None, SecretStore(), backend_name="local")
    return state.id


def _curve(ws, job_id, key):
    return {m["step"]: m[key] for m in tracker.JobStore(ws).metrics(job_id) if key in m}


async def test_two_processes_follow_the_one_process_curve_and_resume_on_one(tmp_path, tiny_model):
    rows = examples(20)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:16])
    valid = write_jsonl(tmp_path / "train.validation.jsonl", rows[16:])
    write_jsonl(tmp_path / "train.logprobs.jsonl", teacher_logprobs(tiny_model, rows[:16]))
    ws = Workspace.open(tmp_path / "ws")
    one = await _job(ws, tiny_model, train, valid)
    two = await _job(ws, tiny_model, train, valid, devices=2, checkpoint_every=3)
    finals = await asyncio.gather(*(tracker.watch(ws, j, SecretStore(), poll_s=0.2, max_poll_s=0.5) for j in (one, two)))
    logs = [(ws.path / "local-jobs" / j / "trainer.log").read_text()[-3000:] for j in (one, two)]
    assert [f.status for f in finals] == ["succeeded", "succeeded"], logs
    assert finals[1].hyperparameters["devices"] == 2 and finals[0].hyperparameters["devices"] == 1
    for key in ("train_loss", "ce_loss", "kd_loss", "valid_loss"):
        a, b = _curve(ws, one, key), _curve(ws, two, key)
        assert sorted(a) == sorted(b) and len(a) >= 2, key
        assert all(a[s] is not None and abs(a[s] - b[s]) < 1e-3 for s in a), (key, a, b)
    assert sorted(_curve(ws, one, "train_loss")) == list(range(1, 9))  # 2 epochs of 16 at a global batch of 4
    # one progress stream: each step written once although two processes trained
    assert [m["step"] for m in tracker.JobStore(ws).metrics(two) if "train_loss" in m] == list(range(1, 9))
    checkpoints = await local_backend.LocalFineTuneBackend(ws.path).checkpoints(two)
    assert [c["step_number"] for c in checkpoints] == [3, 6]

    # the two-process job, stopped after step 3 (its first checkpoint), goes on on one process
    resumed = await _job(ws, tiny_model, train, valid, resume_from=checkpoints[0]["path"])
    final = await tracker.watch(ws, resumed, SecretStore(), poll_s=0.2, max_poll_s=0.5)
    assert final.status == "succeeded", (ws.path / "local-jobs" / resumed / "trainer.log").read_text()[-3000:]
    events = [e["message"] for e in tracker.JobStore(ws).events(resumed)]
    assert any("Resuming at step 3 of 8" in m and "on 2 process(es), now 1" in m for m in events)
    after, full = _curve(ws, resumed, "train_loss"), _curve(ws, two, "train_loss")
    assert sorted(after) == list(range(4, 9))
    assert all(abs(after[s] - full[s]) < 1e-3 for s in after), (after, full)
    assert abs(_curve(ws, resumed, "valid_loss")[8] - _curve(ws, two, "valid_loss")[8]) < 1e-3
    # a job without checkpoints has nothing to resume from; a checkpoint of another global batch is refused
    with pytest.raises(ValueError, match="wrote no resumable checkpoint"):
        await _job(ws, tiny_model, train, valid, resume_from=one)
    _refuses_another_batch(tiny_model, checkpoints[0]["path"])
    ws.close()


def _refuses_another_batch(model_dir, path):
    from transformers import AutoModelForCausalLM

    from cascade_studio.trainer import checkpoint
    from cascade_studio.trainer.data import DataError
    from cascade_studio.trainer.train import _schedule

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    schedule = _schedule({"n_epochs": 2, "batch_size": 2}, model, 16, "full")
    expected = {"objective": "sft", "method": "full", "global_batch": 2, "n_train": 16, "total_steps": 16, "seed": 7}
    with pytest.raises(DataError, match="global_batch 4 \\(now 2\\), total_steps 8 \\(now 16\\)"):
        checkpoint.load(path, model, schedule, expected, "cpu")
    state, reference = checkpoint.load(path, model, schedule, {**expected, "global_batch": 4, "total_steps": 8}, "cpu")
    assert state["step"] == 3 and state["world"] == 2 and reference is None


def test_torchrun_commands():
    cmd = local_backend.torchrun_command("py", "/j", 4)
    assert cmd == ["py", "-m", "torch.distributed.run", "--nproc-per-node=4", "--standalone", "-m",
                   "cascade_studio.trainer", "/j"]
    cmd = local_backend.torchrun_command("py", "/j", 8, nodes=2, rdzv_endpoint="10.0.0.1:29500", node_rank=1)
    assert "--nnodes=2" in cmd and "--node-rank=1" in cmd and "--master-addr=10.0.0.1" in cmd
    with pytest.raises(ValueError, match="--rdzv-endpoint HOST:PORT"):
        local_backend.torchrun_command("py", "/j", 8, nodes=2)


def test_a_succeeded_job_is_a_base_model_and_a_checkpoint_source(tmp_path):
    import json

    backend = local_backend.LocalFineTuneBackend(tmp_path)
    folder = backend.job_dir("ftlocal-0a1b2c")
    folder.mkdir(parents=True)
    ck = folder / "output" / "checkpoints" / "step-4"
    lines = [{"t": 1, "type": "checkpoint", "step": 2, "path": str(folder / "x")},  # an adapter only (before resume.pt)
             {"t": 2, "type": "checkpoint", "step": 4, "path": str(ck), "resumable": True},
             {"t": 3, "type": "result", "output": {"merged": str(folder / "output" / "merged")}}]
    (folder / "progress.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    assert backend.model_folder("ftlocal-0a1b2c") == folder / "output" / "merged"
    assert backend.resumable_checkpoint("ftlocal-0a1b2c") == ck
    assert backend.model_folder("~/models/x") == Path("~/models/x").expanduser()
    with pytest.raises(ValueError, match="not a resumable checkpoint folder"):
        backend.resumable_checkpoint(str(tmp_path))
