"""The gateway answers as the app predicted: on the sandbox's deterministic models, the tier that
answers each request and what it costs are exactly what `whatif` computes for the same thresholds."""

from __future__ import annotations

import json

import openai
import pytest

from cascade_studio.core.tradeoffs import WhatIf, answering_tier, simulate, tradeoff_report
from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.server import GatewayServer
from cascade_studio.services.tradeoffs import load_outcomes
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


def _log_lines(folder):
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


async def test_gateway_reproduces_the_whatif_prediction(demo, tmp_path):
    ws_dir, ids, policy = demo
    with Workspace.open(ws_dir) as ws:
        tiers = TierRepository(ws).list()
        thresholds = [t.threshold for t in tiers[:-1]]
        outcomes = load_outcomes(ws, tiers)
        predicted = tradeoff_report(outcomes, thresholds, WhatIf(), "cascade")["cascade"]
        sim = simulate(outcomes, thresholds)
        chosen = dict(zip(outcomes.task_ids, answering_tier(outcomes, thresholds), strict=True))
        tasks = {t.id: t for t in TaskRepository(ws).list() if t.id in set(ids)}
    assert outcomes.n == len(ids) == 40 and 0 < predicted["answered_share"][0] < 1  # a real mix of tiers
    logs = tmp_path / "logs"
    async with GatewayServer(GatewayConfig(str(policy), port=0, log_dir=str(logs), log_content="full")) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="anything")
        answered, request_ids = {}, {}
        for task_id in outcomes.task_ids:
            task = tasks[task_id]
            raw = await client.chat.completions.with_raw_response.create(
                model="cascade", messages=task.messages, **({"tools": task.tools} if task.tools else {}))
            completion = raw.parse()
            assert completion.choices[0].message.tool_calls or completion.choices[0].message.content
            answered[task_id] = int(raw.headers["x-cascade-tier"])
            request_ids[task_id] = raw.headers["x-request-id"]
        await client.close()
    records = {r["id"]: r for r in _log_lines(logs) if r["kind"] == "request"}
    assert len(records) == outcomes.n
    # the tier answering each task is the one the simulator chose
    assert [answered[t] for t in outcomes.task_ids] == [outcomes.tiers[chosen[t]] for t in outcomes.task_ids]
    assert [records[request_ids[t]]["answered_by"] for t in outcomes.task_ids] == \
        [answered[t] for t in outcomes.task_ids]
    shares = [sum(1 for t in answered.values() if t == tier) / outcomes.n for tier in outcomes.tiers]
    assert shares == predicted["answered_share"]
    # every request's cost (each tier tried, as billed) is the simulator's, to the micro-dollar
    costs = [records[request_ids[t]]["cost_micro"] for t in outcomes.task_ids]
    assert costs == [int(round(c * 1e6)) for c in sim.per_task_cost]
    assert sum(costs) / 1e6 / outcomes.n == pytest.approx(predicted["cost_per_request_usd"], rel=1e-12, abs=0)
