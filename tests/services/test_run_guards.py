"""Issue 14: one run per tier at a time (across processes; a dead holder never blocks), and a full
disk stops a run at once, in words, keeping what was saved so the next run resumes after it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade_studio.cli import main
from cascade_studio.sandbox.app import SandboxConfig
from cascade_studio.sandbox.server import SandboxThread
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.run_lock import RunBusy, TierRunLock
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace
from tests.services.test_collector import make_tier, synthetic_tasks

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_refuses_a_second_holder_and_frees_on_release(tmp_path):
    first = TierRunLock(tmp_path, 2, run_id=7)
    first.acquire()
    with pytest.raises(RunBusy) as err:
        TierRunLock(tmp_path, 2, run_id=8).acquire()
    assert f"process {os.getpid()} (run 7" in str(err.value) and err.value.code == 4
    TierRunLock(tmp_path, 1, run_id=9).acquire()  # another tier is independent
    first.release()
    with TierRunLock(tmp_path, 2, run_id=8):
        pass


def test_a_second_collect_process_is_refused_and_a_killed_one_does_not_block(tmp_path, capsys):
    sandbox = SandboxThread(SandboxConfig(latency_scale=1.0))
    url = sandbox.start()
    try:
        ws = tmp_path / "ws"
        assert main(["-w", str(ws), "tiers", "set", "1", "--model", "gpt-4o", "--base-url", url,
                     "--provider", "sandbox", "--concurrency", "2"]) == 0
        assert main(["-w", str(ws), "tasks", "import", str(ROOT / "resources" / "bfcl" / "BFCL_v4_multiple.json")]) == 0
        capsys.readouterr()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "cascade_studio", "-w", str(ws), "collect", "--tier", "1", "--json"]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        lock = ws / "locks" / "tier-1.lock"
        deadline = time.time() + 30
        while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.1)
        second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert second.returncode == 4, second.stderr
        assert f"process {first.pid}" in second.stderr and "twice" in second.stderr
        os.kill(first.pid, signal.SIGKILL)  # the holder dies: the OS frees the lock
        first.wait()
        third = subprocess.run([*cmd[:-1], "--limit", "5", "--json"], capture_output=True, text=True, env=env,
                               cwd=ROOT, timeout=120)
        assert third.returncode == 0, third.stderr
        assert json.loads(third.stdout)["status"] == "done"
    finally:
        sandbox.stop()


async def test_a_full_disk_stops_the_run_in_words_and_the_next_run_resumes(sandbox, tmp_path, monkeypatch):
    ws = Workspace.open(tmp_path / "ws")
    synthetic_tasks(ws, 40)
    tier = make_tier(sandbox.base_url, max_concurrency=4)
    TierRepository(ws).replace_all([tier])
    ids = select_task_ids(ws)
    real_save = TrajectoryRepository.save
    saved = []

    def filling_save(self, run_id, traj, category="", trial=0, correct=None):
        if len(saved) >= 15:
            raise sqlite3.OperationalError("database or disk is full")
        saved.append(traj.task_id)
        return real_save(self, run_id, traj, category, trial, correct)

    monkeypatch.setattr(TrajectoryRepository, "save", filling_save)
    run, _ = start_or_resume(ws, tier, ids, {})
    result = await CollectionRun(ws, tier, SecretStore(), run).run()
    assert result.status == "failed" and "is full" in result.message and str(ws.path) in result.message
    assert result.done == 15 and result.total == 40
    sent = sandbox.sandbox.request_count
    assert sent < 40  # stopped at once, not after sending everything
    monkeypatch.setattr(TrajectoryRepository, "save", real_save)
    again, resumed = start_or_resume(ws, tier, ids, {})
    second = await CollectionRun(ws, tier, SecretStore(), again).run()
    assert second.status == "done" and second.skipped == 15 and second.done == 40
    assert sandbox.sandbox.request_count - sent == 40 - 15  # nothing saved was asked for again
    ws.close()


def test_a_refused_collect_says_nothing_of_resuming(tmp_path, capsys):
    """Issue 33: a second `collect` printed "Resuming run 1" before the refusal."""
    ws = tmp_path / "ws"
    assert main(["-w", str(ws), "tiers", "set", "1", "--model", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1",
                 "--provider", "sandbox"]) == 0
    assert main(["-w", str(ws), "tasks", "import", str(ROOT / "resources" / "bfcl" / "BFCL_v4_multiple.json")]) == 0
    with Workspace.open(ws) as w:
        from cascade_studio.services.collector import start_or_resume

        start_or_resume(w, TierRepository(w).get(1), select_task_ids(w, limit=3), {})  # an unfinished run 1
    capsys.readouterr()
    with TierRunLock(ws, 1, run_id=1):  # another process collects tier 1
        code = main(["-w", str(ws), "collect", "--tier", "1", "--limit", "3"])
    err = capsys.readouterr().err
    assert code == 4 and "is being collected right now" in err
    assert "Resuming" not in err and "Sending" not in err and "Would" not in err
    with Workspace.open(ws) as w:
        assert w.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # no run started either
