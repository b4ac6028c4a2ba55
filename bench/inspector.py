"""Inspector at scale: open a workspace of 1,000,000 trajectories in the Trajectories page and
apply a filter; memory per 100,000 stored trajectories. A plain `SELECT count(*)` over the same
table is timed in the same run as the floor.

Then the GUI during a run: with the filter active and the view sorted, another process writes rows
into the workspace as a collection run does (one committed row at a time, ~160/s) while the page
refreshes live; a 5 ms Qt timer measures the longest stall of the GUI's event loop. Measured twice
in the same run: the baseline refreshes as the page did before issue 22 (count and ids re-read on
the GUI thread every 1.5 s), then the page's own live refresh (read on a pool thread).

Last lines: `open_s=<..> filter_s=<..>` (goals: < 2 s and < 0.3 s; memory < 100 MB per 100,000)
and `stall_ms=<..> baseline_stall_ms=<..>` (goal: stall < 50 ms).

    python bench/inspector.py [--rows 1000000] [--keep DIR] [--run-seconds 10]

With real-size rows: `--keep` the real workspace bench/inspector_real_rows.py builds (its --work
folder's real-1000000). Measured there (1M real rows, 10.4 GB, schema 19): open 0.33 s, filter
0.245 s, sort 0.16 s, longest stall during a run 29 ms (335 ms refreshing on the GUI thread).
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


def wait_sorted(app, page) -> float:
    """Until the page shows the view a sort asked for (the sort runs on a worker thread); returns the
    longest the GUI's event loop was held meanwhile, in ms (a frozen window: the whole sort)."""
    longest, last = 0.0, time.perf_counter()
    while page.model.sorting:
        app.processEvents()
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        time.sleep(0.001)
    app.processEvents()
    return max(longest, time.perf_counter() - last) * 1000


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
                      "[]", 120 + rng.randrange(400), 40 + rng.randrange(120), rng.random() * 900,
                      rng.randrange(20, 900), conf, conf * rng.random(), conf * 0.9))
        if len(batch) == 50_000:
            ws.conn.executemany(
                "INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, content, "
                "tool_calls, prompt_tokens, completion_tokens, latency_ms, cost_micro, conf_mean, conf_min, "
                "conf_tool) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    if batch:
        ws.conn.executemany(
            "INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, content, "
            "tool_calls, prompt_tokens, completion_tokens, latency_ms, cost_micro, conf_mean, conf_min, "
            "conf_tool) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    ws.conn.execute("COMMIT")
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()


WRITER = """
import random, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
rate, until, rng, i = float(sys.argv[2]), time.time() + float(sys.argv[3]), random.Random(1), 0
tag = sys.argv[4]
cats = ["simple_python", "multiple", "irrelevance", "parallel"]
while time.time() < until:
    conf = rng.random() ** 0.3
    conn.execute("INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, content, "
                 "tool_calls, prompt_tokens, completion_tokens, latency_ms, cost_micro, conf_mean, conf_min, "
                 "conf_tool) VALUES (1, ?, 1, 'gpt-4o', 'ok', ?, 'tool_1', 'x', '[]', 100, 50, 300.0, ?, ?, ?, ?)",
                 (f"{tag}_{i}", cats[i % 4], rng.randrange(20, 900), conf, conf / 2, conf))
    i += 1
    time.sleep(1 / rate)
print(i)
"""


def stall_during_run(app, page, folder: Path, seconds: float, live: bool) -> tuple[float, int]:
    """(longest GUI stall in ms, rows written) while another process writes rows for `seconds`."""
    import subprocess

    from PySide6.QtCore import QEventLoop, QTimer

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder / "workspace.sqlite"), "160", str(seconds),
                               f"live_{time.time_ns()}"],
                              stdout=subprocess.PIPE)
    longest, last = [0.0], [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        longest[0] = max(longest[0], now - last[0])
        last[0] = now

    def old_refresh() -> None:  # the page before issue 22: on the GUI thread
        if not page.table.selectionModel().hasSelection():
            page.model.refresh()
            page._update_count()

    probe = QTimer(interval=5)
    probe.timeout.connect(tick)
    baseline = QTimer(interval=1500)
    baseline.timeout.connect(old_refresh)
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    last[0] = time.perf_counter()
    probe.start()
    (page.live if live else baseline).start()
    loop.exec()
    (page.live if live else baseline).stop()
    probe.stop()
    written = int(writer.communicate()[0] or 0)
    return longest[0] * 1000, written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", help="reuse/keep the generated workspace in this folder")
    parser.add_argument("--run-seconds", type=float, default=10.0)
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
    page.f_category.setCurrentIndex(max(page.f_category.findData("multiple"), 1))  # or the first (real rows)
    page.f_conf_min.setValue(0.8)
    page._filter_timer.stop()  # the debounced apply is what a user triggers; time exactly one
    t = time.perf_counter()
    page.apply_filter()
    app.processEvents()
    filter_s = time.perf_counter() - t
    filtered = page.model.rowCount()
    t = time.perf_counter()
    page.model.sort(page.model.COL_COST, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.SortOrder.DescendingOrder)
    wait_sorted(app, page)  # sorted on a worker thread: until the sorted view is shown
    sort_s = time.perf_counter() - t
    mem = rss_mb() - base_rss
    page.table.scrollToTop()
    app.processEvents()
    base_stall, base_rows = stall_during_run(app, page, folder, args.run_seconds, live=False)
    stall, live_rows = stall_during_run(app, page, folder, args.run_seconds, live=True)
    print(f"workspace {size_mb:.0f} MB, {rows:,} rows shown; filter -> {filtered:,} rows; sort {sort_s:.2f} s; "
          f"floor (count(*)) {floor_s:.3f} s; GUI memory +{mem:.0f} MB "
          f"({mem / max(rows, 1) * 100_000:.1f} MB per 100,000)")
    print(f"open_s={open_s:.2f} filter_s={filter_s:.3f}")
    print(f"during a run ({base_rows} then {live_rows} rows written in {args.run_seconds:.0f} s each; filter "
          f"active, sorted by cost): longest GUI stall {stall:.0f} ms with the live refresh off the GUI thread, "
          f"{base_stall:.0f} ms refreshing on it (baseline)")
    print(f"stall_ms={stall:.0f} baseline_stall_ms={base_stall:.0f}")
    sys.stdout.flush()
    os._exit(0)  # skip Qt teardown (see bench/collect.py)


if __name__ == "__main__":
    main()
