"""The distillation loss on tensors, the same formulas as core/distillation.py (a test checks them
against each other and against a hand computation):

    per target token:  a * CE + (1 - a) * T^2 * KL(teacher_T || student_T)   where soft labels exist
                       CE                                                    elsewhere

The teacher is sparse (its recorded top-k), so the KL is computed without building a full
vocabulary distribution: "drop" renormalises over the k tokens; "spread" gives the remaining mass
in equal parts to the other V - k tokens, whose KL terms sum in closed form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_token_losses(logits: torch.Tensor, labels: torch.Tensor, soft_ids: torch.Tensor, soft_lp: torch.Tensor,
                    has_soft: torch.Tensor, alpha: float, temperature: float, mode: str = "drop"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits [N, V] at target positions, labels [N], soft_ids/soft_lp [N, K] (padding: lp = -inf),
    has_soft [N]. Returns per-token (total, ce, kl)."""
    logits = logits.float()
    ce = F.cross_entropy(logits, labels, reduction="none")
    if soft_ids.numel() == 0 or not bool(has_soft.any()):
        return ce, ce, torch.zeros_like(ce)
    T = float(temperature)
    log_q = F.log_softmax(logits / T, dim=-1)
    lq_top = log_q.gather(1, soft_ids)
    valid = torch.isfinite(soft_lp)
    # Padding and empty rows get a large finite negative, not -inf: 0 * inf in a branch that
    # torch.where discards still turns the gradient into NaN.
    neg_inf = torch.tensor(-1e9, device=logits.device)
    if mode == "drop":
        scaled = torch.where(valid, soft_lp.float() / T, neg_inf)
        log_p = scaled - torch.logsumexp(scaled, dim=-1, keepdim=True)
        kl = torch.where(valid, log_p.exp() * (log_p - lq_top), torch.zeros_like(log_p)).sum(-1)
    elif mode == "spread":
        V = logits.size(-1)
        mass = torch.where(valid, soft_lp.float().clamp(min=-1e4).exp(), torch.zeros_like(lq_top))
        others = (V - valid.sum(-1)).float()
        rest = (1.0 - mass.sum(-1)).clamp(min=0.0)
        per_other = (rest / others.clamp(min=1.0)).clamp(min=1e-12)
        log_top = torch.where(valid, mass.clamp(min=1e-12).log() / T, neg_inf)
        log_oth = per_other.log() / T
        log_n = torch.where(others > 0, others.clamp(min=1.0).log(), neg_inf)
        log_z = torch.logsumexp(torch.cat([log_top, (log_oth + log_n).unsqueeze(-1)], dim=-1), dim=-1)
        log_p_top = log_top - log_z.unsqueeze(-1)
        log_p_oth = log_oth - log_z
        top_part = torch.where(valid, log_p_top.exp() * (log_p_top - lq_top), torch.zeros_like(lq_top)).sum(-1)
        rest_lq = log_q.sum(-1) - torch.where(valid, lq_top, torch.zeros_like(lq_top)).sum(-1)
        oth_part = torch.where(others > 0, log_p_oth.exp() * (others * log_p_oth - rest_lq), torch.zeros_like(ce))
        kl = top_part + oth_part
    else:
        raise ValueError("mode is 'drop' or 'spread'")
    kl = torch.where(has_soft, kl, torch.zeros_like(kl))
    total = torch.where(has_soft, alpha * ce + (1 - alpha) * T * T * kl, ce)
    return total, ce, kl


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """log p(response | prompt) per sequence: the sum of the target tokens' log-probabilities.
    logits [N, V] at target positions, labels [N], rows [N] (which sequence each target is in)."""
    token_lp = -F.cross_entropy(logits.float(), labels, reduction="none")
    return torch.zeros(n_rows, dtype=token_lp.dtype, device=token_lp.device).index_add(0, rows, token_lp)


def dpo_losses(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
               beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct Preference Optimization (Rafailov et al. 2023), per pair, from sequence log-probs of
    the policy and the frozen reference:

        loss = -log σ(β · [(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))])

    Returns (loss, chosen reward, rejected reward), the rewards being β · (log π - log π_ref)."""
    chosen_reward = beta * (chosen - ref_chosen)
    rejected_reward = beta * (rejected - ref_rejected)
    return -F.logsigmoid(chosen_reward - rejected_reward), chosen_reward.detach(), rejected_reward.detach()
