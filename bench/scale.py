"""Real-size workspaces (issue 22): time and peak RSS of `whatif --sweep --json`, opening Trade-offs
(outcomes loaded, plot drawn; offscreen), `evaluate --no-embeddings`, `dataset build` and `tiers list`
on workspaces of real-size rows: ~200 tasks x 3 tiers collected from the sandbox with logprobs
(~37 KB a trajectory, as a real one is), replicated in SQL to each size.

Each measurement runs in a subprocess; its peak RSS is that child's ru_maxrss (os.wait4: the
per-child form of getrusage(RUSAGE_CHILDREN)). whatif and Trade-offs are also run with the previous
implementation as the baseline, alternating with the app's in the same run: the old per-task Python
`load_outcomes` and the `np.add.at` sweep (copied below), the old page loading on the GUI thread.
Prints a growth table (medians) and the baseline/app ratios.

    python bench/scale.py [--work DIR] [--sizes 1000 10000] [--big (adds 100000)] [--huge (adds 1000000)]
                          [--repeat 3] [--repeat-heavy 1] [--mem-cap-gb 8]

Targets at 100k tasks x 3 tiers: Trade-offs opens < 2 s, whatif --sweep < 2 s, evaluate < 30 s,
dataset build < 60 s, each under 500 MB; tiers list < 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEMPLATE_TASKS = 200


# -- the baseline: the previous implementation ------------------------------------------------------
def baseline_load_outcomes(ws, tiers, category=None):
    """load_outcomes before issue 22: a dict per tier, then a Python loop per task and tier that
    parses every row's tool_calls."""
    from cascade_studio.core.agreement import args_agreement, bfcl_correct, tool_agreement
    from cascade_studio.core.confidence import confidence_column
    from cascade_studio.core.tiers import WithoutLogprobs, generation_keys
    from cascade_studio.core.tradeoffs import Outcomes
    from cascade_studio.store.tasks import TaskRepository
    from cascade_studio.store.trajectories import TrajectoryRepository

    def latest(tier):
        conf = confidence_column(tier.confidence_method.value)
        rows = TrajectoryRepository(ws).latest_ok(tier.tier, ["task_id", "cost_micro", "latency_ms", conf,
                                                              "tool_calls", "final_answer", "prompt_tokens",
                                                              "completion_tokens"], generation_keys(tier))
        return {r[0]: r[1:] for r in rows}

    tiers = sorted(tiers, key=lambda t: t.tier)
    per_tier = [latest(t) for t in tiers]
    meta = TaskRepository(ws).categories_and_expected()
    all_ids = set().union(*[set(p) for p in per_tier]) if per_tier else set()
    common = sorted(set.intersection(*[set(p) for p in per_tier])) if per_tier else []
    if category:
        common = [t for t in common if meta.get(t, ("",))[0] == category]
        all_ids = {t for t in all_ids if meta.get(t, ("",))[0] == category}
    excluded = len(all_ids) - len(common)
    k, n = len(tiers), len(common)
    cost, lat, qual, conf = (np.zeros((n, k)) for _ in range(4))
    ptok, ctok = np.zeros((n, k)), np.zeros((n, k))
    expected_everywhere = n > 0 and all(isinstance(meta.get(t, ("", None))[1], list) for t in common)
    tools = TaskRepository(ws).tools_of(common) if expected_everywhere else {}
    for i, task_id in enumerate(common):
        teacher_calls = orjson.loads(per_tier[-1][task_id][3])
        for j in range(k):
            c_micro, latency, confidence, calls_json, answer, p, ct = per_tier[j][task_id]
            calls = orjson.loads(calls_json)
            cost[i, j] = c_micro / 1e6
            lat[i, j] = latency
            conf[i, j] = np.nan if confidence is None else confidence
            ptok[i, j], ctok[i, j] = p, ct
            if expected_everywhere:
                qual[i, j] = float(bfcl_correct(calls, meta[task_id][1], tools.get(task_id)))
            elif j == k - 1:
                qual[i, j] = 1.0
            else:
                qual[i, j] = float(tool_agreement(teacher_calls, calls) and args_agreement(teacher_calls, calls)[0])
    return Outcomes(common, [meta.get(t, ("",))[0] for t in common], [t.tier for t in tiers],
                    cost, lat, qual, conf, ptok, ctok, excluded, "accuracy" if expected_everywhere else "agreement",
                    [t.without_logprobs == WithoutLogprobs.ANSWER for t in tiers])


def baseline_sweep(o, grid=None, mode="cascade"):
    """sweep before issue 22 (verbatim): the three-tier histogram with np.add.at."""
    from cascade_studio.core.tradeoffs import Sweep

    g = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=float)
    n, k = o.n, len(o.tiers)
    if n == 0:
        shape = (len(g),) if k == 2 else (len(g), len(g))
        z = np.zeros(shape)
        return Sweep(mode, g, z, z, z, z)
    conf = o.decision_confidence()
    idx = [np.searchsorted(g, conf[:, j], side="right") for j in range(k - 1)]
    G = len(g)  # noqa: N806
    c, q, lat = o.cost, o.quality, o.latency

    def cum1(values):
        return np.cumsum(np.bincount(idx[0], weights=values, minlength=G + 1)[:G])

    if k == 2:
        esc_c2, esc_q1, esc_q2 = cum1(c[:, 1]), cum1(q[:, 0]), cum1(q[:, 1])
        esc_l2, esc_n = cum1(lat[:, 1]), cum1(np.ones(n))
        if mode == "cascade":
            cost = c[:, 0].sum() + esc_c2
            latency = lat[:, 0].sum() + esc_l2
        else:
            cost = c[:, 0].sum() - cum1(c[:, 0]) + esc_c2
            latency = lat[:, 0].sum() - cum1(lat[:, 0]) + esc_l2
        quality = q[:, 0].sum() - esc_q1 + esc_q2
        return Sweep(mode, g, cost / n, quality / n, latency / n, esc_n / n)
    if k != 3:
        raise ValueError("sweeps cover two or three tiers")

    def cum2(values):
        h = np.zeros((G + 1, G + 1))
        np.add.at(h, (idx[0], idx[1]), values)
        return np.cumsum(np.cumsum(h, axis=0), axis=1)[:G, :G]

    e1 = {name: cum1(v)[:, None] for name, v in (("c1", c[:, 0]), ("c2", c[:, 1]), ("q1", q[:, 0]), ("q2", q[:, 1]),
                                                  ("l1", lat[:, 0]), ("l2", lat[:, 1]), ("n", np.ones(n)))}
    e2 = {name: cum2(v) for name, v in (("c2", c[:, 1]), ("c3", c[:, 2]), ("q2", q[:, 1]), ("q3", q[:, 2]),
                                         ("l2", lat[:, 1]), ("l3", lat[:, 2]))}
    quality = q[:, 0].sum() - e1["q1"] + e1["q2"] - e2["q2"] + e2["q3"]
    if mode == "cascade":
        cost = c[:, 0].sum() + e1["c2"] + e2["c3"]
        latency = lat[:, 0].sum() + e1["l2"] + e2["l3"]
    else:
        cost = c[:, 0].sum() - e1["c1"] + e1["c2"] - e2["c2"] + e2["c3"]
        latency = lat[:, 0].sum() - e1["l1"] + e1["l2"] - e2["l2"] + e2["l3"]
    escalation = np.broadcast_to(e1["n"], (G, G))
    return Sweep(mode, g, cost / n, quality / n, latency / n, escalation / n)


def use_baseline() -> None:
    """Make the app run the previous implementation (this process only)."""
    from cascade_studio.core import tradeoffs as ct
    from cascade_studio.services import tradeoffs as st

    ct.sweep = baseline_sweep  # sweep_report looks it up in the module
    st.load_outcomes = baseline_load_outcomes


# -- jobs run in a subprocess ---------------------------------------------------------------------
def job_whatif(ws: str, baseline: bool) -> None:
    if baseline:
        use_baseline()
    from cascade_studio.cli import main

    with open(os.devnull, "w") as out:
        sys.stdout = out
        code = main(["-w", ws, "whatif", "--sweep", "--json"])
    sys.exit(code)


def job_tradeoffs(ws: str, baseline: bool) -> None:
    """Open the Trade-offs page on the workspace: outcomes loaded, figures and plot drawn. Prints the
    longest time the GUI thread was busy without processing events (ms)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from cascade_studio.store.workspace import Workspace
    from cascade_studio.ui.tradeoffs_page import TradeoffsPage

    app = QApplication.instance() or QApplication([])
    page = TradeoffsPage()
    page.resize(1300, 800)
    page.ws = Workspace.open(ws)
    page.reload_choices()
    if baseline:
        page.show()  # (its own load is superseded at once below)
        app.processEvents()
    stall = 0.0
    t = time.perf_counter()
    if baseline:  # the page before issue 22: load_outcomes on the GUI thread
        use_baseline()
        from cascade_studio.services import tradeoffs as st
        from cascade_studio.store.tiers import TierRepository

        tiers = TierRepository(page.ws).list()
        page._show(st.load_outcomes(page.ws, tiers, None), tiers)
        stall = time.perf_counter() - t
    else:  # opening the page is showing it: its showEvent starts the load
        page.show()
        if page.loader is None:
            page.refresh()
        last = time.perf_counter()
        while page.loader is not None:
            app.processEvents()
            now = time.perf_counter()
            stall, last = max(stall, now - last), now
            time.sleep(0.001)
    page.repaint()
    app.processEvents()
    assert page.outcomes is not None and page.outcomes.n > 0, "no outcomes"
    print(f"stall_ms={stall * 1000:.0f} open_s={time.perf_counter() - t:.2f}")


# -- building the workspaces ----------------------------------------------------------------------
def collect_template(folder: Path, code: Path = ROOT) -> None:
    """TEMPLATE_TASKS tasks for every demo tier, collected from the sandbox with logprobs by the
    app in `code` (this checkout, or an earlier one used as a baseline)."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(code)!r})
from cascade_studio.sandbox.server import SandboxThread, SandboxConfig
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
url = SandboxThread(SandboxConfig(latency_scale=0)).start()
prepare_demo({str(folder)!r}, url)
with Workspace.open({str(folder)!r}) as ws:
    ids = select_task_ids(ws, limit={TEMPLATE_TASKS})
    for tier in TierRepository(ws).list():
        run, _ = start_or_resume(ws, tier, ids, {{}})
        asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=code)


def replicate(template: Path, out: Path, tasks: int) -> None:
    """Copy the template and replicate its tasks and trajectories under new task ids to `tasks` tasks."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(template, out)
    conn = sqlite3.connect(out / "workspace.sqlite", isolation_level=None)
    task_cols = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    traj_cols = [r[1] for r in conn.execute("PRAGMA table_info(trajectories)") if r[1] != "id"]
    base = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE id IN (SELECT task_id FROM trajectories)")]
    marks = ",".join("?" * len(base))
    conn.execute(f"DELETE FROM tasks WHERE id NOT IN ({marks})", base)
    top = conn.execute("SELECT max(id) FROM trajectories").fetchone()[0]
    extra = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE "
                                        "'%REFERENCES trajectories(id)%'")]  # side tables keyed by trajectory
    conn.execute("BEGIN")
    for j in range(1, -(-tasks // len(base))):
        sel = ", ".join(f"id || '~{j}'" if c == "id" else c for c in task_cols)
        conn.execute(f"INSERT INTO tasks ({', '.join(task_cols)}) SELECT {sel} FROM tasks WHERE id IN ({marks})",
                     base)
        sel = ", ".join(f"task_id || '~{j}'" if c == "task_id" else c for c in traj_cols)
        conn.execute(f"INSERT INTO trajectories (id, {', '.join(traj_cols)}) SELECT id + {j * top}, {sel} "
                     f"FROM trajectories WHERE id <= {top}")
        for table in extra:
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            key = next(r[3] for r in conn.execute(f"PRAGMA foreign_key_list({table})") if r[2] == "trajectories")
            sel = ", ".join(f"{c} + {j * top}" if c == key else c for c in cols)
            conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {sel} FROM {table} WHERE {key} <= {top}")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# -- measuring ------------------------------------------------------------------------------------
def measure(cmd: list[str], cap_gb: float) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit code, stdout) of a child process."""
    def limit() -> None:
        cap = int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (its peak RSS)
        seconds = time.perf_counter() - t
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problem = out.read().decode(), err.read().decode()
    if rc not in (0, 3):
        print(f"  ({' '.join(cmd[-6:])} exited {rc}: {problem[-300:].strip()})", file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024, rc, text


def payload_sizes(folder: Path) -> tuple[int, float, float]:
    """(trajectories, mean bytes of request + response + logprobs as JSON, mean bytes of logprobs) of a
    workspace (schema 17: the payloads compressed in trajectory_payloads, measured as the JSON written)."""
    from cascade_studio.store.payloads import unpack

    conn = sqlite3.connect(Path(folder) / "workspace.sqlite")
    sizes = [[len(unpack(x) or "") for x in r] for r in conn.execute(
        "SELECT request, response, logprobs FROM trajectory_payloads")]
    conn.close()
    n = len(sizes)
    return n, sum(map(sum, sizes)) / max(n, 1), sum(r[2] for r in sizes) / max(n, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", help="folder for the workspaces (default: a temporary one, removed after)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    p.add_argument("--big", action="store_true", help="add 100,000 tasks (~11 GB, slow)")
    p.add_argument("--huge", action="store_true", help="add 1,000,000 tasks (~110 GB)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of whatif / Trade-offs (app and baseline)")
    p.add_argument("--repeat-heavy", type=int, default=1, help="rounds of evaluate / dataset build / tiers list")
    p.add_argument("--mem-cap-gb", type=float, default=8.0)
    p.add_argument("--job", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.job:
        name, ws, variant = a.job
        (job_whatif if name == "whatif" else job_tradeoffs)(ws, variant == "baseline")
        return
    sizes = a.sizes + ([100_000] if a.big else []) + ([1_000_000] if a.huge else [])
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="cascade-scale-"))
    template = work / "template"
    if not (template / "workspace.sqlite").exists():
        t = time.perf_counter()
        collect_template(template)
        print(f"collected the template in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    n, size, lp = payload_sizes(template)
    print(f"template: {n} trajectories, {size / 1024:.1f} KB each ({(lp or 0) / 1024:.1f} KB logprobs); "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    me = [sys.executable, str(Path(__file__).resolve())]
    table: list[tuple] = []
    for tasks in sizes:
        folder = work / f"ws-{tasks}"
        if not (folder / "workspace.sqlite").exists():
            t = time.perf_counter()
            replicate(template, folder, tasks)
            print(f"replicated {tasks} tasks in {time.perf_counter() - t:.0f} s "
                  f"({(folder / 'workspace.sqlite').stat().st_size / 1e9:.2f} GB)", file=sys.stderr)
        ws = str(folder)
        results: dict[tuple[str, str], list[tuple]] = {}
        for r in range(a.repeat):
            order = ("app", "baseline") if r % 2 == 0 else ("baseline", "app")
            for job in ("whatif", "tradeoffs"):
                for variant in order:
                    res = measure([*me, "--job", job, ws, variant], a.mem_cap_gb)
                    results.setdefault((job, variant), []).append(res)
                    print(f"{tasks} {job} {variant} round {r + 1}: {res[0]:.2f} s, {res[1]:.0f} MB, exit {res[2]} "
                          f"{res[3].strip()}", file=sys.stderr)
        heavy = {"evaluate": ["-w", ws, "evaluate", "--student", "1", "--no-embeddings", "--all-tasks", "--json"],
                 "dataset build": ["-w", ws, "dataset", "build", "--out", str(work / "ds.jsonl"), "--no-dedupe",
                                   "--json"],  # replicas share their prompts: dedupe would keep 200
                 "tiers list": ["-w", ws, "tiers", "list"]}
        for _ in range(a.repeat_heavy):
            for job, args in heavy.items():
                res = measure([sys.executable, "-m", "cascade_studio", *args], a.mem_cap_gb)
                results.setdefault((job, "app"), []).append(res)
                print(f"{tasks} {job}: {res[0]:.2f} s, {res[1]:.0f} MB, exit {res[2]}", file=sys.stderr)
        for (job, variant), rs in results.items():
            stalls = [float(x[3].split("stall_ms=")[1].split()[0]) for x in rs if "stall_ms=" in x[3]]
            opens = [float(x[3].split("open_s=")[1].split()[0]) for x in rs if "open_s=" in x[3]]
            table.append((tasks, job, variant, statistics.median(x[0] for x in rs),
                          statistics.median(x[1] for x in rs), sum(x[2] in (0, 3) for x in rs), len(rs),
                          statistics.median(stalls) if stalls else None, statistics.median(opens) if opens else None))
    print(f"\n{'tasks':>8} {'what':<14} {'code':<9} {'median s':>9} {'peak MB':>8} {'GUI stall ms':>13} "
          f"{'page open s':>12}  ok")
    for tasks, job, variant, s, mb, ok, total, stall, opened in table:
        st = "" if stall is None else f"{stall:.0f}"
        op = "" if opened is None else f"{opened:.2f}"
        print(f"{tasks:>8} {job:<14} {variant:<9} {s:>9.2f} {mb:>8.0f} {st:>13} {op:>12}  {ok}/{total}")
    print("(median s: the whole process, interpreter and Qt start included; page open s: from showing the "
          "Trade-offs page to its outcomes loaded and plot drawn)")
    print("\nratio baseline/app (median time; same run, alternated):")
    by = {(t, j, v): s for t, j, v, s, *_ in table}
    for tasks in sizes:
        for job in ("whatif", "tradeoffs"):
            if (tasks, job, "app") in by:
                print(f"  {tasks:>8} {job:<10} {by[(tasks, job, 'baseline')] / by[(tasks, job, 'app')]:.2f}x")
    print("growth (app, median s) from the smallest size:")
    for job in ("whatif", "tradeoffs", "evaluate", "dataset build", "tiers list"):
        row = [by.get((t, job, "app")) for t in sizes]
        print(f"  {job:<14} " + "  ".join(f"{t}: {s:.2f}" for t, s in zip(sizes, row, strict=True) if s is not None))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
