"""`collect` from the command line: JSON summary, kill -9 in the middle, resume without duplicates."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cascade_studio.cli import main
from cascade_studio.sandbox.app import SandboxConfig
from cascade_studio.sandbox.server import SandboxThread

ROOT = Path(__file__).resolve().parents[1]
BFCL = ROOT / "resources" / "bfcl"


def setup_ws(ws: Path, url: str, capsys) -> None:
    assert main(["-w", str(ws), "tiers", "set", "1", "--model", "gpt-4o-mini", "--base-url", url,
                 "--provider", "sandbox", "--concurrency", "4"]) == 0
    assert main(["-w", str(ws), "tiers", "set", "2", "--model", "gpt-4o", "--base-url", url,
                 "--provider", "sandbox"]) == 0
    assert main(["-w", str(ws), "tasks", "import", str(BFCL / "BFCL_v4_simple_python.json")]) == 0
    assert main(["-w", str(ws), "tasks", "import", str(BFCL / "BFCL_v4_multiple.json")]) == 0
    capsys.readouterr()


def test_collect_json_summary_and_listing(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "ws"
    setup_ws(ws, sandbox_thread.base_url, capsys)
    assert main(["-w", str(ws), "collect", "--limit", "12", "--category", "multiple", "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert {k: summary[k] for k in ("done", "failed", "skipped", "tier")} == {"done": 12, "failed": 0, "skipped": 0,
                                                                             "tier": 2}
    assert summary["tokens"] > 0 and float(summary["cost_usd"]) > 0
    assert "12/12 done" in out.err  # progress on stderr
    assert main(["-w", str(ws), "collect", "--tier", "1", "--limit", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tier"] == 1
    assert main(["-w", str(ws), "trajectories", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 17
    for key in ("task_id", "tier", "model", "status", "confidence", "cost_usd", "latency_ms"):
        assert key in rows[0]
    assert main(["-w", str(ws), "trajectories", "list", "--tier", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    native, table = tmp_path / "t.jsonl", tmp_path / "t.csv"
    assert main(["-w", str(ws), "trajectories", "export", str(native)]) == 0
    assert main(["-w", str(ws), "trajectories", "export", str(table), "--format", "csv", "--tier", "2"]) == 0
    first = json.loads(native.read_text().splitlines()[0])
    assert first["response"]["object"] == "chat.completion" and "usage" in first["response"]
    assert {"task_id", "model", "latency_ms"} <= set(first)
    assert table.read_text().count("\n") == 13


def test_collect_errors(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["-w", str(ws), "collect"]) == 1
    assert "no tier" in capsys.readouterr().err
    assert main(["-w", str(ws), "tiers", "set", "1", "--model", "gpt-4o-mini"]) == 0
    assert main(["-w", str(ws), "collect"]) == 1
    assert "tasks import" in capsys.readouterr().err


def test_kill_9_then_resume_without_duplicates(tmp_path, capsys):
    sandbox = SandboxThread(SandboxConfig(latency_scale=0.4))
    url = sandbox.start()
    try:
        ws = tmp_path / "ws"
        setup_ws(ws, url, capsys)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "cascade_studio", "-w", str(ws), "collect", "--tier", "1", "--json"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        db = ws / "workspace.sqlite"
        deadline = time.time() + 60
        done = 0
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                conn = sqlite3.connect(db, timeout=5)
                done = conn.execute("SELECT count(*) FROM trajectories WHERE status='ok'").fetchone()[0]
                conn.close()
            except sqlite3.OperationalError:
                continue
            if done >= 20:
                break
        assert done >= 20, proc.stderr.read() if proc.poll() is not None else "too slow"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert again.returncode == 0, again.stderr
        summary = json.loads(again.stdout)
        assert summary["resumed"] and summary["done"] == 160 and summary["skipped"] >= 20
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*), count(DISTINCT task_id) FROM trajectories").fetchone() == (160, 160)
        conn.close()
    finally:
        sandbox.stop()
