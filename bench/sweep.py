"""2-D threshold sweep (`whatif --sweep`): 200 x 200 thresholds over N tasks x 3 tiers of a real
workspace (trajectories collected from the sandbox with logprobs, ~37 KB each, replicated in SQL to
N tasks; the same template and replication as bench/scale.py).

The app's time includes what `whatif --sweep` really does: loading the outcomes from the workspace
(`load_outcomes`: one query per tier into arrays, quality from the tool calls) and the sweep. The
baseline is the plain vectorised numpy formulation a competent engineer would write (a 2-D
bincount of the tasks' escalation bins, then cumulative sums; cost and quality only), run on the
same outcomes already in memory, in the same run; its grid is checked against the app's. Also
times one slider move in the Trade-offs page (the operating point's exact simulation, redrawn).
Medians of --repeat rounds, with the spread; then `cascade-studio whatif --sweep` as a whole process
(start-up, imports, opening the workspace, loading, the report printed), --cli-repeat runs. Last
line: `ratio=<app/baseline> app_s=<load + sweep>` (goal: app_s < 2, and the command < 2 s).

Measured on the 2-core machine, load average ~3 (two other CPU-bound jobs running), the workspace
in the page cache (issue 32; "before" is the code with the GROUP BY / group_concat read, same run):
- 100k tasks x 3 tiers: app_s 0.69-0.73 s median (rounds 0.62-0.94 s; before 1.36-1.41 s); the
  command as a whole process median 1.09 s (1.00-1.36 s; before 1.71-1.88 s); with the workspace's
  pages evicted from the page cache first 1.42 s (before 2.45-2.56 s); with half of tier 3's rows
  in its legacy generation (the latest row per task picked across two generations) 0.96-1.38 s
  (before 1.69-1.90 s). The printed figures are the same byte for byte in each case.
- 10k tasks x 3 tiers: app_s 0.066 s (before 0.134-0.138 s); the command 0.31-0.35 s median (before
  0.35-0.45 s; issue 32 measured 1.71 s for the code before the storage change).
Where the time goes at 100k (the command, ~1.05 s): ~0.3 s interpreter start-up and imports (numpy
~0.11 s), ~0.45 s the three tiers' rows (one covering-index scan each, turned into Python values:
holds the GIL), the tasks' categories read beside them on a second connection (~0.13 s, overlapped),
~0.1 s aligning the tiers and the columns, ~0.06 s the report (the 101 x 101 sweep itself ~0.01 s).

    python bench/sweep.py [--work DIR] [--tasks 100000] [--grid 200] [--repeat 5] [--cli-repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale import collect_template, replicate  # noqa: E402 - the same template and replication
from cascade_studio.core.tradeoffs import Outcomes, simulate, sweep  # noqa: E402


def vectorised_sweep(conf: np.ndarray, cost: np.ndarray, quality: np.ndarray,
                     grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: mean cost and quality of the cascade at every (t1, t2) on the grid. A task
    escalates past tier j at threshold t when conf[j] < t, i.e. from grid index searchsorted(conf)."""
    n, G = len(conf), len(grid)
    i1 = np.searchsorted(grid, conf[:, 0], side="right")
    i2 = np.searchsorted(grid, conf[:, 1], side="right")

    def past1(v: np.ndarray) -> np.ndarray:
        return np.cumsum(np.bincount(i1, weights=v, minlength=G + 1)[:G])[:, None]

    def past2(v: np.ndarray) -> np.ndarray:
        h = np.bincount(i1 * (G + 1) + i2, weights=v, minlength=(G + 1) ** 2).reshape(G + 1, G + 1)
        return np.cumsum(np.cumsum(h, axis=0), axis=1)[:G, :G]

    c, q = cost, quality
    total_cost = c[:, 0].sum() + past1(c[:, 1]) + past2(c[:, 2])
    total_quality = q[:, 0].sum() - past1(q[:, 0]) + past1(q[:, 1]) - past2(q[:, 1]) + past2(q[:, 2])
    return total_cost / n, total_quality / n


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


def workspace(work: Path, tasks: int) -> Path:
    folder = work / f"sweep-{tasks}"
    if not (folder / "workspace.sqlite").exists():
        template = work / "template"
        if not (template / "workspace.sqlite").exists():
            collect_template(template)
        replicate(template, folder, tasks)
    return folder


def cli_seconds(folder: Path, repeat: int) -> list[float]:
    """Wall time of `cascade-studio whatif --sweep` as a whole process (start-up, imports, opening
    the workspace, loading, the sweep and the report printed), `repeat` times."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cascade_studio", "--workspace", str(folder), "whatif", "--sweep"],
                       check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    from cascade_studio.services.tradeoffs import load_outcomes
    from cascade_studio.store.tiers import TierRepository
    from cascade_studio.store.workspace import Workspace

    parser = argparse.ArgumentParser()
    parser.add_argument("--work", help="a folder for the workspaces (kept for the next run); default: a temporary one")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--grid", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cli-repeat", type=int, default=5, help="whole-process runs of the CLI command")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp())
    folder = workspace(work, args.tasks)
    grid = np.linspace(0, 1, args.grid)
    loads, sweeps, baselines = [], [], []
    with Workspace.open(folder) as ws:
        tiers = TierRepository(ws).list()
        for _ in range(args.repeat):
            t = time.perf_counter()
            o = load_outcomes(ws, tiers)
            loads.append(time.perf_counter() - t)
            t = time.perf_counter()
            sw = sweep(o, grid)
            sweeps.append(time.perf_counter() - t)
            conf, cost, quality = o.decision_confidence(), o.cost, o.quality
            t = time.perf_counter()
            base_cost, base_quality = vectorised_sweep(conf, cost, quality, grid)
            baselines.append(time.perf_counter() - t)
    assert np.allclose(sw.cost, base_cost, rtol=1e-9, atol=1e-12) and np.allclose(sw.quality, base_quality, atol=1e-9)
    t = time.perf_counter()
    for _ in range(20):
        simulate(o, [float(grid[50]), float(grid[120])])
    slider_ms = (time.perf_counter() - t) / 20 * 1000
    redraw_ms = gui_slider_ms(o)
    load_s, sweep_s, base_s = (statistics.median(x) for x in (loads, sweeps, baselines))
    app_s = load_s + sweep_s
    rounds = [a + b for a, b in zip(loads, sweeps, strict=True)]
    cli = cli_seconds(folder, args.cli_repeat) if args.cli_repeat else []
    print(f"{o.n:,} tasks x {len(o.tiers)} tiers (real rows), {args.grid}x{args.grid} thresholds, medians of "
          f"{args.repeat}: app {app_s:.3f} s (load_outcomes {load_s:.3f} s + sweep {sweep_s:.3f} s); baseline "
          f"(vectorised numpy, outcomes in memory) {base_s:.3f} s, grids equal; app sweep alone / baseline "
          f"{sweep_s / base_s:.2f}")
    print(f"app per round (load + sweep): {min(rounds):.3f}-{max(rounds):.3f} s")
    print(f"one operating point {slider_ms:.1f} ms; a slider move in the Trade-offs page, redraw included: "
          f"{redraw_ms:.1f} ms")
    if cli:
        print(f"`cascade-studio whatif --sweep`, whole process: median {statistics.median(cli):.3f} s "
              f"({min(cli):.3f}-{max(cli):.3f} s over {len(cli)} runs)")
    print(f"ratio={app_s / base_s:.1f} app_s={app_s:.3f}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip Qt teardown (see bench/collect.py)
