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



# -- aligning recorded teacher tokens with the student's tokenization ---------------------------
# Soft labels need the teacher's token at each position to be the student's token there. The
# trainer maps each recorded teacher token (text) to a student token id, then looks for the
# teacher's whole sequence inside the student's target tokens. Below this share of teacher tokens
# placed, the tokenizers are taken as different and training uses hard labels only.
SHARED_TOKENIZER_MIN = 0.95


def find_span(target: list[int], teacher: list[int], start: int = 0, end: int | None = None) -> int | None:
    """The first i in [start, end) where target[i:i+len(teacher)] == teacher, or None."""
    n, end = len(teacher), len(target) if end is None else end
    if n == 0:
        return None
    first = teacher[0]
    for i in range(start, end - n + 1):
        if target[i] == first and target[i:i + n] == teacher:
            return i
    return None


def merge_top(pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Teacher alternatives that map to the same student token add up (log-sum-exp)."""
    acc: dict[int, float] = {}
    for tid, lp in pairs:
        acc[tid] = lp if tid not in acc else float(np.logaddexp(acc[tid], lp))
    return sorted(acc.items(), key=lambda x: -x[1])
