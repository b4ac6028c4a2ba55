"""The KD loss against a hand computation on a small example."""

import math

import numpy as np
import pytest

from cascade_studio.core.distillation import kd_loss, same_tokenizer, teacher_soft_targets


def test_soft_targets_drop_and_spread():
    top = [(0, math.log(0.6)), (2, math.log(0.3))]
    drop = teacher_soft_targets(top, 4, temperature=1.0)
    assert drop.tolist() == pytest.approx([2 / 3, 0, 1 / 3, 0])
    hot = teacher_soft_targets(top, 4, temperature=2.0)  # p ∝ sqrt(p)
    s = math.sqrt(0.6) + math.sqrt(0.3)
    assert hot.tolist() == pytest.approx([math.sqrt(0.6) / s, 0, math.sqrt(0.3) / s, 0])
    spread = teacher_soft_targets(top, 4, temperature=1.0, mode="spread")
    assert spread.tolist() == pytest.approx([0.6, 0.05, 0.3, 0.05])
    with pytest.raises(ValueError):
        teacher_soft_targets(top, 4, 1.0, mode="other")


def test_kd_loss_matches_hand_computation():
    logits = np.array([[2.0, 1.0, 0.0]])
    labels = np.array([0])
    p = np.array([[0.7, 0.2, 0.1]])
    alpha, T = 0.5, 2.0
    # by hand
    z = np.exp([2.0, 1.0, 0.0])
    ce = -math.log(z[0] / z.sum())
    zt = np.exp(np.array([2.0, 1.0, 0.0]) / T)
    q = zt / zt.sum()
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p[0], q, strict=True))
    expected = alpha * ce + (1 - alpha) * T * T * kl
    total, ce_part, kl_part = kd_loss(logits, labels, p, alpha, T)
    assert ce_part == pytest.approx(ce) and kl_part == pytest.approx(kl) and total == pytest.approx(expected)
    hard_only, ce2, kl2 = kd_loss(logits, labels, None, alpha, T)  # no shared tokenizer: hard labels only
    assert hard_only == pytest.approx(ce) and kl2 == 0.0


def test_same_tokenizer():
    assert same_tokenizer({"a": 0}, {"a": 0}) and not same_tokenizer({"a": 0}, {"a": 1})
    assert not same_tokenizer(None, {"a": 0})
