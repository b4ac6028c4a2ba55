"""The trainer's tensor KD loss equals core's reference (itself checked by hand in
tests/core/test_distillation.py) and a hand computation, and its gradients stay finite."""

import math

import numpy as np
import pytest

from cascade_studio.core.distillation import kd_loss, teacher_soft_targets


def _sparse(tops, K):
    import torch

    ids = torch.zeros((len(tops), K), dtype=torch.long)
    lp = torch.full((len(tops), K), float("-inf"))
    for n, top in enumerate(tops):
        ids[n, :len(top)] = torch.tensor([t for t, _ in top])
        lp[n, :len(top)] = torch.tensor([v for _, v in top])
    return ids, lp


def test_hand_computation():
    import torch

    from cascade_studio.trainer.loss import kd_token_losses

    logits = torch.tensor([[2.0, 1.0, 0.0]])
    top = [(0, math.log(0.7)), (1, math.log(0.2)), (2, math.log(0.1))]
    ids, lp = _sparse([top], 3)
    alpha, T = 0.5, 2.0
    z = np.exp([2.0, 1.0, 0.0])
    ce = -math.log(z[0] / z.sum())
    p = np.array([0.7, 0.2, 0.1]) ** (1 / T)
    p = p / p.sum()  # the teacher at temperature T
    q = np.exp(np.array([2.0, 1.0, 0.0]) / T)
    q = q / q.sum()
    kl = float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))
    total, ce_t, kl_t = kd_token_losses(logits, torch.tensor([0]), ids, lp, torch.tensor([True]), alpha, T)
    assert float(ce_t[0]) == pytest.approx(ce, rel=1e-5)
    assert float(kl_t[0]) == pytest.approx(kl, rel=1e-5)
    assert float(total[0]) == pytest.approx(alpha * ce + (1 - alpha) * T * T * kl, rel=1e-5)


@pytest.mark.parametrize("mode", ["drop", "spread"])
def test_matches_core_reference(mode):
    import torch

    from cascade_studio.trainer.loss import kd_token_losses

    rng = np.random.default_rng(3)
    V, alpha, T = 11, 0.3, 1.7
    logits = rng.normal(size=(5, V)) * 2
    labels = rng.integers(0, V, size=5)
    tops = []
    for _ in range(5):
        k = int(rng.integers(1, 5))
        chosen = rng.choice(V, size=k, replace=False)
        probs = rng.dirichlet(np.ones(k + 1))[:k]  # top-k carries less than all the mass
        tops.append([(int(t), float(math.log(p))) for t, p in zip(chosen, probs, strict=True)])
    soft = np.stack([teacher_soft_targets(t, V, T, mode) for t in tops])
    ref_total, ref_ce, ref_kl = kd_loss(logits, labels, soft, alpha, T)
    ids, lp = _sparse(tops, 4)
    total, ce, kl = kd_token_losses(torch.tensor(logits), torch.tensor(labels), ids, lp, torch.ones(5, dtype=torch.bool),
                                    alpha, T, mode)
    assert float(ce.mean()) == pytest.approx(ref_ce, rel=1e-5)
    assert float(kl.mean()) == pytest.approx(ref_kl, rel=1e-4, abs=1e-6)
    assert float(total.mean()) == pytest.approx(ref_total, rel=1e-4)


@pytest.mark.parametrize("mode", ["drop", "spread"])
def test_positions_without_soft_labels_are_plain_ce_and_gradients_finite(mode):
    import torch

    from cascade_studio.trainer.loss import kd_token_losses

    logits = torch.randn(3, 6, requires_grad=True)
    labels = torch.tensor([1, 2, 3])
    ids, lp = _sparse([[(1, -0.1), (4, -2.5)], [], [(3, -0.01)]], 2)
    has = torch.tensor([True, False, True])
    total, ce, kl = kd_token_losses(logits, labels, ids, lp, has, 0.5, 2.0, mode)
    assert float(total[1].detach()) == pytest.approx(float(ce[1].detach())) and float(kl[1].detach()) == 0.0
    total.mean().backward()
    assert torch.isfinite(logits.grad).all()
