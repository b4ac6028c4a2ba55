"""2-D threshold sweep: 200 x 200 thresholds over 100,000 tasks x 3 tiers.

The app's sweep (binning + cumulative sums) against a plain per-threshold numpy loop (one
vectorised simulation per threshold pair). The loop is timed on a random sample of pairs and
scaled to all 40,000 (running all of them would take minutes); the sample's results are checked
against the app's grid. Also times one slider move (the operating point's exact simulation).
Last line: `ratio=<loop/app> app_s=<..>` (goal: app_s < 0.5).

    python bench/sweep.py [--tasks 100000] [--grid 200] [--sample 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cascade_studio.core.tradeoffs import Outcomes, simulate, sweep  # noqa: E402


def make(n: int, seed: int = 0) -> Outcomes:
    rng = np.random.default_rng(seed)
    conf = rng.beta(5, 2, (n, 3))
    quality = (rng.random((n, 3)) < np.array([0.6, 0.8, 0.95]) * (0.5 + conf / 2)).astype(float)
    quality[:, 2] = 1.0
    cost = rng.gamma(2.0, np.array([0.0001, 0.0006, 0.01]) / 2, (n, 3))
    latency = rng.gamma(3.0, np.array([100.0, 300.0, 1500.0]) / 3, (n, 3))
    return Outcomes([str(i) for i in range(n)], ["c"] * n, [1, 2, 3], cost, latency, quality, conf)


def loop_point(o: Outcomes, t1: float, t2: float) -> tuple[float, float]:
    keep1 = o.confidence[:, 0] >= t1
    keep2 = ~keep1 & (o.confidence[:, 1] >= t2)
    rest = ~keep1 & ~keep2
    cost = o.cost[:, 0].sum() + o.cost[~keep1, 1].sum() + o.cost[rest, 2].sum()
    quality = o.quality[keep1, 0].sum() + o.quality[keep2, 1].sum() + o.quality[rest, 2].sum()
    return cost / o.n, quality / o.n


def gui_slider_ms(o: Outcomes) -> float:
    """Median time of a slider move in the real page (simulation + plot + labels, painted)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from cascade_studio.ui.tradeoffs_page import TradeoffsPage

    app = QApplication.instance() or QApplication([])
    page = TradeoffsPage()
    page.resize(1300, 800)
    page.show()
    page.outcomes = o
    page._build_price_spins(o.tiers)
    page.recompute()
    app.processEvents()
    moves, whatifs = [], []
    for v in range(10, 90, 4):
        t = time.perf_counter()
        page.sliders[0].setValue(v)  # the plot's operating point and figures follow at once
        page._whatif_timer.stop()
        page.repaint()
        app.processEvents()
        moves.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        page.update_whatif()  # the monthly what-if follows 120 ms after the slider stops
        app.processEvents()
        whatifs.append((time.perf_counter() - t) * 1000)
    print(f"what-if update after a move: {np.median(whatifs):.1f} ms (debounced, not on every step)")
    return float(np.median(moves))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--grid", type=int, default=200)
    parser.add_argument("--sample", type=int, default=400)
    args = parser.parse_args()
    o = make(args.tasks)
    grid = np.linspace(0, 1, args.grid)
    sweep(o, grid[:5])  # warm up numpy
    t = time.perf_counter()
    sw = sweep(o, grid)
    app_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, args.grid, (args.sample, 2))
    t = time.perf_counter()
    sampled = [loop_point(o, grid[i], grid[j]) for i, j in pairs]
    loop_sample_s = time.perf_counter() - t
    loop_s = loop_sample_s / args.sample * args.grid ** 2
    for (i, j), (c, q) in zip(pairs, sampled, strict=True):
        assert abs(sw.cost[i, j] - c) < 1e-9 * max(1, c) and abs(sw.quality[i, j] - q) < 1e-9, (i, j)
    t = time.perf_counter()
    for _ in range(20):
        simulate(o, [float(grid[50]), float(grid[120])])
    slider_ms = (time.perf_counter() - t) / 20 * 1000
    redraw_ms = gui_slider_ms(o)
    print(f"{args.tasks:,} tasks x 3 tiers, {args.grid}x{args.grid} thresholds: app {app_s:.3f} s; per-pair numpy "
          f"loop {loop_s:.1f} s (timed on {args.sample} pairs, results identical); one operating point "
          f"{slider_ms:.1f} ms; a slider move in the Trade-offs page, redraw included: {redraw_ms:.1f} ms")
    print(f"ratio={loop_s / app_s:.0f} app_s={app_s:.3f}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    import os

    os._exit(0)  # skip Qt teardown (see bench/collect.py)
