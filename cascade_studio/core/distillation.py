"""Knowledge-distillation targets and loss (Hinton et al. 2015), for the local trainer.

    L = a * CE(hard labels) + (1 - a) * T^2 * KL(teacher_T || student_T)

The teacher's distribution at a position comes from its recorded top_logprobs (top-k only):
renormalised over the k tokens (mode "drop"), or with the remaining probability mass spread
evenly over the rest of the vocabulary (mode "spread"). numpy only; the trainer applies the same
formulas to tensors.
"""

from __future__ import annotations

import numpy as np


def teacher_soft_targets(top: list[tuple[int, float]], vocab_size: int, temperature: float,
                         mode: str = "drop") -> np.ndarray:
    """A full-vocabulary distribution at temperature T from top-k (token id, logprob) pairs."""
    ids = np.array([i for i, _ in top], dtype=int)
    logp = np.array([lp for _, lp in top], dtype=float)
    target = np.zeros(vocab_size)
    if mode == "drop":
        scaled = logp / temperature
        w = np.exp(scaled - scaled.max())
        target[ids] = w / w.sum()
        return target
    if mode != "spread":
        raise ValueError("mode is 'drop' or 'spread'")
    mass = np.exp(logp)
    rest = max(0.0, 1.0 - mass.sum())
    others = vocab_size - len(ids)
    full = np.full(vocab_size, rest / others if others else 0.0)
    full[ids] = mass
    full = np.maximum(full, 1e-12)
    scaled = np.log(full) / temperature
    w = np.exp(scaled - scaled.max())
    return w / w.sum()


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kd_loss(student_logits: np.ndarray, hard_labels: np.ndarray, soft_targets: np.ndarray | None,
            alpha: float, temperature: float) -> tuple[float, float, float]:
    """(total, cross-entropy part, KL part) averaged over positions. Without soft targets (teacher
    and student do not share a tokenizer) the loss is the hard-label cross-entropy alone."""
    n = student_logits.shape[0]
    ce = float(-log_softmax(student_logits)[np.arange(n), hard_labels].mean())
    if soft_targets is None:
        return ce, ce, 0.0
    log_q = log_softmax(student_logits, temperature)
    p = soft_targets
    kl = float(np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0), axis=-1).mean())
    total = alpha * ce + (1 - alpha) * temperature ** 2 * kl
    return total, ce, kl


def same_tokenizer(teacher_vocab: dict[str, int] | None, student_vocab: dict[str, int]) -> bool:
    """Soft labels are only meaningful when token ids mean the same on both sides."""
    return teacher_vocab is not None and teacher_vocab == student_vocab

