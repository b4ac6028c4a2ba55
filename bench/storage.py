"""Storage shaped for the queries (issue 22, schema step 17): bytes per real trajectory and the
inspector's queries in the old layout (schema 16: request, response and logprobs as JSON text in the
middle of the `trajectories` row) against the current one (narrow row; payloads compressed in
`trajectory_payloads`), on the same rows, in the same run.

Real rows: ~200 tasks x 3 tiers collected from the sandbox with logprobs (~37 KB a trajectory),
written in both layouts and replicated in SQL to each size (bench/scale.py's template and
replication). Then, per size: file bytes per trajectory, the time to migrate the old file (what
opening it with this version does: backup, step 17, VACUUM), and the inspector's SQL
(store.trajectory_query, what the Trajectories page runs) on both layouts: open (count and the
matching ids), filter (a category and a confidence floor), sort (cost, descending, filtered) and 50
scroll jumps (a block of rows by id at random places of the sorted, filtered view); medians of
--repeat rounds, old and new alternated. Prints old/new ratios.

    python bench/storage.py [--sizes 10000 100000] [--work DIR] [--repeat 3]

Target: at least 3x fewer bytes per trajectory.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale import collect_template, replicate  # noqa: E402
from cascade_studio.store import migrations, payloads  # noqa: E402
from cascade_studio.store import trajectory_query as tq  # noqa: E402
from cascade_studio.store.workspace import DB_NAME, Workspace  # noqa: E402

OLD = 16  # the last schema with the payloads inside `trajectories`


def legacy_layout(src: Path, dst: Path) -> None:
    """The workspace `src` written as schema 16 held it (payloads as JSON text inside the row, in
    the columns' original place), the same rows and ids."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    conn = sqlite3.connect(dst / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    migrations.migrate(conn, OLD)
    conn.create_function("unpack", 1, payloads.unpack)
    conn.execute("ATTACH ? AS src", (str(src / DB_NAME),))
    conn.execute("BEGIN")
    for (name,) in conn.execute("SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                "'sqlite%' AND name != 'trajectory_payloads'").fetchall():
        if name == "trajectories":
            cols = [r[1] for r in conn.execute("PRAGMA src.table_info(trajectories)")]
            conn.execute(f"INSERT INTO main.trajectories ({', '.join(cols)}, request, response, logprobs) SELECT "
                         f"{', '.join('t.' + c for c in cols)}, unpack(p.request), unpack(p.response), "
                         "unpack(p.logprobs) FROM src.trajectories t JOIN src.trajectory_payloads p ON p.id = t.id")
        else:
            conn.execute(f"INSERT INTO main.{name} SELECT * FROM src.{name}")
    conn.execute("COMMIT")
    conn.execute("DETACH src")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def analyze(folder: Path) -> None:
    """Planner statistics for the replicated size (a workspace that grew to it was analysed by the
    PRAGMA optimize at each close; the template's statistics say 600 rows and make `id IN (...)` a scan)."""
    conn = sqlite3.connect(folder / DB_NAME)
    conn.execute("ANALYZE")
    conn.close()


def inspector(db: Path, rng: random.Random) -> dict[str, float]:
    """Seconds of the Trajectories page's queries on a fresh connection (a just-opened workspace)."""
    conn = sqlite3.connect(db, isolation_level=None)
    ws = SimpleNamespace(conn=conn)
    out: dict[str, float] = {}
    t = time.perf_counter()
    flt = tq.TrajectoryFilter()
    ids = tq.matching_ids(ws, flt)
    tq.rows_by_id(ws, ids[:200].tolist())
    out["open"] = time.perf_counter() - t
    assert len(ids) > 0
    category = tq.distinct_values(ws, "category")[0]
    t = time.perf_counter()
    flt = tq.TrajectoryFilter(category=category, conf_min=0.5)
    ids = tq.matching_ids(ws, flt)
    tq.rows_by_id(ws, ids[:200].tolist())
    out["filter"] = time.perf_counter() - t
    t = time.perf_counter()
    flt.sort, flt.descending = "cost_micro", True
    ids = tq.matching_ids(ws, flt)
    tq.rows_by_id(ws, ids[:200].tolist())
    out["sort"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(50):
        at = rng.randrange(max(len(ids) - 200, 1))
        tq.rows_by_id(ws, ids[at:at + 200].tolist())
    out["50 jumps"] = time.perf_counter() - t
    conn.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", help="folder for the workspaces (default: a temporary one, removed after)")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="cascade-storage-"))
    template = work / "template"
    if not (template / DB_NAME).exists():
        collect_template(template)
    legacy_layout(template, work / "template-old")
    rows = sqlite3.connect(template / DB_NAME).execute("SELECT count(*) FROM trajectories").fetchone()[0]
    print(f"template: {rows} real trajectories from the sandbox with logprobs; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    rng = random.Random(0)
    for size in a.sizes:
        tasks = max(size // 3, 1)
        files = {}
        for layout, src in (("old", work / "template-old"), ("new", template)):
            folder = work / f"{layout}-{size}"
            replicate(src, folder, tasks)
            analyze(folder)
            conn = sqlite3.connect(folder / DB_NAME)
            n = conn.execute("SELECT count(*) FROM trajectories").fetchone()[0]
            conn.close()
            files[layout] = (folder, n, (folder / DB_NAME).stat().st_size)
        (old, n_old, b_old), (new, n_new, b_new) = files["old"], files["new"]
        print(f"\n{n_new:,} trajectories")
        print(f"  bytes per trajectory: old layout {b_old / n_old:,.0f}, new {b_new / n_new:,.0f} "
              f"({b_old / 1e6:,.0f} MB -> {b_new / 1e6:,.0f} MB): {b_old / n_old / (b_new / n_new):.2f}x smaller")
        times: dict[tuple[str, str], list[float]] = {}
        for r in range(a.repeat):
            for layout in (("old", "new") if r % 2 == 0 else ("new", "old")):
                for what, s in inspector(files[layout][0] / DB_NAME, rng).items():
                    times.setdefault((what, layout), []).append(s)
        for what in ("open", "filter", "sort", "50 jumps"):
            o, w = statistics.median(times[(what, "old")]), statistics.median(times[(what, "new")])
            print(f"  inspector {what:<9} old {o * 1000:8.1f} ms  new {w * 1000:8.1f} ms  ratio old/new {o / w:6.2f}x")
        migrated = work / f"migrated-{size}"
        if migrated.exists():
            shutil.rmtree(migrated)
        shutil.copytree(old, migrated)
        t = time.perf_counter()
        Workspace.open(migrated, check="none").close()
        s = time.perf_counter() - t
        b_mig = (migrated / DB_NAME).stat().st_size
        print(f"  migrating the old file (backup, step 17, VACUUM): {s:.1f} s ({n_old / s:,.0f} trajectories/s); "
              f"{b_mig / n_old:,.0f} bytes per trajectory after")
        for folder in (old, new, migrated):
            shutil.rmtree(folder, ignore_errors=True)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
