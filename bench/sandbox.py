"""Sandbox throughput: chat completions per second, zero latency, 32 concurrent keep-alive clients.

The sandbox runs in its own process (as `cascade-studio sandbox`); the load comes from a lean
asyncio HTTP/1.1 client in this process, so the client costs little. The baseline, measured the
same way in the same run, is the HTTP stack's own ceiling for the same traffic: a bare
Starlette+uvicorn endpoint that reads the same requests and answers each with a fixed
chat.completion body of realistic size (the sandbox's own answer to a BFCL request with tools and
logprobs, rendered once), so the ratio shows what computing the answers costs on top of carrying
them. Rounds are interleaved, medians reported. Last line: `rate=<requests/s>`.

Measured (2 cores, load ~0.3-1): the Starlette route alone 7,200-9,500 req/s, 0.33-0.43x the bare
server; with the chat fast path (sandbox/app.py ChatFastPath: the plain case answered from ASGI
messages) 13,400 req/s against 19,000, 0.71x.

    python bench/sandbox.py [--seconds 5] [--concurrency 32]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SINGLE_BODY = json.dumps({
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}],
    "tools": [{"type": "function", "function": {
        "name": "calculate_triangle_area", "description": "Calculate the area of a triangle given its base and height.",
        "parameters": {"type": "object", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
                       "required": ["base", "height"]}}}],
    "logprobs": True, "top_logprobs": 3,
}).encode()

def bfcl_bodies() -> list[bytes]:
    """Distinct requests (the BFCL sample's tasks), so every answer is really computed."""
    bodies = []
    for line in (ROOT / "cascade_studio" / "resources" / "bfcl" / "BFCL_v4_simple_python.json").read_text().splitlines():
        task = json.loads(line)
        tools = []
        for fn in task["function"]:
            fn = json.loads(json.dumps(fn).replace('"dict"', '"object"').replace('"float"', '"number"')
                            .replace('"tuple"', '"array"').replace('"any"', '"string"'))
            tools.append({"type": "function", "function": fn})
        bodies.append(json.dumps({"model": "gpt-4o-mini", "messages": task["question"][0], "tools": tools,
                                  "logprobs": True, "top_logprobs": 3}).encode())
    return bodies


BODIES = bfcl_bodies()

BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
body = open(sys.argv[2], "rb").read()
async def ok(request):
    await request.body()
    return Response(body, media_type="application/json")
app = Starlette(routes=[Route("/v1/chat/completions", ok, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def realistic_body() -> tuple[bytes, float]:
    """The sandbox's answer to a mid-sized request (by answer size), and the mean answer size."""
    from cascade_studio.sandbox.app import Sandbox
    from cascade_studio.sandbox.routes.common import JSONResponse

    sandbox = Sandbox()
    answers = sorted((JSONResponse(sandbox.chat_routes.complete(json.loads(b))[0]).body for b in BODIES), key=len)
    return answers[len(answers) // 2], sum(map(len, answers)) / len(answers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


async def worker(port: int, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    requests = [(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer sk-bench\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
                for body in BODIES]
    n = len(counts)
    while time.perf_counter() < stop_at:
        writer.write(requests[(counts[0] + n) % len(requests)])
        status = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected response {status!r}")
        counts[0] += 1
    writer.close()


async def measure(port: int, seconds: float, concurrency: int) -> float:
    # warm-up
    counts = [0]
    await asyncio.gather(*(worker(port, time.perf_counter() + 0.5, counts) for _ in range(concurrency)))
    counts = [0]
    start = time.perf_counter()
    await asyncio.gather(*(worker(port, start + seconds, counts) for _ in range(concurrency)))
    return counts[0] / (time.perf_counter() - start)


def run_server(cmd: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_port(port)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    body, mean_size = realistic_body()
    fixed = Path(tempfile.mkdtemp()) / "chat_completion.json"
    fixed.write_bytes(body)
    bare_port, sandbox_port = free_port(), free_port()
    servers = [run_server([sys.executable, "-c", BARE_APP, str(bare_port), str(fixed)], bare_port),
               run_server([sys.executable, "-m", "cascade_studio", "sandbox", "--port", str(sandbox_port),
                           "--latency-scale", "0"], sandbox_port)]
    bare_rates, rates = [], []
    try:
        for r in range(args.rounds):  # interleaved, the order alternating
            order = [(bare_port, bare_rates), (sandbox_port, rates)]
            for port, out in order if r % 2 == 0 else order[::-1]:
                out.append(asyncio.run(measure(port, args.seconds, args.concurrency)))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait()
    bare_rate, rate = statistics.median(bare_rates), statistics.median(rates)
    print(f"{args.rounds} interleaved rounds of {args.seconds:g} s, concurrency {args.concurrency}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"baseline (bare starlette, a fixed {len(body):,}-byte chat.completion): {bare_rate:.0f} req/s "
          f"(rounds {', '.join(f'{x:.0f}' for x in bare_rates)})")
    print(f"sandbox chat completions (tools + logprobs, answers of {mean_size:,.0f} bytes on average): "
          f"{rate:.0f} req/s (rounds {', '.join(f'{x:.0f}' for x in rates)})")
    print(f"ratio={rate / bare_rate:.2f} (sandbox/baseline; goal >= 0.5)")
    print(f"rate={rate:.0f}")


if __name__ == "__main__":
    main()
