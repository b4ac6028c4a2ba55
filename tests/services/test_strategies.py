"""`strategies`: the four approaches on the held-out tasks, each figure equal to the one `whatif`
prints and the fine-tune record it draws on; empty rows say how to fill them."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from cascade_studio.cli import main
from cascade_studio.core.datasets import training_price
from cascade_studio.services.datasets import (
    DatasetFilters,
    build_dataset,
    training_prices,
    validation_task_ids,
)
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.evaluation import evaluate
from cascade_studio.services.finetune import tracker
from cascade_studio.services.finetune.backend import JobSpec
from cascade_studio.services.prompt_distill import distil_prompt
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.strategies import strategies_report
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.services.test_prompt_distill import collected


async def four_approaches(folder, base_url, tmp_path) -> str:
    """Teacher and the plain nano on 60 tasks; a dataset (30% held out); tier 2 fine-tuned on it and
    tier 1 prompt-distilled, both evaluated (collected) on the held-out tasks only. Returns the job id."""
    await collected(folder, base_url, n=60)
    with Workspace.open(folder) as ws:
        built = build_dataset(ws, tmp_path / "ds.jsonl", DatasetFilters(validation_share=0.3, seed=2))
        _, held = validation_task_ids(ws)
        state, _ = await tracker.start_job(ws, JobSpec("gpt-4o-mini", built.path), None, SecretStore())
        final = await tracker.watch(ws, state.id, SecretStore(), poll_s=0.05, max_poll_s=0.1)
        assert final.status == "succeeded"
        tracker.use_as_tier(ws, state.id, 2)
        tiers = TierRepository(ws).list()
        await evaluate(ws, tiers[-1], tiers[1], held, SecretStore(), collect=True, use_embeddings=False)
        result = await distil_prompt(ws, 1, 4, "nearest", SecretStore(), evaluate_first=True, force=True,
                                     use_embeddings=False)
        assert result.applied
    return state.id


def test_strategies_equal_whatif_and_the_fine_tune_record(tmp_path, sandbox_thread, capsys):
    sandbox_thread.config.job_seconds = 1.0
    folder = tmp_path / "ws"
    job_id = asyncio.run(four_approaches(folder, sandbox_thread.base_url, tmp_path))
    assert main(["-w", str(folder), "whatif", "--json", "--volume", "250000"]) == 0
    whatif = json.loads(capsys.readouterr().out)
    assert main(["-w", str(folder), "strategies", "--json", "--volume", "250000"]) == 0
    out = json.loads(capsys.readouterr().out)
    with Workspace.open(folder) as ws:
        assert out == json.loads(json.dumps(strategies_report(ws, volume=250000)))
        _, held = validation_task_ids(ws)
        job = JobStore(ws).get(job_id)
        price = training_price(training_prices(ws.path), job["base_model"])
        tiers = TierRepository(ws).list()
    rows = {r["strategy"]: r for r in out["rows"]}
    assert out["held_out_tasks"] == len(held) and whatif["tasks"] == len(held)  # the students answered only those
    teacher, prompt, tuned, cascade = (rows[k] for k in ("teacher_only", "prompt_distilled", "fine_tuned", "cascade"))
    assert all(r["available"] and r["tasks"] == len(held) for r in rows.values())
    t1, t2, t3 = whatif["tiers"]
    assert (teacher["cost_per_request_usd"], teacher["latency_p95_ms"], teacher["quality"]) == \
        (t3["cost_per_request_usd"], t3["latency_p95_ms"], t3["quality"])
    assert teacher["monthly_cost_usd"] == whatif["whatif"]["teacher_only_monthly_usd"]
    for row, fig in ((prompt, t1), (tuned, t2)):
        assert (row["cost_per_request_usd"], row["latency_p95_ms"], row["quality"]) == \
            (fig["cost_per_request_usd"], fig["latency_p95_ms"], fig["quality"])
        assert row["quality_loss"] == t3["quality"] - fig["quality"]
        assert row["cost_reduction"] == 1 - fig["cost_per_request_usd"] / t3["cost_per_request_usd"]
    assert prompt["model"] == tiers[0].model and prompt["demonstrations"] == "nearest, k=4"
    assert prompt["cost_to_make_usd"] == 0.0 and "0 requests" in prompt["cost_to_make_note"]
    assert tuned["model"] == job["fine_tuned_model"]
    assert tuned["cost_to_make_usd"] == float(Decimal(job["trained_tokens"]) * Decimal(str(price)) / 1_000_000)
    c, w = whatif["cascade"], whatif["whatif"]
    assert (cascade["cost_per_request_usd"], cascade["quality"], cascade["latency_p95_ms"]) == \
        (c["cost_per_request_usd"], c["quality"], c["latency_p95_ms"])
    assert cascade["monthly_cost_usd"] == w["monthly_run_cost_usd"]
    assert cascade["cost_to_make_usd"] == tuned["cost_to_make_usd"]
    assert main(["-w", str(folder), "strategies"]) == 0
    assert "Best fine-tuned student" in capsys.readouterr().out


def test_empty_rows_say_how_to_fill_them(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        prepare_demo(tmp_path / "ws", "http://127.0.0.1:9/v1")
        assert TaskRepository(ws).count() > 0
        out = strategies_report(ws)
    assert out["held_out_tasks"] is None and "no dataset has a validation split" in out["tasks_note"]
    for row in out["rows"]:
        assert not row["available"] and row["how_to_fill"]
    assert "distil prompt" in out["rows"][1]["how_to_fill"]
