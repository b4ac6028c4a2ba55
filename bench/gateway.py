"""Gateway overhead: throughput and latency through `cascade-studio serve` against calling tier 1
directly, with the same client (the openai SDK's AsyncOpenAI) and the same concurrency (64).

The sandbox runs in its own process with --latency-scale 0; the gateway runs in its own process
(`cascade-studio serve`, one worker) with a policy whose tier 1 keeps every answer (threshold 0), so
each request through it is exactly one tier-1 request plus the gateway's work (building the tier's
request, parsing the answer, confidence and cost, the JSONL log line). Both measurements use the
same BFCL tasks and are taken in the same run. Prints the ratio of throughputs and the p50 latency
the gateway adds, in ms.

    python bench/gateway.py [--requests 2000] [--concurrency 64] [--log-content hash]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier  # noqa: E402
from cascade_studio.core.trajectory import build_request  # noqa: E402
from cascade_studio.services.policy import policy_document  # noqa: E402

MODELS = ("gpt-4.1-nano", "gpt-4o-mini", "gpt-4o")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited ({proc.returncode})")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # it answers (the sandbox wants a key for /models)
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def tasks() -> list[tuple[list, list]]:
    out = []
    for line in (ROOT / "cascade_studio" / "resources" / "bfcl" / "BFCL_v4_simple_python.json").read_text().splitlines():
        task = json.loads(line)
        tools = []
        for fn in task["function"]:
            fn = json.loads(json.dumps(fn).replace('"dict"', '"object"').replace('"float"', '"number"')
                            .replace('"tuple"', '"array"').replace('"any"', '"string"'))
            fn["name"] = fn["name"].replace(".", "_")
            tools.append({"type": "function", "function": fn})
        out.append((task["question"][0], tools))
    return out


async def load(base_url: str, bodies: list[dict], n: int, concurrency: int) -> tuple[float, list[float]]:
    """(requests/s, latencies in ms) of n requests at `concurrency`, one shared AsyncOpenAI client."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            await client.post("/chat/completions", body=body, cast_to=bytes)
            latencies.append((time.perf_counter() - t0) * 1000)

    warm = iter(range(min(200, n)))
    counter, real = warm, counter
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.clear()
    counter = real
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await client.close()
    return n / elapsed, latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--log-content", default="hash", choices=["none", "hash", "full"])
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sandbox_port, gateway_port = free_port(), free_port()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(subprocess.Popen([sys.executable, "-m", "cascade_studio", "sandbox", "--port", str(sandbox_port),
                                           "--latency-scale", "0"], env=env, stdout=subprocess.DEVNULL))
            sandbox_url = f"http://127.0.0.1:{sandbox_port}/v1"
            wait_up(sandbox_url + "/models", procs[0])
            tiers = [Tier(tier=i + 1, model=m, provider=Provider.SANDBOX, base_url=sandbox_url, threshold=0.0,
                          confidence_method=ConfidenceMethod.TOOL_NAME_PROB) for i, m in enumerate(MODELS)]
            policy = Path(tmp) / "policy.json"
            policy.write_text(json.dumps(policy_document(tiers)))
            procs.append(subprocess.Popen([sys.executable, "-m", "cascade_studio", "serve", "--policy", str(policy),
                                           "--port", str(gateway_port), "--log", str(Path(tmp) / "logs"),
                                           "--log-content", args.log_content], env=env, stdout=subprocess.DEVNULL))
            wait_up(f"http://127.0.0.1:{gateway_port}/healthz", procs[1])
            work = tasks()
            direct_bodies = [build_request(tiers[0], m, t) for m, t in work]
            gateway_bodies = [{"model": "cascade", "messages": m, "tools": t} for m, t in work]
            direct_rate, direct_lat = asyncio.run(load(sandbox_url, direct_bodies, args.requests, args.concurrency))
            gw_rate, gw_lat = asyncio.run(load(f"http://127.0.0.1:{gateway_port}/v1", gateway_bodies, args.requests,
                                               args.concurrency))
            logged = sum(1 for f in (Path(tmp) / "logs").glob("*.jsonl") for _ in f.open())
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(10)
    d50, g50 = statistics.median(direct_lat), statistics.median(gw_lat)
    print(f"tier 1 directly: {direct_rate:,.0f} requests/s, p50 {d50:.1f} ms "
          f"(concurrency {args.concurrency}, {args.requests} requests)")
    print(f"through gateway: {gw_rate:,.0f} requests/s, p50 {g50:.1f} ms ({logged} log lines, content "
          f"{args.log_content})")
    print(f"ratio={gw_rate / direct_rate:.2f} added_p50_ms={g50 - d50:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
