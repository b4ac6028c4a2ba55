"""Collection throughput and memory, whole process against whole process (issue 32):

- app: `python -m cascade_studio collect` in its own process over a workspace holding the tasks
  and the tier (retries, rate limits, a SQLite commit per trajectory, confidence, cost, verdicts).
- lean (the baseline): `bench/lean_collect.py`, a lean AsyncOpenAI script in its own process: the
  same requests through `client.chat.completions.create`, a semaphore for the concurrency, and each
  answer committed to SQLite as its own row (request and answer JSON), one commit per row.

Both send the same real-size requests (BFCL "multiple" tasks, each with the tools of several BFCL
tasks, ~10 KB, tools and logprobs) to the same sandbox at the same concurrency. Rounds alternate
(lean, app, lean, app, ...); each figure is the median over the rounds of the whole process's wall
time (start-up and imports included) and its peak RSS (its own VmHWM, written at exit; not wait4's
ru_maxrss, which Linux floors at the parent's RSS at fork).

Last line: `ratio=<app/lean throughput> rss_ratio=<app/lean peak RSS>` (goals: ratio >= 1.0,
rss_ratio <= 1.3). `--qt` also runs the app in this process under a qasync loop, as the GUI does,
and reports the longest Qt event-loop stall (goal < 50 ms).

    python bench/collect.py [--tasks 2000] [--concurrency 32] [--rounds 3] [--tools-per-task 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peak import run_measured  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tasks(n: int, tools_per_task: int = 8):
    """Real-size tasks: each BFCL "multiple" task with the tools of `tools_per_task` BFCL tasks
    (its own first), as an agent's request carries many tools (~10 KB a request at 8)."""
    from cascade_studio.core.tasks import parse_bfcl

    text = (ROOT / "resources" / "bfcl" / "BFCL_v4_multiple.json").read_text()
    base = parse_bfcl(text, "bench.json")
    tasks = []
    for i in range(n):
        t = base[i % len(base)]
        tools = list(t.tools)
        names = {tool["function"]["name"] for tool in tools}
        for k in range(1, tools_per_task):
            for tool in base[(i + k * 7) % len(base)].tools:
                if tool["function"]["name"] not in names:
                    names.add(tool["function"]["name"])
                    tools.append(tool)
        tasks.append(type(t)(f"bench_{i}", t.category, t.messages, tools, None, "bench"))
    return tasks


def bench_tier(url: str, concurrency: int):
    """The tier every loop uses (the app's run stores it): its requests ask for tools and logprobs."""
    from cascade_studio.core.tiers import Provider, Tier

    return Tier(tier=1, model="gpt-4o-mini", base_url=url, provider=Provider.SANDBOX, max_concurrency=concurrency,
                input_price=Decimal("0.15"), output_price=Decimal("0.6"))


def whole_process(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process, start-up included (bench.peak)."""
    seconds, peak_mb, rc, text = run_measured(argv, env, ROOT)
    if rc != 0:
        raise SystemExit(f"{argv[:4]} failed ({rc}):\n{text[-3000:]}")
    return seconds, peak_mb, text


def prepare_workspace(folder: Path, url: str, tasks, concurrency: int) -> None:
    from cascade_studio.services.token_estimate import calibrate
    from cascade_studio.store.tasks import TaskRepository
    from cascade_studio.store.tiers import TierRepository
    from cascade_studio.store.workspace import Workspace

    ws = Workspace.open(folder)
    TierRepository(ws).replace_all([bench_tier(url, concurrency)])
    TaskRepository(ws).upsert(tasks)
    calibrate(ws, tasks)  # as `tasks import` does: the run's estimate then needs no tokenizer
    ws.close()


def app_run(url: str, tasks, concurrency: int, folder: Path) -> tuple[float, float]:
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from cascade_studio.services.collector import start_or_resume
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.tasks import TaskRepository
    from cascade_studio.store.tiers import TierRepository
    from cascade_studio.store.workspace import Workspace

    ws = Workspace.open(folder)
    tier = bench_tier(url, concurrency)
    TierRepository(ws).replace_all([tier])
    TaskRepository(ws).upsert(tasks)
    run, _ = start_or_resume(ws, tier, [t.id for t in tasks], {})
    from cascade_studio.services.clients import warm_up

    warm_up()  # as the GUI does in the background once it is idle, before any run can start
    app = QApplication.instance() or QApplication([])  # noqa: F841 - must stay alive for the loop
    stall = [0.0]
    last = [time.perf_counter()]

    stalls = []

    def tick() -> None:
        now = time.perf_counter()
        if now - last[0] > 0.03:
            stalls.append((round(now - t_start[0], 3), round((now - last[0]) * 1000)))
        stall[0] = max(stall[0], now - last[0])
        last[0] = now

    t_start = [time.perf_counter()]

    timer = QTimer(interval=5)
    timer.timeout.connect(tick)
    result = {}

    from cascade_studio.ui.run_thread import (
        RunThread,  # the Start button's module, loaded before it is clicked
    )

    async def main() -> None:
        timer.start()
        last[0] = t_start[0] = time.perf_counter()
        start = time.perf_counter()
        done = asyncio.Event()
        thread = RunThread(folder, tier, SecretStore(), run)
        thread.finished.connect(lambda p, err: (result.update(progress=p, error=err), done.set()))
        thread.start()  # the GUI's own path: the run on a worker thread, progress via signals
        await done.wait()
        progress = result["progress"]
        result["rate"] = progress.done / (time.perf_counter() - start)
        assert progress.done == len(tasks), (progress.message, result["error"])
        timer.stop()
        if os.environ.get("BENCH_DEBUG"):
            print("stalls (t, ms):", stalls[:20], file=sys.stderr)

    qasync.run(main())
    ws.close()
    return result["rate"], stall[0] * 1000


def main() -> None:
    import statistics

    from cascade_studio.core.trajectory import build_request

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools-per-task", type=int, default=8)
    parser.add_argument("--qt", action="store_true", help="also the GUI's path in this process (Qt stall)")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "cascade_studio", "sandbox", "--port", str(port),
                               "--latency-scale", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                              env=env)
    server.stdout.readline()
    lean_s, lean_mb, app_s, app_mb = [], [], [], []
    try:
        tasks = make_tasks(args.tasks, args.tools_per_task)
        tier = bench_tier(url, args.concurrency)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            requests = [(t.id, build_request(tier, t.messages, t.tools)) for t in tasks]
            assert requests[0][1].get("logprobs") and requests[0][1].get("tools")
            (tmp / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests))
            size = statistics.median(len(json.dumps(r)) for _, r in requests)
            for r in range(args.rounds):
                db = tmp / f"lean{r}.sqlite"
                s, mb, out = whole_process([sys.executable, str(ROOT / "bench" / "lean_collect.py"), url,
                                            str(tmp / "requests.jsonl"), str(db), str(args.concurrency)], env)
                assert out.strip().splitlines()[-1] == str(args.tasks), out[-500:]
                lean_s.append(s)
                lean_mb.append(mb)
                folder = tmp / f"ws{r}"
                prepare_workspace(folder, url, tasks, args.concurrency)
                s, mb, out = whole_process([sys.executable, "-m", "cascade_studio", "--workspace", str(folder),
                                            "collect", "--tier", "1", "--concurrency", str(args.concurrency),
                                            "--json"], env)
                stored = json.loads(out[out.index("\n{") + 1:])
                assert stored["done"] == args.tasks and stored["status"] == "done", out[-1500:]
                app_s.append(s)
                app_mb.append(mb)
                print(f"round {r + 1}: lean {s_fmt(lean_s[-1])} {lean_mb[-1]:.0f} MB, app {s_fmt(s)} {mb:.0f} MB",
                      file=sys.stderr)
            stall_ms = None
            if args.qt:
                folder = tmp / "qt"
                _, stall_ms = app_run(url, tasks, args.concurrency, folder)
    finally:
        server.terminate()
        server.wait()
    lean, app = statistics.median(lean_s), statistics.median(app_s)
    lean_rss, app_rss = statistics.median(lean_mb), statistics.median(app_mb)
    print(json.dumps({"tasks": args.tasks, "concurrency": args.concurrency, "rounds": args.rounds,
                      "request_bytes_median": size, "lean_s": lean_s, "app_s": app_s, "lean_rss_mb": lean_mb,
                      "app_rss_mb": app_mb, "lean_per_s": round(args.tasks / lean, 1),
                      "app_per_s": round(args.tasks / app, 1), "qt_stall_ms": stall_ms}, default=lambda x: round(x, 2)))
    print(f"ratio={lean / app:.2f} rss_ratio={app_rss / lean_rss:.2f}")


def s_fmt(seconds: float) -> str:
    return f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # PySide6 6.12.0 aborted while tearing down a QApplication ("deallocating None"/"bool_dealloc"):
    # its void methods dropped a reference to None per call (cascade_studio/ui/qt_binding.py; the
    # dependency now excludes it). The measurements are printed: skipping the teardown costs nothing.
    os._exit(0)
