"""`serve --workers N`: N forked workers answer on one shared socket; SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.gateway.helpers import ASK, tiers_at, write

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers are POSIX only")
def test_workers_share_one_socket_and_stop_together(tmp_path, sandbox_thread):
    policy = write(tmp_path / "p.json", tiers_at(sandbox_thread.base_url, sandbox_thread.base_url))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cascade_studio", "serve", "--policy", policy, "--port", str(port),
                             "--workers", "2", "--log", str(tmp_path / "logs")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(psutil.Process(proc.pid).children()) < 2 or not _answers(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
            time.sleep(0.2)
        workers = {c.pid for c in psutil.Process(proc.pid).children()}
        assert len(workers) == 2
        body = json.dumps({"model": "c", "messages": ASK}).encode()
        for _ in range(6):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                             {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as r:
                assert r.status == 200 and json.loads(r.read())["choices"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Gateway stopped." in out
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in workers)
        assert sum(1 for f in (tmp_path / "logs").glob("*.jsonl") for _ in f.open()) == 6
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
