"""Data-parallel training on several devices or machines, on torch.distributed as `torchrun` starts
it (the app launches `python -m torch.distributed.run ... -m cascade_studio.trainer JOB_DIR`).

Every process holds the whole model; each step's global batch is split among them (example i of
the batch goes to rank i mod world), and DistributedDataParallel sums the gradients. A rank's loss
is its share of the batch's sum divided by the batch's global count (target tokens, or pairs for
DPO), so one process and N processes take the same step on the same global batch. Rank 0 alone
writes the progress file and the checkpoints; the others write nothing. Without torchrun's
environment (WORLD_SIZE unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any


class NullProgress:
    """The progress file of ranks other than 0: one progress stream per job."""

    def write(self, kind: str, **fields: Any) -> None:
        pass

    def state(self, status: str, **fields: Any) -> None:
        pass

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        pass

    def close(self) -> None:
        pass


class Dist:
    """This process's place among the training processes."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE") or 1)
        self.rank = int(os.environ.get("RANK") or 0)
        self.local_rank = int(os.environ.get("LOCAL_RANK") or 0)
        self.started = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def start(self, device: str) -> str:
        """Join the process group (NCCL on CUDA, gloo elsewhere); returns this rank's device."""
        if not self.active:
            return device
        import torch
        import torch.distributed as tdist

        if device.startswith("cuda"):
            if torch.cuda.device_count() <= self.local_rank:
                from cascade_studio.trainer.data import DataError

                raise DataError(f"{os.environ.get('LOCAL_WORLD_SIZE', self.world)} processes on this machine but "
                                f"torch sees {torch.cuda.device_count()} CUDA GPU(s): lower --devices")
            device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(device)
            backend = "nccl"
        else:
            backend = "gloo"
        # a pause holds every rank in short collectives (see sync_flags), so the timeout bounds a dead peer only
        tdist.init_process_group(backend, timeout=dt.timedelta(minutes=30))
        self.started = True
        return device

    def stop(self) -> None:
        if self.started:
            import torch.distributed as tdist

            tdist.destroy_process_group()
            self.started = False

    # -- collectives (each a no-op for one process) ------------------------------------------------
    def sum(self, values: list[float], device: str) -> list[float]:
        """Element-wise sum over the ranks, in float64 (counts and loss sums)."""
        if not self.active:
            return list(values)
        import torch
        import torch.distributed as tdist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        tdist.all_reduce(t)
        return t.tolist()

    def sum_tensor(self, t: Any) -> Any:
        if self.active:
            import torch.distributed as tdist

            tdist.all_reduce(t)
        return t

    def any_flags(self, flags: list[bool], device: str) -> list[bool]:
        """Element-wise OR over the ranks, so every rank takes the same branch (cancel, pause)."""
        if not self.active:
            return flags
        return [v > 0 for v in self.sum([float(f) for f in flags], device)]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as tdist

            tdist.barrier()

    def shard(self, items: list[Any]) -> list[Any]:
        return items[self.rank::self.world] if self.active else items

    def wrap(self, model: Any, device: str) -> Any:
        """The model as DistributedDataParallel (gradients summed over the ranks, bucketed and
        overlapped with the backward pass); itself for one process."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(device.split(":")[1])] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    @staticmethod
    def unwrap(model: Any) -> Any:
        return getattr(model, "module", model) if type(model).__name__ == "DistributedDataParallel" else model

