"""Collection runs against the sandbox over real HTTP: faults, retries, rate limits, resume."""

import asyncio
import random
from decimal import Decimal
from pathlib import Path

import pytest

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.sandbox.faults import parse_faults
from cascade_studio.services.collector import (
    CollectionRun,
    RateLimiter,
    backoff_delay,
    select_task_ids,
    start_or_resume,
)
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"


def synthetic_tasks(ws, n):
    from cascade_studio.core.tasks import Task

    tool = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}
    TaskRepository(ws).upsert([Task(f"t{i:04d}", "weather" if i % 2 else "chat",
                                    [{"role": "user", "content": f"What is the weather in City{i}?"}], [tool])
                               for i in range(n)])


def make_tier(url, **kw):
    base = dict(tier=1, model="gpt-4o-mini", base_url=url, provider=Provider.SANDBOX, max_concurrency=16,
                input_price=Decimal("0.15"), output_price=Decimal("0.6"), timeout_s=10)
    base.update(kw)
    return Tier(**base)


async def test_run_with_20_percent_faults_completes_without_duplicates(sandbox, tmp_path):
    sandbox.config.faults = parse_faults("429=0.08,500=0.06,drop=0.06,retry_after=0.01")
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 500)
    tier = make_tier(sandbox.base_url, max_concurrency=32)
    TierRepository(ws).replace_all([tier])
    ids = select_task_ids(ws)
    run, resumed = start_or_resume(ws, tier, ids, {})
    progress_seen = []
    runner = CollectionRun(ws, tier, SecretStore(), run, max_attempts=10, backoff_base=0.01,
                           on_progress=lambda p: progress_seen.append((p.done, p.total)))
    result = await runner.run()
    assert result.status == "done", result.message
    assert result.done == 500 and result.failed == 0 and result.retries > 0
    count, distinct = ws.conn.execute("SELECT count(*), count(DISTINCT task_id) FROM trajectories").fetchone()
    assert count == distinct == 500
    assert progress_seen[-1] == (500, 500)
    total_cost = ws.conn.execute("SELECT sum(cost_micro) FROM trajectories").fetchone()[0]
    assert result.cost_micro == total_cost > 0
    ws.close()


async def test_trajectory_contents(sandbox, tmp_path):
    ws = Workspace.open(tmp_path)
    import_tasks(ws, BFCL / "BFCL_v4_simple_python.json")
    tier = make_tier(sandbox.base_url, model="gpt-4o", confidence_method="tool_name_prob")
    run, _ = start_or_resume(ws, tier, select_task_ids(ws, limit=5), {})
    await CollectionRun(ws, tier, SecretStore(), run).run()
    rows = TrajectoryRepository(ws).summary_rows()
    traj, meta = TrajectoryRepository(ws).get(rows[0]["id"])
    assert traj.status == "ok" and traj.tool_name == "calculate_triangle_area"
    assert traj.tool_calls[0]["arguments"] == {"base": 10, "height": 5}
    assert traj.request["tools"] and traj.request["logprobs"] is True
    assert traj.usage.prompt_tokens > 0 and traj.latency_ms > 0 and traj.cost_micro > 0
    assert 0 < traj.conf_tool <= 1 and 0 < traj.conf_min <= traj.conf_mean <= 1
    assert traj.logprobs and traj.system_fingerprint.startswith("fp_") and meta["category"] == "simple_python"
    assert traj.response["object"] == "chat.completion"
    ws.close()


async def test_resume_skips_finished_tasks(sandbox, tmp_path):
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 40)
    tier = make_tier(sandbox.base_url, max_concurrency=4)
    ids = select_task_ids(ws)
    run, _ = start_or_resume(ws, tier, ids, {})
    runner = CollectionRun(ws, tier, SecretStore(), run)
    task = asyncio.ensure_future(runner.run())
    while runner.progress.done < 10:
        await asyncio.sleep(0.01)
    runner.cancel()
    first = await task
    assert first.status == "cancelled" and 10 <= first.done < 40
    again, resumed = start_or_resume(ws, tier, ids, {})
    assert resumed and again.id == run.id
    second = await CollectionRun(ws, tier, SecretStore(), again).run()
    assert second.status == "done" and second.skipped == first.done and second.done == 40
    assert ws.conn.execute("SELECT count(*), count(DISTINCT task_id) FROM trajectories").fetchone() == (40, 40)
    fresh, resumed = start_or_resume(ws, tier, ids, {})
    assert not resumed and fresh.id != run.id  # a finished run is not resumed: a new one starts
    ws.close()


async def test_pause_and_resume(sandbox, tmp_path):
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 30)
    tier = make_tier(sandbox.base_url, max_concurrency=2)
    run, _ = start_or_resume(ws, tier, select_task_ids(ws), {})
    runner = CollectionRun(ws, tier, SecretStore(), run)
    task = asyncio.ensure_future(runner.run())
    while runner.progress.done < 4:
        await asyncio.sleep(0.005)
    runner.pause()
    await asyncio.sleep(0.1)
    frozen = runner.progress.done
    await asyncio.sleep(0.2)
    assert runner.progress.done <= frozen + 2  # in-flight requests may finish, nothing new starts
    assert ws.conn.execute("SELECT status FROM runs").fetchone()[0] == "paused"
    runner.resume()
    result = await task
    assert result.done == 30
    ws.close()


async def test_fatal_errors_stop_the_run(sandbox, tmp_path):
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 20)
    tier = make_tier(sandbox.base_url, model="gpt-nope")
    run, _ = start_or_resume(ws, tier, select_task_ids(ws), {})
    result = await CollectionRun(ws, tier, SecretStore(), run).run()
    assert result.status == "failed" and "404" in result.message and result.done == 0
    assert result.failed < 20  # stopped early instead of failing every task
    ws.close()


async def test_non_retryable_errors_are_recorded_and_retried_next_time(sandbox, tmp_path):
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 10)
    tier = make_tier(sandbox.base_url)
    ids = select_task_ids(ws)
    sandbox.config.faults = parse_faults("500=1")
    run, _ = start_or_resume(ws, tier, ids, {})
    result = await CollectionRun(ws, tier, SecretStore(), run, max_attempts=2, backoff_base=0.001).run()
    assert result.failed == 10 and result.status == "failed"
    assert ws.conn.execute("SELECT count(*) FROM trajectories WHERE status = 'error'").fetchone()[0] == 10
    sandbox.config.faults = parse_faults("")
    again, resumed = start_or_resume(ws, tier, ids, {})
    assert resumed
    result = await CollectionRun(ws, tier, SecretStore(), again).run()
    assert result.done == 10 and result.status == "done"
    assert ws.conn.execute("SELECT count(*) FROM trajectories WHERE status = 'ok'").fetchone()[0] == 10
    assert ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == 10
    ws.close()


async def test_rate_limiter_spaces_requests():
    t = [0.0]
    limiter = RateLimiter(rpm=60, tpm=None, clock=lambda: t[0])
    for _ in range(60):
        await limiter.acquire(10)  # the bucket starts full
    waited = asyncio.ensure_future(limiter.acquire(10))
    await asyncio.sleep(0.02)
    assert not waited.done()
    t[0] += 1.0  # one second refills one request at 60/min
    await asyncio.wait_for(waited, 1)


def test_backoff_honours_retry_after_and_grows():
    rng = random.Random(1)
    assert backoff_delay(0, 5.0, rng=rng) >= 5.0
    caps = [max(backoff_delay(a, None, base=0.5, rng=random.Random(k)) for k in range(50)) for a in range(5)]
    assert caps == sorted(caps) and caps[-1] <= 8.0


@pytest.mark.parametrize("limit", [3])
def test_select_task_ids(tmp_path, limit):
    with Workspace.open(tmp_path) as ws:
        synthetic_tasks(ws, 10)
        assert len(select_task_ids(ws, limit=limit)) == limit
        assert all(i for i in select_task_ids(ws, "weather"))
        assert len(select_task_ids(ws, "weather")) == 5
