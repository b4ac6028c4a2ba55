"""Round trip: requests served by the gateway come home with `traffic import` as tasks, trajectories
of the generation that answered (escalated ones tagged hard-case), production figures and shadow
agreement; re-importing changes nothing; the hard cases' action collects the teacher and builds."""

from __future__ import annotations

import json

import openai
import pytest

from cascade_studio.cli import main
from cascade_studio.core.tiers import generation_id
from cascade_studio.core.traffic import digest
from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.server import GatewayServer
from cascade_studio.services.hard_cases import collect_hard_cases
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.traffic import TrafficImportError, import_traffic, report
from cascade_studio.services.trajectory_io import list_rows
from cascade_studio.store.production import ProductionRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.gateway.conftest import write_policy
from tests.gateway.helpers import tiers_at, write


async def serve_tasks(policy, logs, tasks, *, content="full", shadow_rate=1.0, category="weather"):
    config = GatewayConfig(str(policy), port=0, log_dir=str(logs), log_content=content, shadow_rate=shadow_rate)
    async with GatewayServer(config) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
        for task in tasks:
            await client.chat.completions.create(model="cascade", messages=task.messages,
                                                 metadata={"category": category},
                                                 **({"tools": task.tools} if task.tools else {}))
        await gw.gateway.drain()
        await client.close()


async def test_traffic_import_round_trip(tmp_path, sandbox):
    from cascade_studio.services.demo import prepare_demo

    prepare_demo(tmp_path / "ws", sandbox.base_url)
    policy = write_policy(tmp_path / "ws", tmp_path / "policy.json")
    with Workspace.open(tmp_path / "ws") as ws:
        tasks = TaskRepository(ws).list(limit=25)
        tiers = TierRepository(ws).list()
    await serve_tasks(policy, tmp_path / "logs", tasks)
    lines = [json.loads(x) for f in (tmp_path / "logs").glob("*.jsonl") for x in f.read_text().splitlines()]
    requests = [r for r in lines if r["kind"] == "request"]
    shadows = [r for r in lines if r["kind"] == "shadow"]
    escalated = [r for r in requests if r["escalated"]]
    assert len(requests) == 25 and shadows and escalated
    assert len(shadows) == sum(1 for r in requests if r["answered_by"] != 3)  # rate 1: every lower-tier answer

    with Workspace.open(tmp_path / "ws") as ws:
        result = import_traffic(ws, tmp_path / "logs")
        assert (result.requests, result.new_requests, result.shadows) == (25, 25, len(shadows))
        assert result.escalated == len(escalated) and result.without_content == 0
        assert result.hard_cases == len({_task_id(r) for r in escalated})  # tasks, as the report counts them
        prod = [t for t in TaskRepository(ws).list() if t.source == "production"]
        assert len(prod) == 25 and {t.category for t in prod} == {"weather"}
        rows = [r for r in list_rows(ws) if r["task_id"].startswith("prod-")]
        expected = {(_task_id(r), a["tier"]) for r in requests for a in r["attempts"] if a["status"] == "ok"} | \
            {(_task_id(s), 3) for s in shadows}  # one trajectory per task and tier (and file)
        assert {(r["task_id"], r["tier"]) for r in rows} == expected and len(rows) == len(expected)
        assert all(r["generation"] == generation_id(tiers[r["tier"] - 1]) and r["current_generation"] for r in rows)
        hard = {r["task_id"] for r in rows if "hard-case" in r["tags"]}
        assert len(hard) == len({h["task_id"] for h in ProductionRepository(ws).hard_cases()}) > 0
        figures = report(ws)
        assert figures["requests"] == 25 and sum(figures["answered_share"].values()) == pytest.approx(1.0)
        assert figures["escalated"] == len(escalated) and figures["latency_p95_ms"] is not None
        agree = [s["agree"] for s in shadows]
        live = {t: v["samples"] for t, v in figures["live_agreement"].items()}
        assert sum(live.values()) == len(agree)
        assert float(figures["cost_usd"]) < float(figures["teacher_only_usd"])  # the cascade saved money
        again = import_traffic(ws, tmp_path / "logs")  # idempotent
        assert (again.requests, again.new_requests) == (25, 0) and ProductionRepository(ws).count() == 25
        assert len([r for r in list_rows(ws) if r["task_id"].startswith("prod-")]) == len(rows)

        result = await collect_hard_cases(ws, SecretStore(), tmp_path / "next.jsonl")
        assert result.hard_cases == len(hard) and result.failed == 0 and result.dataset.examples > 0
    assert (tmp_path / "next.jsonl").exists()


def _task_id(record):
    return "prod-" + digest([record["content"]["messages"], record["content"]["tools"]])[:16]


async def test_import_without_content_counts_requests_but_makes_no_tasks(tmp_path, sandbox, capsys):
    from cascade_studio.core.tasks import Task

    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    task = Task("t", "x", [{"role": "user", "content": "hello there"}])
    await serve_tasks(policy, tmp_path / "logs", [task], content="hash", shadow_rate=0)
    ws_dir = tmp_path / "ws"
    assert main(["-w", str(ws_dir), "traffic", "import", str(tmp_path / "logs"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 1 and out["tasks"] == 0 and out["without_content"] == 1
    assert main(["-w", str(ws_dir), "traffic", "report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "cascade-studio/traffic@1", "kind": "request", "id": "x"}\n')
    assert main(["-w", str(ws_dir), "traffic", "import", str(bad)]) == 1
    assert "bad.jsonl:1: time: missing" in capsys.readouterr().err
    with Workspace.open(ws_dir) as ws, pytest.raises(TrafficImportError, match="no .jsonl request logs"):
        import_traffic(ws, tmp_path / "ws")


async def test_a_judge_grades_production_answers_against_the_teachers_shadow_answers(tmp_path, sandbox, capsys):
    """Free-text requests served by the gateway with shadow sampling: after `traffic import`, the
    student's production answers are graded by a judge against the teacher's shadow answers (the
    shadows are teacher trajectories), and the verdicts are stored (a second run asks nothing)."""
    from cascade_studio.core.tasks import Task
    from cascade_studio.services.demo import prepare_demo

    prepare_demo(tmp_path / "ws", sandbox.base_url)
    policy = write_policy(tmp_path / "ws", tmp_path / "policy.json")
    questions = ["What should I pack for a week in Lisbon in March?", "Explain what a cascade of models is.",
                 "Summarise why caching helps an API gateway.", "How do I read a loss curve?"]
    tasks = [Task(f"q{i}", "chat", [{"role": "user", "content": q}]) for i, q in enumerate(questions)]
    await serve_tasks(policy, tmp_path / "logs", tasks, category="chat-prod")
    with Workspace.open(tmp_path / "ws") as ws:
        result = import_traffic(ws, tmp_path / "logs")
        assert result.requests == 4 and result.tasks == 4
        # the teacher's answer to each task: its shadow sample where a lower tier answered, else the escalation
        assert result.shadows + result.escalated >= 4 and result.shadows > 0, (result.shadows, result.escalated)
    base = ["-w", str(tmp_path / "ws"), "evaluate", "--student", "1", "--category", "chat-prod", "--all-tasks",
            "--no-embeddings", "--judge", "sandbox-reference", "--json"]
    import asyncio

    assert await asyncio.to_thread(main, base) == 0  # the CLI runs its own event loop
    out = json.loads(capsys.readouterr().out)
    judged = out["judged"]
    assert judged["text_tasks"] == 4 and judged["judged_tasks"] + judged["unparseable"] == 4, judged
    assert out["judge_totals"]["requests"] == 4
    assert await asyncio.to_thread(main, base) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["judge_totals"]["requests"] == 0 and again["judge_totals"]["reused"] == 4
    assert again["judged"]["answer_agreement"] == judged["answer_agreement"]
