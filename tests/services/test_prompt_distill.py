"""Prompt distillation on the sandbox: `distil prompt` raises a simulated student's agreement on
held-out tasks, its demonstrations' tokens are paid for, and no demonstration ever comes from a
task the generation is evaluated on (random splits)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from cascade_studio.cli import main
from cascade_studio.core.tiers import generation_keys
from cascade_studio.services.collector import CollectionRun, start_or_resume
from cascade_studio.services.datasets import DatasetFilters, build_dataset, validation_task_ids
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.prompt_distill import build_candidate, distil_prompt
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace


async def collected(folder: Path, base_url: str, n: int = 150) -> list[str]:
    prepare_demo(folder, base_url)
    with Workspace.open(folder) as ws:
        ids = [t.id for t in TaskRepository(ws).list() if not t.is_episode][:n]
        tiers = TierRepository(ws).list()
        for tier in (tiers[0], tiers[-1]):
            run, _ = start_or_resume(ws, tier, ids, {})
            assert (await CollectionRun(ws, tier, SecretStore(), run).run()).failed == 0
    return ids


def mean_prompt_tokens(ws: Workspace, tier, task_ids: list[str]) -> float:
    repo = TrajectoryRepository(ws)
    latest = repo.latest_ok_ids(tier.tier, generation_keys(tier))
    rows = list(repo.by_ids([latest[t] for t in task_ids if t in latest], ["prompt_tokens", "cost_micro"]))
    return sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows)


async def test_distil_prompt_raises_agreement_on_held_out_tasks(tmp_path, sandbox):
    folder = tmp_path / "ws"
    await collected(folder, sandbox.base_url)
    with Workspace.open(folder) as ws:
        build_dataset(ws, tmp_path / "ds.jsonl", DatasetFilters(validation_share=0.4, seed=1))
        _, held_out = validation_task_ids(ws)
        plain = TierRepository(ws).get(1)
        result = await distil_prompt(ws, 1, 4, "nearest", SecretStore(), evaluate_first=True, use_embeddings=False)
        assert result.applied, result.sentence()
        new, old = result.comparison.candidate, result.comparison.current
        assert new.summary["overall"]["tasks"] == old.summary["overall"]["tasks"] == len(held_out)
        # deterministic (the split depends on the tasks and seed only; irrelevant examples do not re-draw
        # the sandbox's chances): +0.117 on this split, +0.067 to +0.183 over dataset seeds 0-11
        assert new.summary["overall"]["agreement"] >= old.summary["overall"]["agreement"] + 0.05
        assert "validation tasks" in result.sentence() and "left out" in result.sentence()
        tier = TierRepository(ws).get(1)
        assert tier.demonstrations is not None and tier.demonstrations.fingerprint() == result.program.fingerprint()
        assert not {d.task_id for d in tier.demonstrations.demonstrations} & set(held_out)
        # the longer prompts are paid for: the evaluation's answers carry the demonstrations' tokens
        (tokens_new, cost_new), (tokens_old, cost_old) = (mean_prompt_tokens(ws, tier, held_out),
                                                          mean_prompt_tokens(ws, plain, held_out))
        assert tokens_new > tokens_old + 100 and cost_new > cost_old
        stored = TrajectoryRepository(ws).generation_params(result.to_json()["generation"])
        assert stored["demonstrations"] == tier.demonstrations.fingerprint()

        # no demonstration comes from an evaluated task, over random splits and both modes
        rng = random.Random(7)
        for i in range(4):
            share, seed = rng.choice([0.2, 0.3, 0.5]), rng.randrange(1000)
            built = build_dataset(ws, tmp_path / f"ds{i}.jsonl", DatasetFilters(validation_share=share, seed=seed))
            _, valid = validation_task_ids(ws, built.id)
            for mode in ("fixed", "nearest"):
                cand = await build_candidate(ws, 1, 8, mode, dataset_id=built.id, seed=seed)
                demo_tasks = {d.task_id for d in cand.program.demonstrations}
                assert demo_tasks and not demo_tasks & set(valid)
                assert cand.excluded == len(valid) and cand.program.made["dataset"] == built.id


def test_fixed_mode_stratifies_and_cli(tmp_path, sandbox_thread, capsys):
    folder = tmp_path / "ws"
    asyncio.run(collected(folder, sandbox_thread.base_url, n=80))
    with Workspace.open(folder) as ws:
        build_dataset(ws, tmp_path / "ds.jsonl", DatasetFilters(validation_share=0.3, seed=3))
        cand = asyncio.run(build_candidate(ws, 1, 6, "fixed"))
        chosen = TaskRepository(ws).get_many([d.task_id for d in cand.program.demonstrations])
        _, valid = validation_task_ids(ws)
        pool = TaskRepository(ws).get_many([t for t in teacher_tasks(ws) if t not in set(valid)])
        assert len(chosen) == 6
        assert len({t.category for t in chosen.values()}) == min(6, len({t.category for t in pool.values()}))
        assert cand.disagreed is not None and cand.disagreed > 0  # tasks the student got wrong come first
    assert main(["-w", str(folder), "distil", "prompt", "--student", "1", "--k", "3", "--mode", "fixed",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["applied"] and out["mode"] == "fixed" and len(out["demonstration_tasks"]) == 3
    assert out["validation_tasks_excluded"] == len(valid)
    assert main(["-w", str(folder), "distil", "prompt", "--student", "3", "--k", "3"]) == 2
    assert "teacher" in capsys.readouterr().err
    assert main(["-w", str(folder), "distil", "prompt", "--student", "1", "--remove"]) == 0
    with Workspace.open(folder) as ws:
        assert TierRepository(ws).get(1).demonstrations is None
    # an instruction the teacher drafts from the disagreements (one request), edited by the user, then used
    capsys.readouterr()
    draft = tmp_path / "instruction.txt"
    assert main(["-w", str(folder), "distil", "prompt", "--student", "1", "--draft-instruction", "--out",
                 str(draft), "--json"]) == 0
    drafted = json.loads(capsys.readouterr().out)
    assert drafted["requests"] == 1 and drafted["cases"] > 0 and drafted["instruction"] == draft.read_text().strip()
    draft.write_text("Prefer the tool whose name matches the question's main noun.\n")
    assert main(["-w", str(folder), "distil", "prompt", "--student", "1", "--k", "2", "--instruction", str(draft),
                 "--json"]) == 0
    used = json.loads(capsys.readouterr().out)
    assert used["made"]["requests"] == 1 and used["made"]["cost_micro"] > 0
    with Workspace.open(folder) as ws:
        program = TierRepository(ws).get(1).demonstrations
        assert program.instruction == "Prefer the tool whose name matches the question's main noun."


def teacher_tasks(ws: Workspace) -> set[str]:
    teacher = TierRepository(ws).list()[-1]
    return set(TrajectoryRepository(ws).latest_ok_ids(teacher.tier, generation_keys(teacher)))


def test_tiers_list_summarises_a_prompt_distilled_tier(tmp_path, capsys):
    from cascade_studio.core.demonstrations import PromptProgram
    from tests.core.test_demonstrations import demo

    with Workspace.open(tmp_path / "ws") as ws:
        prepare_demo(tmp_path / "ws", "http://127.0.0.1:9/v1")
        tier = TierRepository(ws).get(1)
        program = PromptProgram("nearest", 2, tuple(demo(i, f"question {i}") for i in range(5)))
        TierRepository(ws).save(tier.replace(demonstrations=program))
    assert main(["-w", str(tmp_path / "ws"), "tiers", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["demonstrations"] == {"mode": "nearest", "k": 2, "count": 5, "instruction": False,
                                         "fingerprint": program.fingerprint()}
    assert "demonstrations" not in rows[1]
    assert main(["-w", str(tmp_path / "ws"), "tiers", "list"]) == 0
    assert "[prompt-distilled: the 2 nearest of 5 demonstrations]" in capsys.readouterr().out


def test_a_new_model_in_the_tier_starts_without_demonstrations(tmp_path):
    from cascade_studio.core.demonstrations import PromptProgram
    from cascade_studio.services import catalog as catalog_svc
    from cascade_studio.services.tier_service import set_tier
    from tests.core.test_demonstrations import demo

    with Workspace.open(tmp_path / "ws") as ws:
        prepare_demo(tmp_path / "ws", "http://127.0.0.1:9/v1")
        program = PromptProgram("fixed", 1, (demo(0, "question"),))
        TierRepository(ws).save(TierRepository(ws).get(1).replace(demonstrations=program))
        catalog = catalog_svc.load_bundled()
        assert set_tier(ws, catalog, 1, threshold=0.4).demonstrations == program  # other settings: kept
        assert set_tier(ws, catalog, 1, model="gpt-4o-mini").demonstrations is None
