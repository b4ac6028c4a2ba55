"""What a training step minimises: the distillation loss on chat examples (SFT with the teacher's
soft labels) or DPO on preference pairs. Each objective returns SUMS over its share of a batch (the
loss and the figures it logs) and the count they are averaged over (target tokens; pairs), so the
loop can divide by the global count whether the batch is on one process or split over several."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.preference import SIDES, as_chat_pair, is_preference_row
from cascade_studio.trainer.batch import collate, target_logits
from cascade_studio.trainer.data import DataError, Encoded, encode_example, read_jsonl
from cascade_studio.trainer.progress import Progress

DEFAULT_BETA = 0.1  # DPO's beta (Together's default too)


class SftObjective:
    """Per target token: a·CE + (1 - a)·T²·KL where the teacher's soft labels exist, CE elsewhere."""

    name = "sft"
    # the order of the sums: loss, ce, kl (on soft tokens), soft tokens, correct tokens, target tokens, all tokens
    COUNT = 5

    def __init__(self, spec: dict[str, Any], pad_id: int, device: str, autocast: Any) -> None:
        self.alpha, self.T = float(spec.get("alpha", 0.5)), float(spec.get("temperature", 2.0))
        self.mass = spec.get("mass", "drop")
        self.pad_id, self.device, self.autocast = pad_id, device, autocast

    def count(self, items: list[Encoded]) -> int:
        return sum(int(e.labels[1:].sum()) for e in items)

    def forward(self, model: Any, items: list[Encoded]) -> tuple[Any, list[Any]]:
        from cascade_studio.trainer.loss import kd_token_losses

        batch = collate(items, self.pad_id, self.device)
        picked = target_logits(model, batch, self.autocast)
        total, ce, kl = kd_token_losses(picked, batch["labels"], batch["soft_ids"], batch["soft_lp"],
                                        batch["has_soft"], self.alpha, self.T, self.mass)
        has = batch["has_soft"]
        correct = (picked.argmax(-1) == batch["labels"]).sum()
        loss_sum = total.sum()
        sums = [loss_sum, ce.sum(), kl[has].sum(), has.sum(), correct, len(batch["labels"]), batch["tokens"]]
        return loss_sum, sums

    @staticmethod
    def train_metrics(s: list[float]) -> dict[str, Any]:
        n = max(1.0, s[5])
        return {"train_loss": round(s[0] / n, 5), "ce_loss": round(s[1] / n, 5),
                "kd_loss": round(s[2] / s[3], 5) if s[3] else None,
                "train_mean_token_accuracy": round(s[4] / n, 4)}

    @staticmethod
    def valid_metrics(s: list[float]) -> dict[str, Any]:
        n = max(1.0, s[5])
        return {"valid_loss": round(s[0] / n, 5), "valid_mean_token_accuracy": round(s[4] / n, 4)}


@dataclass
class Pair:
    """One preference pair encoded, with the frozen reference's sequence log-probs once known."""

    chosen: Encoded
    rejected: Encoded
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0


class DpoObjective:
    """-log σ(β·[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]) per pair; the
    reference is the starting model, frozen: its log-probs are computed once before training."""

    name = "dpo"
    # the order of the sums: loss, chosen reward, rejected reward, pairs ranked right, pairs, all tokens
    COUNT = 4

    def __init__(self, spec: dict[str, Any], pad_id: int, device: str, autocast: Any) -> None:
        self.beta = float(spec.get("dpo_beta") or DEFAULT_BETA)
        self.pad_id, self.device, self.autocast = pad_id, device, autocast

    def count(self, items: list[Pair]) -> int:
        return len(items)

    def logps(self, model: Any, items: list[Pair]) -> tuple[Any, Any, int]:
        """(policy log-probs of the chosen answers, of the rejected ones, tokens in the batch)."""
        from cascade_studio.trainer.loss import sequence_logps

        n = len(items)
        batch = collate([p.chosen for p in items] + [p.rejected for p in items], self.pad_id, self.device)
        lp = sequence_logps(target_logits(model, batch, self.autocast), batch["labels"], batch["rows"], 2 * n)
        return lp[:n], lp[n:], batch["tokens"]

    def forward(self, model: Any, items: list[Pair]) -> tuple[Any, list[Any]]:
        import torch

        from cascade_studio.trainer.loss import dpo_losses

        chosen, rejected, tokens = self.logps(model, items)
        ref_c = torch.tensor([p.ref_chosen for p in items], dtype=chosen.dtype, device=chosen.device)
        ref_r = torch.tensor([p.ref_rejected for p in items], dtype=chosen.dtype, device=chosen.device)
        loss, cr, rr = dpo_losses(chosen, rejected, ref_c, ref_r, self.beta)
        loss_sum = loss.sum()
        return loss_sum, [loss_sum, cr.sum(), rr.sum(), (cr > rr).sum(), len(items), tokens]

    @staticmethod
    def train_metrics(s: list[float]) -> dict[str, Any]:
        n = max(1.0, s[4])
        return {"train_loss": round(s[0] / n, 5), "chosen_reward": round(s[1] / n, 5),
                "rejected_reward": round(s[2] / n, 5), "reward_margin": round((s[1] - s[2]) / n, 5),
                "reward_accuracy": round(s[3] / n, 4)}

    @staticmethod
    def valid_metrics(s: list[float]) -> dict[str, Any]:
        n = max(1.0, s[4])
        return {"valid_loss": round(s[0] / n, 5), "valid_reward_accuracy": round(s[3] / n, 4)}


def encode_pairs(path: str | None, tok: Any, max_length: int) -> tuple[list[Pair], int]:
    """A preference JSONL file's pairs encoded (each answer after the shared prompt); and how many
    were skipped (an answer with nothing to train on)."""
    if not path:
        return [], 0
    out, skipped = [], 0
    for n, row in enumerate(read_jsonl(Path(path)), 1):
        if not is_preference_row(row):
            raise DataError(f"{path}:{n}: not a preference pair (input, preferred_output, non_preferred_output); "
                            "build one with `dataset build --format preference`")
        try:
            sides = as_chat_pair(row)
            chosen, rejected = (encode_example(tok, e, max_length) for e in sides)
        except (KeyError, IndexError, TypeError) as exc:
            raise DataError(f"{path}:{n}: {' or '.join(SIDES)} is not one assistant message ({exc})") from None
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
        except Exception as exc:  # the chat template refused the example
            raise DataError(f"{path}:{n}: the chat template cannot render this pair ({exc})") from None
        if chosen is None or rejected is None:
            skipped += 1
            continue
        out.append(Pair(chosen, rejected))
    return out, skipped


@dataclass
class PreferenceData:
    train: list[Pair]
    valid: list[Pair]
    beta: float


def build_preference_data(spec: dict[str, Any], tok: Any, progress: Progress) -> PreferenceData:
    max_length = int(spec.get("max_length") or 2048)
    train, skipped = encode_pairs(spec["training_file"], tok, max_length)
    valid, _ = encode_pairs(spec.get("validation_file"), tok, max_length)
    if not train:
        raise DataError("no pair in the training file has answers to train on")
    if skipped:
        progress.event(f"{skipped} pairs have an answer with nothing to train on with this chat template; skipped.",
                       level="warn")
    truncated = sum(p.chosen.truncated or p.rejected.truncated for p in train)
    if truncated:
        progress.event(f"{truncated} pairs are longer than {max_length} tokens and were truncated.", level="warn")
    beta = float(spec.get("dpo_beta") or DEFAULT_BETA)
    progress.event(f"DPO on {len(train)} preference pairs (β = {beta:g}); the reference is the starting model, "
                   "frozen (its log-probabilities are computed once, before the first step).")
    return PreferenceData(train, valid, beta)


def reference_logps(objective: DpoObjective, model: Any, pairs: list[Pair], batch_size: int, dist: Any) -> list[float]:
    """The frozen reference's log-probs of every pair's answers (eval mode, no gradients), split
    over the ranks and summed back, attached to the pairs; returned flat [c0, r0, c1, r1, ...]."""
    import torch

    values = torch.zeros(2 * len(pairs), dtype=torch.float64, device=objective.device)
    mine = list(range(len(pairs)))[dist.rank::dist.world] if dist.active else list(range(len(pairs)))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), batch_size):
            idx = mine[i:i + batch_size]
            chosen, rejected, _ = objective.logps(model, [pairs[j] for j in idx])
            at = torch.tensor(idx, device=objective.device)
            values[2 * at] = chosen.double()
            values[2 * at + 1] = rejected.double()
    model.train(was_training)
    flat = dist.sum_tensor(values).tolist()
    attach_reference(pairs, flat)
    return flat


def attach_reference(pairs: list[Pair], flat: list[float]) -> None:
    for k, p in enumerate(pairs):
        p.ref_chosen, p.ref_rejected = flat[2 * k], flat[2 * k + 1]
