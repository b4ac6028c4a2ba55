"""Inspector at scale: open a workspace of 1,000,000 trajectories in the Trajectories page and
apply a filter; memory per 100,000 stored trajectories. A plain `SELECT count(*)` over the same
table is timed in the same run as the floor.

Last line: `open_s=<..> filter_s=<..>` (goals: < 2 s and < 0.3 s; memory < 100 MB per 100,000).

    python bench/inspector.py [--rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def populate(folder: Path, rows: int) -> None:
    from cascade_studio.store.workspace import Workspace

    rng = random.Random(0)
    cats = ["simple_python", "multiple", "irrelevance", "parallel", "live_simple", "java", "sql", "rest"]
    tools = [f"tool_{i}" for i in range(200)]
    ws = Workspace.open(folder)
    ws.conn.execute("INSERT INTO runs (id, tier, model, status, task_ids, params, created_at, updated_at) "
                    "VALUES (1, 3, 'gpt-4o', 'done', '[]', '{}', '', '')")
    ws.conn.execute("BEGIN")
    batch = []
    for i in range(rows):
        conf = rng.random() ** 0.3
        batch.append((1, f"task_{i}", 1 + i % 3, "gpt-4o", "ok" if rng.random() > 0.01 else "error",
                      cats[i % len(cats)], tools[rng.randrange(200)], "The request matches a tool; I will call it.",
                      "[]", "{}", 120 + rng.randrange(400), 40 + rng.randrange(120), rng.random() * 900,
                      rng.randrange(20, 900), conf, conf * rng.random(), conf * 0.9))
        if len(batch) == 50_000:
            ws.conn.executemany(
                "INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, content, "
                "tool_calls, request, prompt_tokens, completion_tokens, latency_ms, cost_micro, conf_mean, conf_min, "
                "conf_tool) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    if batch:
        ws.conn.executemany(
            "INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, content, "
            "tool_calls, request, prompt_tokens, completion_tokens, latency_ms, cost_micro, conf_mean, conf_min, "
            "conf_tool) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    ws.conn.execute("COMMIT")
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", help="reuse/keep the generated workspace in this folder")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    if not (folder / "workspace.sqlite").exists():
        t = time.perf_counter()
        populate(folder, args.rows)
        print(f"generated {args.rows:,} trajectories in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    size_mb = (folder / "workspace.sqlite").stat().st_size / 1e6

    import sqlite3

    t = time.perf_counter()
    conn = sqlite3.connect(folder / "workspace.sqlite")
    conn.execute("SELECT count(*) FROM trajectories").fetchone()
    conn.close()
    floor_s = time.perf_counter() - t

    from PySide6.QtWidgets import QApplication

    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.services.settings import AppSettings
    from cascade_studio.ui.main_window import MainWindow

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
    page.f_category.setCurrentIndex(page.f_category.findData("multiple"))
    page.f_conf_min.setValue(0.8)
    page._filter_timer.stop()  # the debounced apply is what a user triggers; time exactly one
    t = time.perf_counter()
    page.apply_filter()
    app.processEvents()
    filter_s = time.perf_counter() - t
    filtered = page.model.rowCount()
    t = time.perf_counter()
    page.model.sort(page.model.COL_COST, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.SortOrder.DescendingOrder)
    app.processEvents()
    sort_s = time.perf_counter() - t
    mem = rss_mb() - base_rss
    print(f"workspace {size_mb:.0f} MB, {rows:,} rows shown; filter -> {filtered:,} rows; sort {sort_s:.2f} s; "
          f"floor (count(*)) {floor_s:.3f} s; GUI memory +{mem:.0f} MB "
          f"({mem / max(rows, 1) * 100_000:.1f} MB per 100,000)")
    print(f"open_s={open_s:.2f} filter_s={filter_s:.3f}")
    sys.stdout.flush()
    os._exit(0)  # skip Qt teardown (see bench/collect.py)


if __name__ == "__main__":
    main()
