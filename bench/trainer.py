"""One distillation training step: the trainer's way against the textbook way, same model, same
batch, same loss value.

- app: logits only at the target positions (`logits_to_keep`), the teacher kept sparse (its
  recorded top-k per position) and the KL summed in closed form (trainer/loss.py);
- baseline: logits at every position of the batch, the teacher's distribution materialised over
  the whole vocabulary for every target position (a scatter of the renormalised top-k, as
  core.distillation.teacher_soft_targets does in numpy), then the dense KL.

A chat example's prompt (system prompt, tool schemas) is most of its tokens, so the app computes
the vocabulary projection for a fraction of the positions. Each variant runs in its own process
so peak memory (max RSS) is its own. Last line: `ratio=<baseline_s/app_s> mem_ratio=<..>`.

    python bench/trainer.py [--vocab 32000] [--prompt 384] [--answer 48] [--batch 4] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(variant: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cascade_studio.core.distillation import teacher_soft_targets
    from cascade_studio.trainer.loss import kd_token_losses

    torch.manual_seed(0)
    V, B, P, A, K = args.vocab, args.batch, args.prompt, args.answer, 5
    alpha, T = 0.5, 2.0
    model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096))
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    L = P + A
    ids = torch.randint(0, V, (B, L))
    rows = torch.arange(B).repeat_interleave(A)
    cols = torch.arange(P - 1, L - 1).repeat(B)  # logits at j - 1 predict the answer token j
    labels = ids[rows, cols + 1]
    rng = np.random.default_rng(0)
    tops = [[(int(t), float(lp)) for t, lp in zip(rng.choice(V, K, replace=False),
                                                   np.log(rng.dirichlet(np.ones(K + 1))[:K]), strict=True)]
            for _ in range(len(labels))]
    soft_ids = torch.tensor([[t for t, _ in top] for top in tops])
    soft_lp = torch.tensor([[lp for _, lp in top] for top in tops])
    dense = torch.tensor(np.stack([teacher_soft_targets(top, V, T) for top in tops[:3]]), dtype=torch.float32)
    scattered = torch.zeros(3, V).scatter_(1, soft_ids[:3], torch.softmax(soft_lp[:3] / T, dim=-1))
    assert torch.allclose(dense, scattered, atol=1e-6)  # the baseline's targets are core's
    has = torch.ones(len(labels), dtype=torch.bool)
    times, losses = [], []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        if variant == "app":
            keep = torch.arange(P - 1, L - 1)
            logits = model(input_ids=ids, logits_to_keep=keep).logits[rows, cols - (P - 1)]
            loss = kd_token_losses(logits, labels, soft_ids, soft_lp, has, alpha, T)[0].mean()
        else:
            logits = model(input_ids=ids).logits[rows, cols]
            p = torch.zeros(len(labels), V).scatter_(1, soft_ids, torch.softmax(soft_lp / T, dim=-1))
            ce = torch.nn.functional.cross_entropy(logits, labels)
            log_q = torch.log_softmax(logits / T, dim=-1)
            kl = (p * (torch.log(p.clamp(min=1e-30)) - log_q)).sum(-1).mean()
            loss = alpha * ce + (1 - alpha) * T * T * kl
        optim.zero_grad()
        loss.backward()
        optim.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step_s": sorted(times[1:])[len(times[1:]) // 2], "first_loss": losses[0], "rss_mb": rss_mb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--prompt", type=int, default=384)
    ap.add_argument("--answer", type=int, default=48)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--variant")
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run(args.variant, args)))
        return
    out = {}
    for variant in ("baseline", "app"):
        cmd = [sys.executable, __file__, "--variant", variant] + [f"--{k}={getattr(args, k)}" for k in
                                                                   ("vocab", "prompt", "answer", "batch", "steps")]
        out[variant] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(variant, out[variant])
    a, b = out["app"], out["baseline"]
    assert abs(a["first_loss"] - b["first_loss"]) < 1e-3 * max(1.0, abs(b["first_loss"])), "losses differ"
    print(f"ratio={b['step_s'] / a['step_s']:.2f} mem_ratio={b['rss_mb'] / a['rss_mb']:.2f} "
          f"app_step_s={a['step_s']:.3f} baseline_step_s={b['step_s']:.3f} app_rss_mb={a['rss_mb']:.0f} "
          f"baseline_rss_mb={b['rss_mb']:.0f} loss={a['first_loss']:.4f}")


if __name__ == "__main__":
    main()
