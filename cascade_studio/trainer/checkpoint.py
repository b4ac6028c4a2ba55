"""Resumable checkpoints: the trained weights, the optimizer and its schedule, and where the loop
was (step, tokens). Every process holds the same replica, so rank 0 writes one file that any number
of processes can resume from: a job stopped on 8 GPUs goes on on 1, or the other way round, as long
as the global batch, the dataset and the method are the same (the steps are then the same steps)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cascade_studio.trainer.data import DataError

FILE = "resume.pt"
# what must match for a resumed job to take the steps the stopped one would have taken
MUST_MATCH = ("objective", "method", "global_batch", "n_train", "total_steps", "seed")


def save(folder: Path, model: Any, schedule: Any, state: dict[str, Any], reference: list[float] | None) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    params = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    tmp = folder / (FILE + ".tmp")
    torch.save({"params": params, "optimizer": schedule.optimizer.state_dict(),
                "scheduler": schedule.scheduler.state_dict(), "state": state, "reference": reference}, tmp)
    os.replace(tmp, folder / FILE)  # a kill while saving leaves the previous checkpoint whole
    return folder / FILE


def find(path: str | os.PathLike) -> Path:
    """The checkpoint file of `path`: a checkpoint folder, or the file itself."""
    p = Path(path)
    f = p / FILE if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"{path} holds no resumable checkpoint ({FILE}); checkpoints are written every "
                        "--checkpoint-every steps and, with LoRA, after each epoch")
    return f


def load(path: str | os.PathLike, model: Any, schedule: Any, expected: dict[str, Any],
         device: str) -> tuple[dict[str, Any], list[float] | None]:
    """Put the checkpoint's weights, optimizer and schedule in place; returns (its loop state, the
    DPO reference log-probs it kept). Refuses one taken with another dataset, batch or method."""
    import torch

    saved = torch.load(find(path), map_location=device, weights_only=False)
    state = saved["state"]
    differ = [f"{k} {state.get(k)!r} (now {expected.get(k)!r})" for k in MUST_MATCH if state.get(k) != expected.get(k)]
    if differ:
        raise DataError(f"the checkpoint {path} was taken with {', '.join(differ)}: resume with the same dataset, "
                        "batch size (the global one; the number of devices may differ), epochs, seed and method")
    params = dict(model.named_parameters())
    missing = [n for n in saved["params"] if n not in params]
    if missing:
        raise DataError(f"the checkpoint {path} does not fit this model ({len(missing)} weights unknown, e.g. "
                        f"{missing[0]}): resume from the same base model")
    with torch.no_grad():
        for name, value in saved["params"].items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    schedule.optimizer.load_state_dict(saved["optimizer"])
    schedule.scheduler.load_state_dict(saved["scheduler"])
    return state, saved.get("reference")
