"""Gateway overhead: throughput and latency through `cascade-studio serve` against the lean
passthrough a competent engineer would write, and against calling tier 1 directly.

Every server runs in its own process: the sandbox (--latency-scale 0), the gateway (one worker
unless --gateway-args says otherwise) with a policy whose tier 1 keeps every answer (threshold 0,
so each request through it is one tier-1 request plus the gateway's work: building the tier's
request, deciding on the answer, the JSONL log line), and the passthrough (PASSTHROUGH below: a
Starlette endpoint that builds the same upstream body with orjson and forwards it over one pooled
httpx client, returning the upstream bytes). The load comes from a lean asyncio HTTP/1.1 client in
this process (keep-alive connections, BFCL requests with their tools), so the client costs little.

Rounds are interleaved (direct, passthrough, gateway, in a rotating order) and the figures are
medians over rounds, at --concurrency (throughput) and at concurrency 1 (added latency).
LiteLLM's proxy is measured as a peer when `litellm` is installed (it is not, here).

    python bench/gateway.py [--rounds 3] [--requests 600] [--concurrency 64] [--gateway-args "--workers 2"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier  # noqa: E402
from cascade_studio.core.trajectory import build_request  # noqa: E402
from cascade_studio.services.policy import policy_document  # noqa: E402

MODELS = ("gpt-4.1-nano", "gpt-4o-mini", "gpt-4o")

PASSTHROUGH = """
import sys, httpx2, orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
port, upstream = int(sys.argv[1]), sys.argv[2]
client = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=256, max_keepalive_connections=256), timeout=60)
headers = {"authorization": "Bearer bench", "content-type": "application/json"}
async def chat(request):
    body = orjson.loads(await request.body())
    upstream_body = {"model": "gpt-4.1-nano", "messages": body["messages"], "temperature": 0.0,
                     "logprobs": True, "top_logprobs": 5}
    if body.get("tools"):
        upstream_body["tools"] = body["tools"]
    r = await client.post(upstream + "/chat/completions", content=orjson.dumps(upstream_body), headers=headers)
    return Response(r.content, r.status_code, media_type="application/json")
app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server for port {port} exited ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


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


def raw_requests(port: int, path: str, bodies: list[dict]) -> list[bytes]:
    out = []
    for body in bodies:
        data = json.dumps(body).encode()
        out.append((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer bench\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
    return out


async def _worker(port: int, requests: list[bytes], counter, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in counter:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            status = await reader.readline()
            length, chunked = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                low = line.lower()
                if low.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
                    chunked = True
            body = b""
            if chunked:
                while True:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    body += (await reader.readexactly(size + 2))[:-2]
                    if size == 0:
                        break
            else:
                body = await reader.readexactly(length)
            if not status.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"port {port}: unexpected response {status!r}: {body[:300]!r}")
            latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        writer.close()


async def measure(port: int, requests: list[bytes], n: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, p50 ms) of n requests at `concurrency` keep-alive connections (after a warm-up)."""
    warm: list[float] = []
    it = iter(range(min(n, 2 * concurrency)))
    await asyncio.gather(*(_worker(port, requests, it, warm) for _ in range(concurrency)))
    latencies: list[float] = []
    it = iter(range(n))
    t0 = time.perf_counter()
    await asyncio.gather(*(_worker(port, requests, it, latencies) for _ in range(concurrency)))
    return n / (time.perf_counter() - t0), statistics.median(latencies)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its children have used so far."""
    import psutil

    total = 0.0
    for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB of a process and its children: PSS shares copy-on-write pages fairly."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    rss = pss = 0
    for p in procs:
        try:
            full = p.memory_full_info()
            rss += full.rss
            pss += getattr(full, "pss", full.rss)
        except psutil.Error:
            pass
    return rss / 1e6, pss / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=600, help="per round at --concurrency")
    ap.add_argument("--serial", type=int, default=100, help="per round at concurrency 1")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--log-content", default="hash", choices=["none", "hash", "full"])
    ap.add_argument("--gateway-args", default="", help="extra `serve` options, e.g. '--workers 2'")
    ap.add_argument("--second-gateway-args", default=None,
                    help="measure a second gateway too, e.g. '--workers 2' or '--shadow-rate 0.1'")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = []
    ports: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sb = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "cascade_studio", "sandbox", "--port", str(sb),
                                           "--latency-scale", "0"], env=env, stdout=subprocess.DEVNULL))
            wait_port(sb, procs[-1])
            ports["direct"] = sb
            sandbox_url = f"http://127.0.0.1:{sb}/v1"
            tiers = [Tier(tier=i + 1, model=m, provider=Provider.SANDBOX, base_url=sandbox_url, threshold=0.0,
                          confidence_method=ConfidenceMethod.TOOL_NAME_PROB) for i, m in enumerate(MODELS)]
            policy = Path(tmp) / "policy.json"
            policy.write_text(json.dumps(policy_document(tiers)))
            ports["passthrough"] = free_port()
            procs.append(subprocess.Popen([sys.executable, "-c", PASSTHROUGH, str(ports["passthrough"]), sandbox_url],
                                          env=env, stdout=subprocess.DEVNULL))
            wait_port(ports["passthrough"], procs[-1])
            pids = {"direct": procs[0].pid, "passthrough": procs[1].pid}
            gateways = [("gateway", args.gateway_args)]
            if args.second_gateway_args is not None:
                gateways.append(("gateway " + args.second_gateway_args, args.second_gateway_args))
            for name, extra in gateways:
                ports[name] = free_port()
                logs = Path(tmp) / f"logs-{len(pids)}"
                procs.append(subprocess.Popen([sys.executable, "-m", "cascade_studio", "serve", "--policy", str(policy),
                                               "--port", str(ports[name]), "--log", str(logs), "--log-content",
                                               args.log_content, *shlex.split(extra)], env=env,
                                              stdout=subprocess.DEVNULL))
                wait_port(ports[name], procs[-1])
                pids[name] = procs[-1].pid
            work = tasks()
            bodies = {"direct": [build_request(tiers[0], m, t) for m, t in work]}
            client_bodies = [{"model": "cascade", "messages": m, "tools": t} for m, t in work]
            names = list(ports)
            reqs = {name: raw_requests(ports[name], "/v1/chat/completions", bodies.get(name, client_bodies))
                    for name in names}
            cpu: dict[str, list[float]] = {n: [] for n in names}  # ms of the server's CPU per request
            rates: dict[str, list[float]] = {n: [] for n in names}
            p50s: dict[str, list[float]] = {n: [] for n in names}
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    before = tree_cpu_s(pids[name]), 0.0
                    rate, _ = asyncio.run(measure(ports[name], reqs[name], args.requests, args.concurrency))
                    own = tree_cpu_s(pids[name]) - before[0]  # the server's own CPU (warm-up included)
                    cpu[name].append(own * 1000 / (args.requests + min(args.requests, 2 * args.concurrency)))
                    _, p50 = asyncio.run(measure(ports[name], reqs[name], args.serial, 1))
                    rates[name].append(rate)
                    p50s[name].append(p50)
            memory = {name: tree_memory_mb(pid) for name, pid in pids.items() if name.startswith("gateway")}
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(10)
    load = os.getloadavg()
    print(f"{args.rounds} interleaved rounds; {args.requests} requests at concurrency {args.concurrency}, "
          f"{args.serial} at concurrency 1; {os.cpu_count()} cores, load average {load[0]:.1f} at the end")
    rate = {n: statistics.median(v) for n, v in rates.items()}
    p50 = {n: statistics.median(v) for n, v in p50s.items()}
    cpu_ms = {n: statistics.median(v) for n, v in cpu.items()}
    for name in names:
        mem = f"; RSS {memory[name][0]:.0f} MB, PSS {memory[name][1]:.0f} MB" if name in memory else ""
        print(f"{name:>28}: {rate[name]:7.1f} req/s (rounds {', '.join(f'{x:.0f}' for x in rates[name])}), "
              f"p50 at concurrency 1 {p50[name]:.2f} ms; its own CPU {cpu_ms[name]:.2f} ms a request "
              f"(a ceiling of {1000 / cpu_ms[name]:,.0f} req/s per core){mem}")
    for name in names:
        if name.startswith("gateway"):
            print(f"{name}: ratio_to_passthrough={rate[name] / rate['passthrough']:.2f} "
                  f"cpu_ratio_to_passthrough={cpu_ms['passthrough'] / cpu_ms[name]:.2f} "
                  f"ratio_to_direct={rate[name] / rate['direct']:.2f} "
                  f"added_p50_ms_over_direct={p50[name] - p50['direct']:.2f}")
    print("(ratio: throughput, which the load of the shared machine moves; cpu_ratio: the passthrough's CPU per "
          "request over the gateway's, a ceiling ratio the load moves far less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
