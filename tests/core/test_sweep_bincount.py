"""The sweep's 2-D bincount formulation gives exactly what the np.add.at one did (bench/scale.py
keeps that one as the benchmark's baseline)."""

import numpy as np
import pytest

from bench.scale import baseline_sweep
from cascade_studio.core.tradeoffs import Outcomes, sweep


def random_outcomes(n: int, k: int, seed: int) -> Outcomes:
    rng = np.random.default_rng(seed)
    conf = rng.random((n, k))
    conf[rng.random((n, k)) < 0.1] = np.nan  # missing confidences
    conf[rng.random((n, k)) < 0.1] = 1.0
    return Outcomes([str(i) for i in range(n)], ["c"] * n, list(range(1, k + 1)), rng.gamma(2, 0.001, (n, k)),
                    rng.gamma(3, 100, (n, k)), (rng.random((n, k)) < 0.7).astype(float), conf,
                    keep_without_confidence=[bool(seed % 2)] + [False] * (k - 1))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("mode", ["cascade", "routing"])
@pytest.mark.parametrize("seed", range(4))
def test_bincount_sweep_equals_add_at(k, mode, seed):
    o = random_outcomes([1, 7, 500, 20_000][seed], k, seed)
    for grid in (None, np.linspace(0, 1, 37), np.sort(np.random.default_rng(seed).random(50))):
        new, old = sweep(o, grid, mode), baseline_sweep(o, grid, mode)
        for name in ("cost", "quality", "latency", "escalation"):
            np.testing.assert_array_equal(getattr(new, name), getattr(old, name), err_msg=name)
