"""Batches: examples padded into tensors, and the model's logits taken at the target positions only."""

from __future__ import annotations

from typing import Any

from cascade_studio.trainer.data import Encoded


def collate(batch: list[Encoded], pad_id: int, device: str) -> dict[str, Any]:
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


def target_logits(model: Any, batch: dict[str, Any], autocast: Any) -> Any:
    """The logits that predict the batch's targets, [N, V] in the order of batch["labels"]."""
    with autocast():
        try:  # logits only where there are targets (a long tool list costs no vocabulary-sized rows)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           logits_to_keep=batch["keep"]).logits
            return logits[batch["rows"], batch["cols"]]
        except TypeError:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return logits[batch["rows"], batch["keep"][batch["cols"]]]
