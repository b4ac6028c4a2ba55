"""Collection throughput: the app's collection run (retries, rate limits, SQLite commit per
trajectory, confidence, cost) against bare loops over the same sandbox, same tier, same requests
(tools and logprobs), same concurrency, in the same run:

- lean (the baseline): the stack the app itself uses, with nothing around it: the SDK's low-level
  `client.post(..., cast_to=bytes)` over the app's HTTP client, then `orjson.loads`, a semaphore
  for the concurrency. This is the strongest simple loop a competent engineer would write.
- sdk (for reference): `client.chat.completions.create`, which also builds pydantic models of
  every answer (the slower baseline this benchmark used to compare against).

The app's run is driven by a qasync loop, as in the GUI, while a 5 ms Qt timer measures the
longest stall of the Qt event loop.

Last line: `ratio=<app/lean throughput> stall_ms=<longest Qt event-loop stall>`
(goals: ratio >= 0.8, stall < 50 ms).

    python bench/collect.py [--tasks 2000] [--concurrency 64]
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
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tasks(n: int):
    from cascade_studio.core.tasks import parse_bfcl

    text = (ROOT / "resources" / "bfcl" / "BFCL_v4_simple_python.json").read_text()
    base = parse_bfcl(text, "bench.json")
    tasks = []
    for i in range(n):
        t = base[i % len(base)]
        tasks.append(type(t)(f"bench_{i}", t.category, t.messages, t.tools, None, "bench"))
    return tasks


def bench_tier(url: str, concurrency: int):
    """The tier every loop uses (the app's run stores it): its requests ask for tools and logprobs."""
    from cascade_studio.core.tiers import Provider, Tier

    return Tier(tier=1, model="gpt-4o-mini", base_url=url, provider=Provider.SANDBOX, max_concurrency=concurrency,
                input_price=Decimal("0.15"), output_price=Decimal("0.6"))


async def bare(url: str, tasks, concurrency: int, kind: str) -> float:
    """Answers per second of a bare loop: `lean` (client.post + orjson) or `sdk` (pydantic models)."""
    import openai
    import orjson

    from cascade_studio.core.trajectory import build_request
    from cascade_studio.services.clients import http_client

    tier = bench_tier(url, concurrency)
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0, timeout=tier.timeout_s,
                                http_client=http_client(url))
    requests = [build_request(tier, t.messages, t.tools) for t in tasks]
    assert requests[0].get("logprobs") and requests[0].get("tools")
    sem = asyncio.Semaphore(concurrency)

    async def lean(request) -> None:
        async with sem:
            data = orjson.loads(await client.post("/chat/completions", body=request, cast_to=bytes))
            assert data["choices"][0]["logprobs"] is not None

    async def sdk(request) -> None:
        async with sem:
            await client.chat.completions.create(**request)

    one = lean if kind == "lean" else sdk
    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    elapsed = time.perf_counter() - start
    await client.close()
    return len(tasks) / elapsed


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
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = subprocess.Popen([sys.executable, "-m", "cascade_studio", "sandbox", "--port", str(port),
                               "--latency-scale", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    server.stdout.readline()
    try:
        tasks = make_tasks(args.tasks)
        warm = make_tasks(100)
        asyncio.run(bare(url, warm, args.concurrency, "lean"))
        lean_rate = asyncio.run(bare(url, tasks, args.concurrency, "lean"))
        sdk_rate = asyncio.run(bare(url, tasks, args.concurrency, "sdk"))
        with tempfile.TemporaryDirectory() as tmp:
            app_rate, stall_ms = app_run(url, tasks, args.concurrency, Path(tmp))
    finally:
        server.terminate()
        server.wait()
    print(json.dumps({"tasks": args.tasks, "concurrency": args.concurrency, "lean_per_s": round(lean_rate, 1),
                      "sdk_per_s": round(sdk_rate, 1), "app_per_s": round(app_rate, 1)}))
    print(f"app/sdk={app_rate / sdk_rate:.2f} (pydantic parsing, for reference)")
    print(f"ratio={app_rate / lean_rate:.2f} stall_ms={stall_ms:.0f}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # PySide6 6.12.0 aborted while tearing down a QApplication ("deallocating None"/"bool_dealloc"):
    # its void methods dropped a reference to None per call (cascade_studio/ui/qt_binding.py; the
    # dependency now excludes it). The measurements are printed: skipping the teardown costs nothing.
    os._exit(0)
