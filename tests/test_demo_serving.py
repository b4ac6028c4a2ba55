"""`demo --no-gui` keeps its sandbox serving until Ctrl+C or SIGTERM (issue 21), and a run against a
server that is gone says so in its summary instead of "N tasks failed after retries"."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cascade_studio.cli import main
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.clients import failure_summary
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.services.test_collector import synthetic_tasks

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys\nfrom cascade_studio.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def start_demo(ws: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CLI, "-w", str(ws), "demo", "--no-gui"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "sandbox at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    serving = proc.stderr.readline()
    assert "until Ctrl+C" in serving, serving
    return proc, line.rsplit("sandbox at ", 1)[1].strip()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_no_gui_serves_until_a_signal_then_stops_cleanly(tmp_path, capsys, sig):
    ws = tmp_path / "demo"
    proc, base_url = start_demo(ws)
    try:
        # the sandbox still answers after `demo` printed its line: a run from another process completes
        assert main(["-w", str(ws), "collect", "--tier", "3", "--limit", "3", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["status"] == "done" and summary["done"] == 3
        assert proc.poll() is None
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert "Sandbox stopped." in err and "Traceback" not in err
    with socket.socket() as s:  # nothing listens there any more
        port = int(base_url.split(":")[2].split("/")[0])
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_once_prepares_and_says_the_sandbox_stops(tmp_path, capsys):
    assert main(["-w", str(tmp_path / "demo"), "demo", "--no-gui", "--once"]) == 0
    out, err = capsys.readouterr()
    assert "3 simulated tiers" in out and "The sandbox stops now" in err
    assert main(["-w", str(tmp_path / "demo"), "demo", "--once"]) == 2  # --once is for --no-gui
    assert "--once goes with --no-gui" in capsys.readouterr().err


async def test_a_run_against_a_server_that_is_gone_names_the_cause(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 5)
    tier = Tier(tier=1, model="gpt-4o", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("2.5"),
                output_price=Decimal("10"), max_concurrency=16)
    TierRepository(ws).replace_all([tier])
    run, _ = start_or_resume(ws, tier, select_task_ids(ws), {})
    result = await CollectionRun(ws, tier, SecretStore(), run, max_attempts=2, backoff_base=0.01).run()
    ws.close()
    assert result.status == "failed" and result.failed == 5
    assert result.message.startswith(f"5 tasks failed, none answered: Connection refused by {url}")
    assert "Is the server running" in result.message


def test_failure_summary_words():
    refused = "Connection refused by http://x/v1: nothing is listening there. Is the server running?"
    assert failure_summary(5, 0, refused) == f"5 tasks failed, none answered: {refused}"
    assert failure_summary(1, 3, refused) == f"1 task failed after retries; the last error: {refused} Run again to retry them."
    assert failure_summary(2, 0, "500 from http://x/v1: boom.") == (
        "2 tasks failed after retries; the last error: 500 from http://x/v1: boom. Run again to retry them.")
    assert failure_summary(2, 0, "") == "2 tasks failed after retries; run again to retry them."
