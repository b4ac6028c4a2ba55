"""DPO in the local trainer: the loss equals a hand computation, the trainer's sequence
log-probabilities equal the model's own, and a DPO job trains on a preference file (the reference
frozen: the first step's loss is exactly log 2)."""

import json
import math

import pytest

from tests.trainer.tiny import CITIES, examples, write_jsonl


def pairs(n: int = 12, seed: int = 0) -> list[dict]:
    """Preference pairs from the tiny examples: the right answer preferred, another city's not."""
    out = []
    for i, ex in enumerate(examples(n, seed)):
        *prompt, answer = ex["messages"]
        wrong = json.loads(json.dumps(answer))
        other = CITIES[(i + 3) % len(CITIES)]
        if wrong.get("tool_calls"):
            city = json.loads(wrong["tool_calls"][0]["function"]["arguments"])["city"]
            other = other if other != city else CITIES[(i + 4) % len(CITIES)]
            wrong["tool_calls"][0]["function"]["arguments"] = json.dumps({"city": other})
        else:
            wrong["content"] = f"No, {other} is not a capital city."
        inp = {"messages": prompt, **({"tools": ex["tools"]} if ex.get("tools") else {})}
        out.append({"input": inp, "preferred_output": [answer], "non_preferred_output": [wrong]})
    return out


def test_dpo_loss_by_hand():
    import torch

    from cascade_studio.trainer.loss import dpo_losses, sequence_logps

    # two sequences over a vocabulary of 3: the first has targets [0, 2], the second [1]
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 1.5], [1.0, 3.0, 0.0]])
    labels, rows = torch.tensor([0, 2, 1]), torch.tensor([0, 0, 1])

    def log_softmax(row, k):
        return row[k] - math.log(sum(math.exp(v) for v in row))

    lp = sequence_logps(logits, labels, rows, 2)
    by_hand = [log_softmax([2, 1, 0], 0) + log_softmax([0, 0.5, 1.5], 2), log_softmax([1, 3, 0], 1)]
    assert lp.tolist() == pytest.approx(by_hand, rel=1e-6)
    beta, ref_c, ref_r = 0.1, -1.0, -0.5
    loss, cr, rr = dpo_losses(lp[:1], lp[1:], torch.tensor([ref_c]), torch.tensor([ref_r]), beta)
    z = beta * ((by_hand[0] - ref_c) - (by_hand[1] - ref_r))
    assert float(loss[0]) == pytest.approx(-math.log(1 / (1 + math.exp(-z))), rel=1e-6)
    assert float(cr[0]) == pytest.approx(beta * (by_hand[0] - ref_c)) and float(rr[0]) == pytest.approx(
        beta * (by_hand[1] - ref_r))
    # policy equal to the reference: log 2, whatever the answers
    same = dpo_losses(lp[:1], lp[1:], lp[:1].detach(), lp[1:].detach(), beta)[0]
    assert float(same[0]) == pytest.approx(math.log(2))


def test_trainer_dpo_loss_equals_the_hand_computation_on_a_model(tmp_path, tiny_model):
    """The trainer's batched, logits-at-targets path gives the loss computed from the model's full
    forward pass, token by token, for each answer after its prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade_studio.trainer.data import CHATML_TEMPLATE
    from cascade_studio.trainer.objectives import DpoObjective, encode_pairs

    tok = AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)
    tok.chat_template = CHATML_TEMPLATE
    rows = pairs(4)
    encoded, skipped = encode_pairs(str(write_jsonl(tmp_path / "p.jsonl", rows)), tok, 2048)
    assert skipped == 0 and len(encoded) == 4
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), local_files_only=True).eval()
    objective = DpoObjective({"dpo_beta": 0.2}, tok.pad_token_id, "cpu", __import__("contextlib").nullcontext)

    def by_hand(enc) -> float:  # sum of log p(answer token | everything before it)
        ids = torch.tensor([enc.ids.tolist()])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        return sum(float(logp[j - 1, int(enc.ids[j])]) for j in range(1, len(enc.ids)) if enc.labels[j])

    refs = [(by_hand(p.chosen), by_hand(p.rejected)) for p in encoded]
    # the answer's tokens only: the prompt is the same on both sides
    text = tok.decode([int(t) for t, k in zip(encoded[0].rejected.ids, encoded[0].rejected.labels, strict=True) if k])
    assert "No, " in text and "Capital city check" not in text
    with torch.no_grad():  # the policy moves away from the reference
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    for p, (c, r) in zip(encoded, refs, strict=True):
        p.ref_chosen, p.ref_rejected = c, r
    now = [(by_hand(p.chosen), by_hand(p.rejected)) for p in encoded]
    with torch.no_grad():
        loss_sum, sums = objective.forward(model, encoded)
    expected = [-math.log(1 / (1 + math.exp(-0.2 * ((c - rc) - (r - rr))))) for (c, r), (rc, rr) in zip(now, refs,
                                                                                                      strict=True)]
    assert float(loss_sum) == pytest.approx(sum(expected), rel=1e-4)
    assert sums[4] == 4 and float(sums[1]) == pytest.approx(sum(0.2 * (c - rc) for (c, _), (rc, _) in zip(now, refs,
                                                                                                            strict=True)),
                                                             rel=1e-4, abs=1e-6)


def test_cli_dpo_job_trains_on_a_preference_file(tmp_path, tiny_model, capsys):
    from cascade_studio.cli import main

    ws = str(tmp_path / "ws")
    train = write_jsonl(tmp_path / "pairs.jsonl", pairs(8))
    valid = write_jsonl(tmp_path / "pairs.validation.jsonl", pairs(4, seed=1))
    chat = write_jsonl(tmp_path / "chat.jsonl", examples(12))
    start = ["-w", ws, "finetune", "start", "--backend", "local", "--base-model", str(tiny_model), "--json"]
    # a chat file is not DPO data, and a preference file is not SFT data: refused before anything starts
    assert main([*start, "--dataset", str(chat), "--method", "dpo"]) == 1
    assert "build them with `dataset build --format preference`" in capsys.readouterr().err
    assert main([*start, "--dataset", str(train)]) == 1
    assert "train them with --method dpo" in capsys.readouterr().err
    assert main([*start, "--dataset", str(train), "--validation", str(valid), "--method", "dpo", "--epochs", "3",
                 "--batch-size", "4", "--learning-rate", "5e-3", "--beta", "0.5"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["hyperparameters"]["objective"] == "dpo" and job["hyperparameters"]["dpo_beta"] == 0.5
    assert main(["-w", ws, "finetune", "watch", job["id"]]) == 0
    out = capsys.readouterr().out
    assert "DPO on 8 preference pairs" in out and "reward accuracy" in out and "succeeded" in out
    assert main(["-w", ws, "finetune", "status", job["id"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["hyperparameters"]["objective"] == "dpo" and status["hyperparameters"]["method"] == "lora"
    from cascade_studio.services.finetune import tracker
    from cascade_studio.store.workspace import Workspace

    with Workspace.open(tmp_path / "ws") as w:
        metrics = tracker.JobStore(w).metrics(job["id"])
    steps = [m for m in metrics if "train_loss" in m]
    assert len(steps) == 6 and steps[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy = reference
    assert steps[-1]["train_loss"] < steps[0]["train_loss"] and steps[-1]["reward_margin"] > 0
    assert len([m for m in metrics if "valid_loss" in m]) == 3
