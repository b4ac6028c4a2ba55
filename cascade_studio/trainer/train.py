"""The training loop of the local trainer process (see the package docstring for its files)."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.datasets import default_epochs
from cascade_studio.core.serving import serve_markdown, serve_recipes
from cascade_studio.trainer.data import CHATML_TEMPLATE, DataError, Encoded
from cascade_studio.trainer.prepare import TrainingData, build_data
from cascade_studio.trainer.progress import Progress


class Cancelled(Exception):
    pass


class Control:
    """Cancel (flag file or SIGTERM) and pause (flag file), checked between steps."""

    def __init__(self, job_dir: Path, progress: Progress) -> None:
        self.job_dir, self.progress, self.term = job_dir, progress, False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, *_: Any) -> None:
        self.term = True

    def check(self, step: int) -> None:
        if self.term or (self.job_dir / "cancel").exists():
            raise Cancelled
        if (self.job_dir / "pause").exists():
            self.progress.event(f"Paused at step {step}; the model stays in memory until resumed or cancelled.")
            while (self.job_dir / "pause").exists():
                if self.term or (self.job_dir / "cancel").exists():
                    raise Cancelled
                time.sleep(0.3)
            self.progress.event(f"Resumed at step {step}.")


def pick_device(wanted: str) -> str:
    import torch

    if wanted not in ("auto", "", None):
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise DataError("device cuda was asked for but torch sees no CUDA GPU (torch "
                            f"{torch.__version__}); use --device auto or cpu")
        return wanted
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _collate(batch: list[Encoded], pad_id: int, device: str) -> dict[str, Any]:
    import numpy as np
    import torch

    B, L = len(batch), max(len(e.ids) for e in batch)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    rows, cols, labels, soft_rows = [], [], [], []  # soft_rows: (target index, example, row in its soft arrays)
    K = max((e.soft_ids.shape[1] for e in batch if e.soft_ids is not None), default=0)
    n = 0
    for b, e in enumerate(batch):
        ids[b, :len(e.ids)] = torch.from_numpy(e.ids.astype(np.int64))
        attn[b, :len(e.ids)] = 1
        pos = np.flatnonzero(e.labels)
        pos = pos[pos >= 1]
        rows.append(np.full(len(pos), b))
        cols.append(pos - 1)
        labels.append(e.ids[pos])
        if e.soft_pos is not None:
            at = np.searchsorted(pos, e.soft_pos)  # soft positions are target positions
            soft_rows += [(n + int(i), b, k) for k, i in enumerate(at)]
        n += len(pos)
    rows_t = torch.from_numpy(np.concatenate(rows))
    cols_np = np.concatenate(cols)
    soft_ids = torch.zeros((n, K), dtype=torch.long)
    soft_lp = torch.full((n, K), float("-inf"))
    has_soft = torch.zeros(n, dtype=torch.bool)
    for i, b, k in soft_rows:
        e = batch[b]
        w = e.soft_ids.shape[1]
        soft_ids[i, :w] = torch.from_numpy(e.soft_ids[k].astype(np.int64))
        soft_lp[i, :w] = torch.from_numpy(e.soft_lp[k])
        has_soft[i] = True
    keep, col_index = np.unique(cols_np, return_inverse=True)
    return {"input_ids": ids.to(device), "attention_mask": attn.to(device), "rows": rows_t.to(device),
            "cols": torch.from_numpy(col_index.reshape(-1)).to(device), "keep": torch.from_numpy(keep).to(device),
            "labels": torch.from_numpy(np.concatenate(labels).astype(np.int64)).to(device),
            "soft_ids": soft_ids.to(device), "soft_lp": soft_lp.to(device), "has_soft": has_soft.to(device),
            "tokens": int(attn.sum())}


def _forward(model: Any, batch: dict[str, Any], spec: dict[str, Any], autocast: Any) -> tuple[Any, ...]:
    from cascade_studio.trainer.loss import kd_token_losses

    with autocast():
        try:  # logits only where there are targets (a long tool list costs no vocabulary-sized rows)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           logits_to_keep=batch["keep"]).logits
            picked = logits[batch["rows"], batch["cols"]]
        except TypeError:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            picked = logits[batch["rows"], batch["keep"][batch["cols"]]]
    total, ce, kl = kd_token_losses(picked, batch["labels"], batch["soft_ids"], batch["soft_lp"], batch["has_soft"],
                                    float(spec.get("alpha", 0.5)), float(spec.get("temperature", 2.0)),
                                    spec.get("mass", "drop"))
    acc = (picked.argmax(-1) == batch["labels"]).float().mean()
    return total.mean(), ce.mean(), kl, batch["has_soft"], acc


@dataclass
class Schedule:
    """How long and how fast: the step budget, the optimizer and its learning-rate schedule."""

    epochs: int
    batch_size: int
    learning_rate: float
    steps_per_epoch: int
    total_steps: int
    optimizer: Any
    scheduler: Any


def train(spec: dict[str, Any], job_dir: Path, progress: Progress, control: Control) -> None:
    progress.event("Loading torch and transformers…")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401 - loaded now, as the event says

    seed = int(spec.get("seed") or 42)
    torch.manual_seed(seed)
    base = _base_model_folder(spec)
    tok = _load_tokenizer(base, progress)
    data = build_data(spec, tok, progress)
    device = pick_device(spec.get("device", "auto"))
    method = spec.get("method", "lora")
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    model, model_type, rank = _load_model(spec, base, device, method, bf16, progress)
    schedule = _schedule(spec, model, len(data.train), method)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if (bf16 and method == "full") \
        else contextlib.nullcontext
    _announce(progress, model, data, schedule, method, device)
    out_dir = job_dir / "output"
    step, tokens_done = _train_loop(model, tok.pad_token_id, data, schedule, spec, device, autocast, method,
                                    out_dir, seed, progress, control)
    control.check(step)
    progress.event("Training done; saving the model…")
    adapter, merged = _save_model(model, tok, method, bool(spec.get("merge", True)), out_dir)
    _write_result(spec, out_dir, base, model_type, rank, adapter, merged, tokens_done, progress)


def _base_model_folder(spec: dict[str, Any]) -> Path:
    base = Path(spec["base_model"]).expanduser()
    if not (base / "config.json").is_file():
        raise DataError(f"{base} is not a Hugging Face model folder (no config.json). Point the base model at a "
                        "local folder with config.json, the tokenizer files and the weights (nothing is downloaded).")
    return base


def _load_tokenizer(base: Path, progress: Progress) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
        progress.event("The base model has no chat template; using ChatML with Hermes-style tool calls (saved "
                       "with the output, so servers render prompts the way the model was trained).", level="warn")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def _load_model(spec: dict[str, Any], base: Path, device: str, method: str, bf16: bool,
                progress: Progress) -> tuple[Any, str, int]:
    """(model ready to train on `device`, its model_type, the LoRA rank)."""
    import torch
    from transformers import AutoModelForCausalLM

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if (bf16 and method == "lora") else torch.float32
    where = torch.cuda.get_device_name(0) if cuda else f"{torch.get_num_threads()} threads"
    progress.event(f"Training on {device} ({where}), {method} fine-tuning of {base.name}.")
    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, dtype=dtype)
    model_type = getattr(model.config, "model_type", "")
    rank = int(spec.get("lora_rank") or 16)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    elif method != "full":
        raise DataError(f"method {method!r}: use lora or full")
    model.to(device)
    model.train()
    return model, model_type, rank


def _schedule(spec: dict[str, Any], model: Any, n: int, method: str) -> Schedule:
    import torch

    epochs = spec.get("n_epochs")
    epochs = default_epochs(n) if epochs in (None, "auto") else int(epochs)
    bs = spec.get("batch_size")
    bs = max(1, min(8, n // 16 or 1)) if bs in (None, "auto") else int(bs)
    lr_mult = spec.get("learning_rate_multiplier")
    lr = float(spec.get("learning_rate") or (2e-4 if method == "lora" else 2e-5))
    lr *= 1.0 if lr_mult in (None, "auto") else float(lr_mult)
    steps_per_epoch = math.ceil(n / bs)
    total = epochs * steps_per_epoch
    if spec.get("max_steps"):
        total = min(total, int(spec["max_steps"]))
    warmup = max(1, round(0.03 * total))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / warmup if s < warmup else max(0.1, 1 - 0.9 * (s - warmup) / max(1, total - warmup)))
    return Schedule(epochs, bs, lr, steps_per_epoch, total, optim, sched)


def _announce(progress: Progress, model: Any, data: TrainingData, schedule: Schedule, method: str,
              device: str) -> None:
    """The running state with the resolved hyperparameters, and the plan in words."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())
    s = schedule
    hp = {"n_epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate, "method": method,
          "alpha": data.alpha, "temperature": data.temperature, "soft_labels": data.soft, "device": device,
          "total_steps": s.total_steps, "trainable_params": trainable}
    progress.state("running", hyperparameters=hp)
    progress.event(f"{len(data.train)} training and {len(data.valid)} validation examples; {s.epochs} epochs × "
                   f"{s.steps_per_epoch} steps of {s.batch_size} = {s.total_steps} steps; {trainable:,} of "
                   f"{total_params:,} parameters trained.")


def _train_loop(model: Any, pad_id: int, data: TrainingData, schedule: Schedule, spec: dict[str, Any], device: str,
                autocast: Any, method: str, out_dir: Path, seed: int, progress: Progress,
                control: Control) -> tuple[int, int]:
    """Train for the schedule's steps, writing metrics each step, validation each epoch and LoRA
    checkpoints between epochs. Returns (steps done, tokens trained on)."""
    import torch

    s, n = schedule, len(data.train)
    rng = random.Random(seed)
    step, tokens_done, started = 0, 0, time.monotonic()
    step_time = None
    for epoch in range(s.epochs):
        order = list(range(n))
        rng.shuffle(order)
        for b in range(s.steps_per_epoch):
            if step >= s.total_steps:
                break
            control.check(step)
            t0 = time.monotonic()
            batch = _collate([data.train[i] for i in order[b * s.batch_size:(b + 1) * s.batch_size]], pad_id, device)
            loss, ce, kl, has_soft, acc = _forward(model, batch, spec, autocast)
            s.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            s.optimizer.step()
            lr_now = s.scheduler.get_last_lr()[0]
            s.scheduler.step()
            step += 1
            dt_ = time.monotonic() - t0
            step_time = dt_ if step_time is None else 0.8 * step_time + 0.2 * dt_
            tokens_done += batch["tokens"]
            kd = float(kl.detach()[has_soft].mean()) if bool(has_soft.any()) else None
            progress.write("metrics", step=step, total_steps=s.total_steps,
                           epoch=round(epoch + (b + 1) / s.steps_per_epoch, 3),
                           train_loss=round(float(loss), 5), ce_loss=round(float(ce), 5),
                           kd_loss=None if kd is None else round(kd, 5), learning_rate=lr_now,
                           train_mean_token_accuracy=round(float(acc), 4),
                           tokens_per_s=round(batch["tokens"] / dt_, 1) if dt_ > 0 else None,
                           eta_s=round(step_time * (s.total_steps - step), 1),
                           elapsed_s=round(time.monotonic() - started, 2), trained_tokens=tokens_done)
        if data.valid:
            vloss, vacc = _evaluate(model, data.valid, s.batch_size, pad_id, device, spec, autocast)
            progress.write("metrics", step=step, total_steps=s.total_steps, epoch=epoch + 1,
                           valid_loss=round(vloss, 5), valid_mean_token_accuracy=round(vacc, 4))
        if method == "lora" and step < s.total_steps and epoch < s.epochs - 1:
            ck = out_dir / "checkpoints" / f"step-{step}"
            model.save_pretrained(str(ck))
            progress.write("checkpoint", step=step, path=str(ck))
        if step >= s.total_steps:
            break
    return step, tokens_done


def _save_model(model: Any, tok: Any, method: str, merge: bool, out_dir: Path) -> tuple[Path | None, Path | None]:
    """(adapter folder, merged or full model folder), each None when not written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = merged = None
    if method == "lora":
        adapter = out_dir / "adapter"
        model.save_pretrained(str(adapter))
        tok.save_pretrained(str(adapter))
        if merge:
            merged = out_dir / "merged"
            model.merge_and_unload().save_pretrained(str(merged))
            tok.save_pretrained(str(merged))
    else:
        merged = out_dir / "model"
        model.save_pretrained(str(merged))
        tok.save_pretrained(str(merged))
    return adapter, merged


def _write_result(spec: dict[str, Any], out_dir: Path, base: Path, model_type: str, rank: int, adapter: Path | None,
                  merged: Path | None, tokens_done: int, progress: Progress) -> None:
    """SERVE.md with the commands to serve the model, the result line, and the final state."""
    name = spec["fine_tuned_model"]
    recipes = serve_recipes(name, merged=merged, adapter=adapter, base_model=base, model_type=model_type,
                            lora_rank=rank)
    (out_dir / "SERVE.md").write_text(serve_markdown(name, recipes, spec.get("workspace", "WORKSPACE"),
                                                     spec["job_id"]), encoding="utf-8")
    progress.write("result", fine_tuned_model=name, trained_tokens=tokens_done,
                   output={"dir": str(out_dir), "adapter": adapter and str(adapter), "merged": merged and str(merged),
                           "serve": str(out_dir / "SERVE.md")},
                   serve=[r.to_json() for r in recipes])
    progress.event(f"Model ready in {merged or adapter}; {out_dir / 'SERVE.md'} has the commands to serve it "
                   "(vLLM, llama.cpp, Ollama) and register it as a tier.")
    progress.state("succeeded")


def _evaluate(model: Any, data: list[Encoded], bs: int, pad_id: int, device: str, spec: dict[str, Any],
              autocast: Any) -> tuple[float, float]:
    import torch

    model.eval()
    loss_sum = acc_sum = 0.0
    count = 0
    with torch.no_grad():
        for i in range(0, len(data), bs):
            batch = _collate(data[i:i + bs], pad_id, device)
            loss, _ce, _kl, _s, acc = _forward(model, batch, spec, autocast)
            k = len(batch["labels"])
            loss_sum += float(loss) * k
            acc_sum += float(acc) * k
            count += k
    model.train()
    return loss_sum / max(1, count), acc_sum / max(1, count)


def main(job_dir: str | os.PathLike) -> int:
    job_dir = Path(job_dir)
    progress = Progress(job_dir / "progress.jsonl")
    control = Control(job_dir, progress)
    progress.state("validating_files", pid=os.getpid())
    try:
        spec = json.loads((job_dir / "spec.json").read_text(encoding="utf-8"))
        train(spec, job_dir, progress, control)
        return 0
    except Cancelled:
        progress.event("Cancelled; nothing was saved.", level="warn")
        progress.state("cancelled")
        return 0
    except DataError as exc:
        progress.state("failed", error={"code": "invalid_training_file", "message": str(exc)})
        return 1
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            progress.state("failed", error={"code": "disk_full", "message": f"the disk is full ({exc.filename or job_dir}): "
                                            "free some space (a merged model takes about as much as the base model; "
                                            "--no-merge writes the LoRA adapter only) and start the job again"})
            return 1
        traceback.print_exc()
        progress.state("failed", error={"code": "trainer_error", "message": f"{exc} (details in trainer.log)"})
        return 1
    except MemoryError:
        progress.state("failed", error={"code": "out_of_memory", "message": "out of memory: lower the batch size "
                                        "or the maximum length, or use LoRA"})
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the app in words, the traceback goes to trainer.log
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        code = "out_of_memory" if "out of memory" in message.lower() else "trainer_error"
        if code == "out_of_memory":
            message += " (lower the batch size or the maximum length, or use LoRA)"
        progress.state("failed", error={"code": code, "message": message[:2000] + " (details in trainer.log)"})
        return 1
    finally:
        progress.close()
        sys.stdout.flush()
