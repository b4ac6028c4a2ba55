"""The collector's fast client (services.upstream) stores what the SDK's post stored: the same
content, tool calls, usage, cost, logprobs, confidences and verdicts, task for task."""

from pathlib import Path

from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace
from tests.services.test_collector import make_tier

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"
VOLATILE = ("latency_ms", "started_at", "finished_at", "id")  # when, and how long: not what was answered


def _stored(ws: Workspace) -> dict[str, dict]:
    repo = TrajectoryRepository(ws)
    out = {}
    for row in repo.summary_rows():
        traj, meta = repo.get(row["id"])
        record = {k: v for k, v in vars(traj).items() if k not in VOLATILE}
        response = dict(record.get("response") or {})
        response.pop("id", None), response.pop("created", None)
        record["response"] = response
        out[traj.task_id] = {"trajectory": record, "meta": {k: v for k, v in meta.items() if k not in VOLATILE},
                             "verdict": ws.conn.execute("SELECT correct FROM trajectories WHERE id = ?",
                                                        (row["id"],)).fetchone()[0]}
    return out


async def _collect(folder: Path, url: str, fast: bool) -> tuple[dict[str, dict], CollectionRun]:
    ws = Workspace.open(folder)
    import_tasks(ws, BFCL / "BFCL_v4_multiple.json")
    tier = make_tier(url, model="gpt-4o", confidence_method="tool_name_prob", max_concurrency=8)
    run, _ = start_or_resume(ws, tier, select_task_ids(ws, limit=24), {})
    runner = CollectionRun(ws, tier, SecretStore(), run, fast=fast)
    result = await runner.run()
    assert result.status == "done" and result.done == 24, result.message
    stored = _stored(ws)
    ws.close()
    return stored, runner


async def test_the_fast_client_stores_what_the_sdk_stored(sandbox, tmp_path):
    slow, slow_run = await _collect(tmp_path / "sdk", sandbox.base_url, fast=False)
    fast, fast_run = await _collect(tmp_path / "fast", sandbox.base_url, fast=True)
    assert slow_run._fast is None and fast_run._fast is not None  # each took the path it was asked to
    assert slow.keys() == fast.keys() and len(fast) == 24
    for task_id in slow:
        assert fast[task_id] == slow[task_id], task_id
    one = next(iter(fast.values()))["trajectory"]
    assert one["tool_calls"] and one["logprobs"] and one["cost_micro"] > 0 and one["usage"].total > 0
