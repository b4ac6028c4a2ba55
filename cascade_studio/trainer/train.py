"""The training loop of the local trainer process (see the package docstring for its files)."""

from __future__ import annotations

import errno
import json
import math
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from cascade_studio.core.datasets import default_epochs
from cascade_studio.core.distillation import SHARED_TOKENIZER_MIN
from cascade_studio.core.serving import serve_markdown, serve_recipes
from cascade_studio.trainer.data import (
    CHATML_TEMPLATE,
    DataError,
    Encoded,
    TeacherTokens,
    attach_soft_labels,
    encode_example,
    read_jsonl,
)
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


def train(spec: dict[str, Any], job_dir: Path, progress: Progress, control: Control) -> None:
    progress.event("Loading torch and transformers…")
    import contextlib

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seed = int(spec.get("seed") or 42)
    torch.manual_seed(seed)
    base = Path(spec["base_model"]).expanduser()
    if not (base / "config.json").is_file():
        raise DataError(f"{base} is not a Hugging Face model folder (no config.json). Point the base model at a "
                        "local folder with config.json, the tokenizer files and the weights (nothing is downloaded).")
    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
        progress.event("The base model has no chat template; using ChatML with Hermes-style tool calls (saved "
                       "with the output, so servers render prompts the way the model was trained).", level="warn")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    max_length = int(spec.get("max_length") or 2048)

    def encode_file(path: str | None, logprobs_path: str | None) -> tuple[list[Encoded], dict[str, int]]:
        if not path:
            return [], {}
        rows = read_jsonl(Path(path))
        teacher_rows = None
        if logprobs_path and Path(logprobs_path).exists():
            teacher_rows = read_jsonl(Path(logprobs_path))
            if len(teacher_rows) != len(rows):
                progress.event(f"{Path(logprobs_path).name} has {len(teacher_rows)} lines for {len(rows)} examples; "
                               "ignoring it (hard labels only).", level="warn")
                teacher_rows = None
        out, stats = [], {"skipped": 0, "truncated": 0, "placed": 0, "teacher_tokens": 0, "with_logprobs": 0}
        mapper = TeacherTokens(tok)
        for n, row in enumerate(rows, 1):
            try:
                enc = encode_example(tok, row, max_length)
            except DataError as exc:
                raise DataError(f"{path}:{n}: {exc}") from None
            except Exception as exc:  # the chat template refused the example
                raise DataError(f"{path}:{n}: the chat template cannot render this example ({exc})") from None
            if enc is None:
                stats["skipped"] += 1
                continue
            stats["truncated"] += enc.truncated
            if teacher_rows is not None and spec.get("soft_labels", "auto") != "off":
                content = (teacher_rows[n - 1] or {}).get("content") if isinstance(teacher_rows[n - 1], dict) else None
                if content:
                    stats["with_logprobs"] += 1
                    placed, total = attach_soft_labels(enc, content, mapper)
                    stats["placed"] += placed
                    stats["teacher_tokens"] += total
            out.append(enc)
        return out, stats

    train_set, tstats = encode_file(spec["training_file"], spec.get("teacher_logprobs"))
    valid_set, vstats = encode_file(spec.get("validation_file"), spec.get("validation_teacher_logprobs"))
    if not train_set:
        raise DataError("no example in the training file has an assistant message to train on")
    if tstats["skipped"]:
        progress.event(f"{tstats['skipped']} examples have nothing to train on with this chat template; skipped.",
                       level="warn")
    if tstats["truncated"]:
        progress.event(f"{tstats['truncated']} examples are longer than {max_length} tokens and were truncated.",
                       level="warn")

    alpha, T = float(spec.get("alpha", 0.5)), float(spec.get("temperature", 2.0))
    share = tstats["placed"] / tstats["teacher_tokens"] if tstats["teacher_tokens"] else 0.0
    soft = share >= SHARED_TOKENIZER_MIN
    if spec.get("soft_labels", "auto") == "off":
        progress.event("Soft labels are off in the settings: training on hard labels (cross-entropy) only.")
    elif not spec.get("teacher_logprobs") or not tstats["with_logprobs"]:
        progress.event("No teacher logprobs for this dataset: training on hard labels (cross-entropy) only; "
                       "a and T are not used. Collect the teacher with logprobs and rebuild the dataset for "
                       "soft labels.")
    elif not soft:
        progress.event(f"Teacher and student do not share a tokenizer: only {share:.0%} of the teacher's "
                       f"{tstats['teacher_tokens']:,} recorded tokens fall on the student's tokens in order (soft "
                       f"labels need {SHARED_TOKENIZER_MIN:.0%}). Training on hard labels (cross-entropy) only.",
                       level="warn")
    else:
        progress.event(f"Soft labels from the teacher's top_logprobs on {share:.1%} of its "
                       f"{tstats['teacher_tokens']:,} tokens: loss = {alpha:g}·CE + {1 - alpha:g}·T²·KL with "
                       f"T = {T:g} (remaining mass: {spec.get('mass', 'drop')}).")
    if not soft:
        for e in (*train_set, *valid_set):
            e.drop_soft()

    device = pick_device(spec.get("device", "auto"))
    method = spec.get("method", "lora")
    cuda = device.startswith("cuda")
    bf16 = cuda and torch.cuda.is_bf16_supported()
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
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())

    n = len(train_set)
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
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if (bf16 and method == "full") \
        else contextlib.nullcontext
    hp = {"n_epochs": epochs, "batch_size": bs, "learning_rate": lr, "method": method, "alpha": alpha,
          "temperature": T, "soft_labels": soft, "device": device, "total_steps": total, "trainable_params": trainable}
    progress.state("running", hyperparameters=hp)
    progress.event(f"{n} training and {len(valid_set)} validation examples; {epochs} epochs × {steps_per_epoch} "
                   f"steps of {bs} = {total} steps; {trainable:,} of {total_params:,} parameters trained.")

    out_dir = job_dir / "output"
    rng = random.Random(seed)
    step, tokens_done, started = 0, 0, time.monotonic()
    step_time = None
    for epoch in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            if step >= total:
                break
            control.check(step)
            t0 = time.monotonic()
            batch = _collate([train_set[i] for i in order[b * bs:(b + 1) * bs]], tok.pad_token_id, device)
            loss, ce, kl, has_soft, acc = _forward(model, batch, spec, autocast)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optim.step()
            lr_now = sched.get_last_lr()[0]
            sched.step()
            step += 1
            dt_ = time.monotonic() - t0
            step_time = dt_ if step_time is None else 0.8 * step_time + 0.2 * dt_
            tokens_done += batch["tokens"]
            kd = float(kl.detach()[has_soft].mean()) if bool(has_soft.any()) else None
            progress.write("metrics", step=step, total_steps=total, epoch=round(epoch + (b + 1) / steps_per_epoch, 3),
                           train_loss=round(float(loss), 5), ce_loss=round(float(ce), 5),
                           kd_loss=None if kd is None else round(kd, 5), learning_rate=lr_now,
                           train_mean_token_accuracy=round(float(acc), 4),
                           tokens_per_s=round(batch["tokens"] / dt_, 1) if dt_ > 0 else None,
                           eta_s=round(step_time * (total - step), 1), elapsed_s=round(time.monotonic() - started, 2),
                           trained_tokens=tokens_done)
        if valid_set:
            vloss, vacc = _evaluate(model, valid_set, bs, tok.pad_token_id, device, spec, autocast)
            progress.write("metrics", step=step, total_steps=total, epoch=epoch + 1, valid_loss=round(vloss, 5),
                           valid_mean_token_accuracy=round(vacc, 4))
        if method == "lora" and step < total and epoch < epochs - 1:
            ck = out_dir / "checkpoints" / f"step-{step}"
            model.save_pretrained(str(ck))
            progress.write("checkpoint", step=step, path=str(ck))
        if step >= total:
            break

    control.check(step)
    progress.event("Training done; saving the model…")
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = merged = None
    if method == "lora":
        adapter = out_dir / "adapter"
        model.save_pretrained(str(adapter))
        tok.save_pretrained(str(adapter))
        if spec.get("merge", True):
            merged = out_dir / "merged"
            model.merge_and_unload().save_pretrained(str(merged))
            tok.save_pretrained(str(merged))
    else:
        merged = out_dir / "model"
        model.save_pretrained(str(merged))
        tok.save_pretrained(str(merged))
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
