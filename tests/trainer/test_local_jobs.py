"""The local backend end to end: a tiny random model trains on the CPU through the real trainer
process, followed by the same tracker as remote jobs (events, loss curves, restart, cancel), and
ends as a model folder ready to serve and register as a tier."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cascade_studio.services.finetune import local_backend, tracker
from cascade_studio.services.finetune.backend import JobSpec
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.trainer.tiny import examples, teacher_logprobs, write_jsonl


def _dataset(tmp_path, model, *, n=40, logprobs=True, foreign=False):
    rows = examples(n + 8)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:n])
    valid = write_jsonl(tmp_path / "train.validation.jsonl", rows[n:])
    if logprobs:
        lp = teacher_logprobs(model, rows[:n])
        if foreign:  # a teacher with another tokenizer: its tokens are not the student's
            for row in lp:
                for e in (row or {}).get("content", []):
                    e["token"] = "▁" + e["token"].upper() + "§"
        write_jsonl(tmp_path / "train.logprobs.jsonl", lp)
    return train, valid


async def _start(ws, model, train, valid, **options):
    spec = JobSpec(str(model), train, valid, n_epochs=options.pop("n_epochs", 3), batch_size=4, suffix="t",
                   options={"method": "full", "learning_rate": 3e-3, **options})
    state, warning = await tracker.start_job(ws, spec, None, SecretStore(), backend_name="local")
    assert warning is None and state.id.startswith("ftlocal-")
    return state


async def _until(ws, job_id, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, _ = await tracker.refresh(ws, job_id, SecretStore())
        if predicate(state, tracker.JobStore(ws)):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out; log: {(ws.path / 'local-jobs' / job_id / 'trainer.log').read_text()[-2000:]}")


async def test_trains_with_soft_labels_loss_falls_and_model_is_ready_to_serve(tmp_path, tiny_model):
    ws = Workspace.open(tmp_path / "ws")
    train, valid = _dataset(tmp_path, tiny_model)
    state = await _start(ws, tiny_model, train, valid, alpha=0.5, temperature=2.0)
    seen = []
    final = await tracker.watch(ws, state.id, SecretStore(), on_event=seen.append, poll_s=0.1, max_poll_s=0.3)
    log = (ws.path / "local-jobs" / state.id / "trainer.log").read_text()
    assert final.status == "succeeded", (final.error, log[-2000:])
    messages = [e.message for e in seen]
    assert any("Soft labels from the teacher's top_logprobs on 100.0%" in m for m in messages)
    assert messages[-1] == "The job has successfully completed"
    store = tracker.JobStore(ws)
    metrics = store.metrics(state.id)
    train_m = [m for m in metrics if "train_loss" in m]
    assert len(train_m) == 30 and {"ce_loss", "learning_rate", "tokens_per_s", "eta_s"} <= set(train_m[0])
    assert any(m.get("kd_loss") is not None for m in train_m)
    first = sum(m["ce_loss"] for m in train_m[:3]) / 3
    last = sum(m["ce_loss"] for m in train_m[-3:]) / 3
    assert last < first - 0.5  # the loss falls
    valid_m = [m for m in metrics if "valid_loss" in m]
    assert len(valid_m) == 3 and valid_m[-1]["valid_loss"] < valid_m[0]["valid_loss"]
    assert [e["message"] for e in store.events(state.id)] == messages  # stored once each, in order

    # the model folder is a Hugging Face model with the chat template it was trained with
    out = final.hyperparameters["output"]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out["merged"], local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out["merged"], local_files_only=True)
    assert tok.chat_template and model.config.vocab_size == len(tok)
    serve = open(out["serve"]).read()
    assert f"vllm serve {out['merged']}" in serve and "llama-server" in serve and "ollama create" in serve
    assert f"finetune use {state.id}" in serve
    assert {r["server"] for r in final.hyperparameters["serve"]} >= {"vLLM", "llama.cpp server", "Ollama"}

    tier = tracker.use_as_tier(ws, state.id, 1)  # the workspace has no tiers: tier 1 is new
    assert tier.model == final.fine_tuned_model and tier.base_url == "http://localhost:8000/v1"
    assert float(tier.input_price) == 0.0
    # tier 1 is now the only tier, the teacher's: replaced only when asked to (issue 27)
    with pytest.raises(tracker.TeacherTierRefused):
        tracker.use_as_tier(ws, state.id, 1, base_url="http://localhost:11434/v1")
    tier = tracker.use_as_tier(ws, state.id, 1, base_url="http://localhost:11434/v1", replace_teacher=True)
    assert TierRepository(ws).get(1).base_url == "http://localhost:11434/v1"
    ws.close()


async def test_lora_adapter_and_hard_labels_when_tokenizers_differ(tmp_path, tiny_model):
    ws = Workspace.open(tmp_path / "ws")
    train, valid = _dataset(tmp_path, tiny_model, n=16, foreign=True)
    state = await _start(ws, tiny_model, train, None, method="lora", n_epochs=2)
    final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.1, max_poll_s=0.3)
    assert final.status == "succeeded", final.error
    messages = [e["message"] for e in tracker.JobStore(ws).events(state.id)]
    assert any("do not share a tokenizer" in m and "hard labels" in m for m in messages)
    assert all(m.get("kd_loss") is None for m in tracker.JobStore(ws).metrics(state.id))
    out = final.hyperparameters["output"]
    assert os.path.exists(os.path.join(out["adapter"], "adapter_config.json"))
    assert os.path.exists(os.path.join(out["merged"], "config.json"))
    assert "--enable-lora --lora-modules" in open(out["serve"]).read()
    assert len(await local_backend.LocalFineTuneBackend(ws.path).checkpoints(state.id)) == 1  # after epoch 1
    ws.close()


async def test_a_restarted_tracker_picks_the_job_up_mid_training(tmp_path, tiny_model):
    ws = Workspace.open(tmp_path / "ws")
    train, valid = _dataset(tmp_path, tiny_model, logprobs=False)
    state = await _start(ws, tiny_model, train, valid, n_epochs=40)  # 400 steps
    await _until(ws, state.id, lambda s, store: len(store.metrics(state.id)) >= 3)
    ws.close()
    local_backend._children.clear()  # as after a restart: the app no longer knows the process
    ws = Workspace.open(tmp_path / "ws")
    job = tracker.JobStore(ws).unfinished()
    assert [j["id"] for j in job] == [state.id] and job[0]["status"] == "running"  # mid-training
    final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.1, max_poll_s=0.3)
    assert final.status == "succeeded"
    steps = [m["step"] for m in tracker.JobStore(ws).metrics(state.id) if "train_loss" in m]
    assert steps == list(range(1, 401))  # every step once, nothing lost or doubled across the restart
    ws.close()


async def test_pause_resume_and_cancel(tmp_path, tiny_model):
    ws = Workspace.open(tmp_path / "ws")
    train, valid = _dataset(tmp_path, tiny_model, logprobs=False)
    state = await _start(ws, tiny_model, train, valid, n_epochs=200)
    await _until(ws, state.id, lambda s, store: s.status == "running")
    await tracker.control(ws, state.id, "pause", SecretStore())
    await _until(ws, state.id, lambda s, store: any(e["message"].startswith("Paused at step")
                                                    for e in store.events(state.id)))
    n = len(tracker.JobStore(ws).metrics(state.id))
    await asyncio.sleep(0.6)
    await tracker.refresh(ws, state.id, SecretStore())
    assert len(tracker.JobStore(ws).metrics(state.id)) == n  # no steps while paused
    await tracker.control(ws, state.id, "resume", SecretStore())
    await _until(ws, state.id, lambda s, store: len(store.metrics(state.id)) > n)
    final = await tracker.control(ws, state.id, "cancel", SecretStore())
    final = await _until(ws, state.id, lambda s, store: s.done)
    assert final.status == "cancelled"
    pid = int((ws.path / "local-jobs" / state.id / "pid").read_text())
    assert not local_backend._alive(pid, state.id)
    assert not (ws.path / "local-jobs" / state.id / "output" / "merged").exists()
    ws.close()


async def test_failures_are_reported_in_words(tmp_path, tiny_model):
    ws = Workspace.open(tmp_path / "ws")
    # not a model folder: refused before anything starts
    with pytest.raises(ValueError, match="no config.json"):
        await _start(ws, tmp_path, *_dataset(tmp_path, tiny_model, logprobs=False))
    # a broken training file: refused before anything starts, naming the line
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(examples(1)[0]) + "\n{not json\n")
    with pytest.raises(tracker.DatasetRefused, match="line 2: invalid_json"):
        await _start(ws, tiny_model, bad, None)
    # ...and if it reaches the trainer anyway (changed after validation), the job fails with the file and line
    check, tracker.check_dataset = tracker.check_dataset, lambda *a, **k: None
    try:
        state = await _start(ws, tiny_model, bad, None)
    finally:
        tracker.check_dataset = check
    final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.1)
    assert final.status == "failed" and final.error["code"] == "invalid_training_file"
    assert "bad.jsonl:2: not JSON" in final.error["message"]
    # the trainer killed from outside (out of memory, kill -9): failed, pointing at its log
    train, valid = _dataset(tmp_path, tiny_model, logprobs=False)
    state = await _start(ws, tiny_model, train, valid, n_epochs=200)
    await _until(ws, state.id, lambda s, store: s.status == "running")
    pid = int((ws.path / "local-jobs" / state.id / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    final = await _until(ws, state.id, lambda s, store: s.done)
    assert final.status == "failed" and final.error["code"] == "trainer_exited"
    assert "trainer.log" in final.error["message"]
    ws.close()


def test_cli_local_job(tmp_path, tiny_model, capsys):
    from cascade_studio.cli import main

    ws = str(tmp_path / "ws")
    train, valid = _dataset(tmp_path, tiny_model, n=16)
    assert main(["-w", ws, "finetune", "backends"]) == 0
    assert "local    available" in capsys.readouterr().out
    # started by a CLI process that exits at once: the trainer outlives it, this process follows it
    started = subprocess.run(
        [sys.executable, "-m", "cascade_studio", "-w", ws, "finetune", "start", "--backend", "local", "--dataset",
         str(train), "--base-model", str(tiny_model), "--epochs", "2", "--alpha", "0.7", "--temperature", "1.5",
         "--method", "full", "--json"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)
    assert job["status"] == "validating_files" and job["hyperparameters"]["alpha"] == 0.7
    assert main(["-w", ws, "finetune", "watch", job["id"]]) == 0
    out = capsys.readouterr().out
    assert "training loss=" in out and "succeeded" in out and "SERVE.md" in out
    assert main(["-w", ws, "finetune", "status", job["id"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "succeeded" and status["metrics"][0]["step"] == status["hyperparameters"]["total_steps"]
    assert main(["-w", ws, "finetune", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["backend"] == "local"
    assert main(["-w", ws, "finetune", "use", job["id"], "--tier", "1", "--base-url", "http://localhost:8080/v1"]) == 0
    assert "at http://localhost:8080/v1" in capsys.readouterr().out
    assert main(["-w", ws, "finetune", "cancel", job["id"]]) == 0  # already ended: says so, changes nothing
    assert "succeeded" in capsys.readouterr().out
    assert main(["-w", ws, "finetune", "start", "--backend", "local", "--dataset", str(train), "--base-model",
                 str(tiny_model), "--alpha", "2"]) == 1


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
async def test_other_architectures_train_with_lora_and_merge(tmp_path, tiny_model, arch):
    """GPT-2 (Conv1D layers) and Qwen2 (the family vLLM's hermes tool parser serves) folders."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=48, n_layer=2, n_head=4, n_positions=1024,
                                           bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=48, intermediate_size=96,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             max_position_embeddings=1024))
    folder = tmp_path / arch
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    ws = Workspace.open(tmp_path / "ws")
    train, _ = _dataset(tmp_path, tiny_model, n=16, logprobs=False)
    state = await _start(ws, folder, train, None, method="lora", n_epochs=1)
    final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.1, max_poll_s=0.3)
    assert final.status == "succeeded", final.error
    out = final.hyperparameters["output"]
    assert os.path.exists(os.path.join(out["merged"], "config.json"))
    parser = {"gpt2": None, "qwen2": "--tool-call-parser hermes"}[arch]
    serve = open(out["serve"]).read()
    assert (parser in serve) if parser else ("--tool-call-parser" not in serve.split("## vLLM (LoRA")[0].split("```")[1])
    ws.close()
