"""The training loop of the local trainer process (see the package docstring for its files)."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.datasets import default_epochs
from cascade_studio.core.serving import serve_markdown, serve_recipes
from cascade_studio.trainer import checkpoint
from cascade_studio.trainer.batch import collate as _collate  # noqa: F401 - kept importable here
from cascade_studio.trainer.data import CHATML_TEMPLATE, DataError
from cascade_studio.trainer.distributed import Dist, NullProgress
from cascade_studio.trainer.loop import Run, loop_state, train_loop
from cascade_studio.trainer.objectives import (
    DpoObjective,
    SftObjective,
    attach_reference,
    build_preference_data,
    reference_logps,
)
from cascade_studio.trainer.prepare import build_data
from cascade_studio.trainer.progress import Progress


class Cancelled(Exception):
    pass


class Control:
    """Cancel (flag file or SIGTERM) and pause (flag file), checked between steps. With several
    processes every rank takes the same decision at the same step (the flags are OR-ed over the
    ranks), and a pause holds them all in short collectives."""

    def __init__(self, job_dir: Path, progress: Progress, dist: Any = None, device: str = "cpu") -> None:
        self.job_dir, self.progress, self.term = job_dir, progress, False
        self.dist, self.device = dist, device
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, *_: Any) -> None:
        self.term = True

    def _flags(self) -> tuple[bool, bool]:
        flags = [self.term or (self.job_dir / "cancel").exists(), (self.job_dir / "pause").exists()]
        if self.dist is not None:
            flags = self.dist.any_flags(flags, self.device)
        return flags[0], flags[1]

    def check(self, step: int) -> None:
        cancel, pause = self._flags()
        if cancel:
            raise Cancelled
        if pause:
            self.progress.event(f"Paused at step {step}; the model stays in memory until resumed or cancelled.")
            while pause:
                if cancel:
                    raise Cancelled
                time.sleep(0.3)
                cancel, pause = self._flags()
            if cancel:
                raise Cancelled
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


def train(spec: dict[str, Any], job_dir: Path, progress: Progress, control: Control, dist: Dist) -> None:
    progress.event("Loading torch and transformers…")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401 - loaded now, as the event says

    seed = int(spec.get("seed") or 42)
    torch.manual_seed(seed)
    base = _base_model_folder(spec)
    tok = _load_tokenizer(base, progress)
    dpo = spec.get("objective") == "dpo"
    data = build_preference_data(spec, tok, progress) if dpo else build_data(spec, tok, progress)
    device = dist.start(pick_device(spec.get("device", "auto")))
    control.device = device
    method = spec.get("method", "lora")
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    model, model_type, rank = _load_model(spec, base, device, method, bf16, progress)
    schedule = _schedule(spec, model, len(data.train), method, dist.world)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if (bf16 and method == "full") \
        else contextlib.nullcontext
    objective = (DpoObjective if dpo else SftObjective)(spec, tok.pad_token_id, device, autocast)
    run = Run(model, model, objective, data.train, data.valid, schedule, spec, dist, device, method,
              job_dir / "output", seed, progress, control)
    if spec.get("resume_from"):
        state, run.reference = checkpoint.load(spec["resume_from"], model, schedule, loop_state(run, 0, 0), device)
        run.start_step, run.tokens_done = int(state["step"]), int(state["tokens_done"])
        progress.event(f"Resuming at step {run.start_step} of {schedule.total_steps} from {spec['resume_from']} "
                       f"(taken on {state.get('world', 1)} process(es), now {dist.world}).")
    if dpo:
        if run.reference is None:
            progress.event("Computing the reference model's log-probabilities of every answer…")
            run.reference = reference_logps(objective, model, data.train + data.valid, schedule.batch_size, dist)
        elif len(run.reference) != 2 * (len(data.train) + len(data.valid)):
            raise DataError(f"the checkpoint {spec['resume_from']} holds reference log-probs for "
                            f"{len(run.reference) // 2} pairs, not {len(data.train) + len(data.valid)}: resume with "
                            "the same training and validation files")
        else:
            attach_reference(data.train + data.valid, run.reference)
    _announce(progress, model, data, schedule, method, device, dist.world, objective.name)
    run.model = dist.wrap(model, device)
    step, tokens_done = train_loop(run)
    control.check(step)
    dist.barrier()
    if not dist.main:
        return
    progress.event("Training done; saving the model…")
    adapter, merged = _save_model(model, tok, method, bool(spec.get("merge", True)), run.out_dir)
    _write_result(spec, run.out_dir, base, model_type, rank, adapter, merged, tokens_done, progress)


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


def _schedule(spec: dict[str, Any], model: Any, n: int, method: str, world: int = 1) -> Schedule:
    import torch

    epochs = spec.get("n_epochs")
    epochs = default_epochs(n) if epochs in (None, "auto") else int(epochs)
    bs = spec.get("batch_size")
    # the global batch, split over the processes (auto: at least one example for each)
    bs = max(world, min(8, n // 16 or 1)) if bs in (None, "auto") else int(bs)
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


def _announce(progress: Progress, model: Any, data: Any, schedule: Schedule, method: str, device: str,
              world: int, objective: str) -> None:
    """The running state with the resolved hyperparameters, and the plan in words."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())
    s = schedule
    hp = {"n_epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate, "method": method,
          "objective": objective, "device": device, "devices": world, "total_steps": s.total_steps,
          "trainable_params": trainable}
    hp.update({"beta": data.beta} if objective == "dpo" else
              {"alpha": data.alpha, "temperature": data.temperature, "soft_labels": data.soft})
    progress.state("running", hyperparameters=hp)
    unit = "pairs" if objective == "dpo" else "examples"
    where = f" on {world} processes ({-(-s.batch_size // world)} a step each)" if world > 1 else ""
    progress.event(f"{len(data.train)} training and {len(data.valid)} validation {unit}; {s.epochs} epochs × "
                   f"{s.steps_per_epoch} steps of {s.batch_size} = {s.total_steps} steps{where}; {trainable:,} of "
                   f"{total_params:,} parameters trained.")
    if s.batch_size < world:
        progress.event(f"The batch size ({s.batch_size}) is below the number of processes ({world}): some of them "
                       "idle every step; raise --batch-size.", level="warn")


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


def main(job_dir: str | os.PathLike) -> int:
    job_dir = Path(job_dir)
    dist = Dist()
    progress: Any = Progress(job_dir / "progress.jsonl") if dist.main else NullProgress()  # one progress stream
    control = Control(job_dir, progress, dist)
    progress.state("validating_files", pid=os.getpid())
    try:
        spec = json.loads((job_dir / "spec.json").read_text(encoding="utf-8"))
        train(spec, job_dir, progress, control, dist)
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
        dist.stop()
        sys.stdout.flush()
