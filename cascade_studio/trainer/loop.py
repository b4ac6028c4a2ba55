"""The step loop, the same on one process and on several (trainer.distributed): each step takes the
next global batch, this process its share of it, and divides its loss sum by the batch's global
count, so the optimizer step does not depend on how many processes share the batch."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_studio.trainer import checkpoint


@dataclass
class Run:
    """What the loop needs: the model (as wrapped for several processes, and itself), the objective
    and its items, the schedule, and where to report."""

    model: Any
    base: Any  # the unwrapped model: evaluation, checkpoints, saving
    objective: Any
    train: list[Any]
    valid: list[Any]
    schedule: Any
    spec: dict[str, Any]
    dist: Any
    device: str
    method: str
    out_dir: Path
    seed: int
    progress: Any
    control: Any
    reference: list[float] | None = None  # DPO: the frozen reference's log-probs, kept in checkpoints
    start_step: int = 0
    tokens_done: int = 0
    checkpoints: list[int] = field(default_factory=list)


def train_loop(r: Run) -> tuple[int, int]:
    """Train for the schedule's steps from r.start_step, writing metrics each step, validation each
    epoch, resumable checkpoints every `checkpoint_every` steps and (LoRA) between epochs. Returns
    (steps done, tokens trained on)."""
    import torch

    s, n = r.schedule, len(r.train)
    rng = random.Random(r.seed)
    step, tokens_done, started = r.start_step, r.tokens_done, time.monotonic()
    every = int(r.spec.get("checkpoint_every") or 0)
    params = [p for p in r.model.parameters() if p.requires_grad]
    step_time = None
    for epoch in range(s.epochs):
        order = list(range(n))
        rng.shuffle(order)  # shuffled on every epoch, done or skipped: a resumed job sees the same batches
        done_here = step - epoch * s.steps_per_epoch
        if done_here >= s.steps_per_epoch:
            continue
        for b in range(max(0, done_here), s.steps_per_epoch):
            if step >= s.total_steps:
                break
            r.control.check(step)
            t0 = time.monotonic()
            batch = [r.train[i] for i in order[b * s.batch_size:(b + 1) * s.batch_size]]
            mine, weight = r.dist.shard(batch), 1.0
            if not mine:  # fewer examples than processes: this one runs a step that counts for nothing
                mine, weight = batch[:1], 0.0
            count = r.dist.sum([weight * r.objective.count(mine)], r.device)[0]
            loss_sum, sums = r.objective.forward(r.model, mine)
            loss = loss_sum * (weight * r.dist.world / max(count, 1.0))
            s.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            s.optimizer.step()
            lr_now = s.scheduler.get_last_lr()[0]
            s.scheduler.step()
            step += 1
            totals = r.dist.sum([weight * float(x) for x in sums], r.device)
            dt_ = time.monotonic() - t0
            step_time = dt_ if step_time is None else 0.8 * step_time + 0.2 * dt_
            tokens_done += int(totals[-1])
            r.progress.write("metrics", step=step, total_steps=s.total_steps,
                             epoch=round(epoch + (b + 1) / s.steps_per_epoch, 3), **r.objective.train_metrics(totals),
                             learning_rate=lr_now, tokens_per_s=round(totals[-1] / dt_, 1) if dt_ > 0 else None,
                             eta_s=round(step_time * (s.total_steps - step), 1),
                             elapsed_s=round(time.monotonic() - started, 2), trained_tokens=tokens_done)
            if every and step % every == 0 and step < s.total_steps:
                save_checkpoint(r, step, tokens_done)
        if r.valid:
            r.progress.write("metrics", step=step, total_steps=s.total_steps, epoch=epoch + 1, **evaluate(r))
        if r.method == "lora" and step < s.total_steps and epoch < s.epochs - 1 and step not in r.checkpoints:
            save_checkpoint(r, step, tokens_done)
        if step >= s.total_steps:
            break
    return step, tokens_done


def loop_state(r: Run, step: int, tokens_done: int) -> dict[str, Any]:
    s = r.schedule
    return {"step": step, "tokens_done": tokens_done, "objective": r.objective.name, "method": r.method,
            "global_batch": s.batch_size, "n_train": len(r.train), "total_steps": s.total_steps, "seed": r.seed,
            "world": r.dist.world}


def save_checkpoint(r: Run, step: int, tokens_done: int) -> None:
    """Rank 0 writes the checkpoint (every replica is the same); LoRA also as an adapter folder."""
    r.checkpoints.append(step)
    if not r.dist.main:
        return
    ck = r.out_dir / "checkpoints" / f"step-{step}"
    if r.method == "lora":
        r.base.save_pretrained(str(ck))
    checkpoint.save(ck, r.base, r.schedule, loop_state(r, step, tokens_done), r.reference)
    r.progress.write("checkpoint", step=step, path=str(ck), resumable=True)


def evaluate(r: Run) -> dict[str, Any]:
    """The objective's validation figures over the validation items, split over the processes."""
    import torch

    model, bs = r.base, r.schedule.batch_size
    mine = r.dist.shard(r.valid)
    sums: list[float] | None = None
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), bs):
            _, part = r.objective.forward(model, mine[i:i + bs])
            part = [float(x) for x in part]
            sums = part if sums is None else [a + b for a, b in zip(sums, part, strict=True)]
    model.train()
    width = {"sft": 7, "dpo": 6}[r.objective.name]
    return r.objective.valid_metrics(r.dist.sum(sums or [0.0] * width, r.device))
