"""Inspector at scale with real-size rows: open a workspace of real trajectories (collected from the
sandbox with logprobs, ~37 KB each as JSON, then replicated: bench/scale.py) in the Trajectories
page, apply a filter, sort the filtered view, make 50 scrollbar jumps in the sorted, filtered view,
then clear the filter and sort every row by task id (text: the slowest sort).
The baseline, in the same run: the same page on the same rows slimmed (the workspace without its
request, response and logprobs), the floor the payloads' storage should not raise (ratio ~1).
Neither open runs an integrity check (the bench measures the inspector, not the check). Each measurement
runs in its own process, real and slim alternated; medians of --repeat rounds.

Last line: `open_s=<..> filter_s=<..> sort_s=<..> sort_all_s=<..> jump_ms=<..>` for the real rows
(goals at 1M: < 0.5 s, < 0.3 s, < 1 s, < 1 s, < 50 ms a jump); the table also has sort_stall_ms,
the longest the GUI's event loop was held during the sort of every row.

Measured (1,000,200 real rows, 10.5 GB; 2 cores at load ~0.5-2, the file larger than what the page
cache kept): open 0.44-0.64 s, filter 0.26-0.31 s, sort 0.20-0.35 s, every row by task id
0.53-0.62 s (by model 0.75, by latency 0.56; 1.0-1.4 s before sorts were handed over as one
aggregate of ids); a sort runs on a worker thread, so the window is held 20 ms (the new rows shown),
not the whole sort (after the page cache was emptied, a sort of every row took 11-15 s: the disk).
Jump median 12.6-15.4 ms; the longest of 50 jumps 100-150 ms where a block's 64 rows are read from
disk (the slim copy: 40-60 ms; 32-row blocks did not change it).

    python bench/inspector_real_rows.py [--rows 1000000] [--work DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.inspector import rss_mb, wait_sorted  # noqa: E402 - after the path and platform are set


def populate_slim(folder: Path, real: Path) -> None:
    """The same rows slimmed: the real workspace without its payloads (the baseline)."""
    import sqlite3

    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(real, folder)
    conn = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    conn.execute("DELETE FROM trajectory_payloads")
    conn.execute("VACUUM")
    conn.close()


def populate_real(folder: Path, rows: int, work: Path) -> None:
    """`rows` real trajectories: the sandbox's template (3 tiers), replicated."""
    from bench.scale import collect_template, replicate
    from bench.storage import analyze

    template = work / "template"
    if not (template / "workspace.sqlite").exists():
        collect_template(template)
    replicate(template, folder, max(rows // 3, 1))
    analyze(folder)


def measure(folder: Path) -> None:
    """One process: open, filter, sort, 50 jumps in the GUI; prints key=value."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.services.settings import AppSettings
    from cascade_studio.store import workspace
    from cascade_studio.ui.main_window import MainWindow

    workspace.FULL_CHECK_LIMIT = 0  # the slim file is small enough for a full check at open: neither runs one
    app = QApplication.instance() or QApplication([])
    base_rss = rss_mb()
    window = MainWindow(SecretStore(), AppSettings(Path(tempfile.mkdtemp()) / "s.json"))
    window.show()
    app.processEvents()
    t = time.perf_counter()
    window.open_workspace(folder, create=False)
    window.nav.setCurrentRow(2)
    page = window.trajectories_page
    page.table.scrollToBottom()
    app.processEvents()
    open_s = time.perf_counter() - t
    rows = page.model.rowCount()
    category = page.f_category.itemData(1)
    page.f_category.setCurrentIndex(1)
    page.f_conf_min.setValue(0.5)
    page._filter_timer.stop()  # the debounced apply is what a user triggers; time exactly one
    t = time.perf_counter()
    page.apply_filter()
    app.processEvents()
    filter_s = time.perf_counter() - t
    filtered = page.model.rowCount()
    t = time.perf_counter()
    page.model.sort(page.model.COL_COST, Qt.SortOrder.DescendingOrder)
    wait_sorted(app, page)  # sorted on a worker thread: until the sorted view is shown
    sort_s = time.perf_counter() - t
    bar, rng, jumps = page.table.verticalScrollBar(), random.Random(1), []
    for _ in range(50):
        t = time.perf_counter()
        bar.setValue(rng.randrange(bar.maximum() + 1))
        page.table.viewport().repaint()
        app.processEvents()
        jumps.append(time.perf_counter() - t)
    # the worst case: no filter, sorted by a text column (every row, ordered by SQLite's string compare)
    page.f_category.setCurrentIndex(0)
    page.f_conf_min.setValue(0)
    page._filter_timer.stop()
    page.apply_filter()
    app.processEvents()
    t = time.perf_counter()
    page.model.sort(page.model.COL_TASK, Qt.SortOrder.AscendingOrder)
    sort_stall_ms = wait_sorted(app, page)
    sort_all_s = time.perf_counter() - t
    mem = rss_mb() - base_rss
    print(f"rows={rows} filtered={filtered} category={category} open_s={open_s:.3f} filter_s={filter_s:.3f} "
          f"sort_s={sort_s:.3f} jump_ms={statistics.median(jumps) * 1000:.1f} jump_max_ms={max(jumps) * 1000:.1f} "
          f"sort_all_s={sort_all_s:.3f} sort_stall_ms={sort_stall_ms:.1f} mem_mb={mem:.0f}")
    sys.stdout.flush()
    os._exit(0)  # skip Qt teardown (see bench/collect.py)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", help="reuse/keep the generated workspaces in this folder")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure))
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cascade-inspector-"))
    folders = {"real": work / f"real-{args.rows}", "slim": work / f"slim-{args.rows}"}
    for kind, folder in folders.items():
        if not (folder / "workspace.sqlite").exists():
            t = time.perf_counter()
            populate_real(folder, args.rows, work) if kind == "real" else populate_slim(folder, folders["real"])
            print(f"generated {kind} ({(folder / 'workspace.sqlite').stat().st_size / 1e6:,.0f} MB) in "
                  f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
    for kind, folder in folders.items():  # at this checkout's schema before any timing (a migration is not an open)
        from cascade_studio.store.workspace import Workspace

        t = time.perf_counter()
        Workspace.open(folder).close()
        print(f"{kind} at the current schema ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, list[dict[str, float]]] = {"real": [], "slim": []}
    for r in range(args.repeat):
        for kind in (("real", "slim") if r % 2 == 0 else ("slim", "real")):
            out = subprocess.run([sys.executable, __file__, "--measure", str(folders[kind])], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            values = dict(x.split("=", 1) for x in out.split())
            print(f"  round {r + 1} {kind}: {out}", file=sys.stderr)
            results[kind].append({k: float(v) for k, v in values.items() if k != "category"})
    med = {kind: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for kind, rs in results.items()}
    real, slim = med["real"], med["slim"]
    for kind in ("real", "slim"):
        size = (folders[kind] / "workspace.sqlite").stat().st_size
        print(f"{kind}: {int(med[kind]['rows']):,} rows, {size / 1e6:,.0f} MB ({size / med[kind]['rows']:,.0f} bytes a "
              f"row); filter -> {int(med[kind]['filtered']):,}; GUI memory +{med[kind]['mem_mb']:.0f} MB")
    print(f"{'':<10} {'real':>9} {'slim':>9} {'real/slim':>10}")
    for key, unit in (("open_s", "s"), ("filter_s", "s"), ("sort_s", "s"), ("sort_all_s", "s"),
                      ("sort_stall_ms", "ms"), ("jump_ms", "ms"), ("jump_max_ms", "ms")):
        print(f"{key:<10} {real[key]:>8.3f}{unit[0]} {slim[key]:>8.3f}{unit[0]} {real[key] / slim[key]:>9.2f}x")
    print(f"open_s={real['open_s']:.2f} filter_s={real['filter_s']:.3f} sort_s={real['sort_s']:.2f} "
          f"sort_all_s={real['sort_all_s']:.2f} jump_ms={real['jump_ms']:.1f}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
