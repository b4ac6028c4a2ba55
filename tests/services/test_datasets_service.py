import asyncio
import json

from cascade_studio.services import datasets as dsvc
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.tokenizer import encoding_name_for, token_counter
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace


def test_offline_tokenizer():
    count = token_counter("gpt-4o-mini")
    assert count("Hello world, how are you?") == 7 and count("") == 0
    assert encoding_name_for("gpt-3.5-turbo") == "cl100k_base" and encoding_name_for("ft:gpt-4o:o:s:1") == "o200k_base"
    assert token_counter("gpt-3.5-turbo")("<|endoftext|> is plain text here") > 0


def test_build_records_filters_and_passes_validation(tmp_path, sandbox_thread):
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        teacher = max(TierRepository(ws).list(), key=lambda t: t.tier)
        run, _ = start_or_resume(ws, teacher, select_task_ids(ws, limit=40), {})
        asyncio.run(CollectionRun(ws, teacher, SecretStore(), run).run())
        ids = [r["id"] for r in TrajectoryRepository(ws).summary_rows()]
        TrajectoryRepository(ws).set_curation(ids[:30], "accepted")
        TrajectoryRepository(ws).set_curation(ids[30:32], "rejected")
        built = dsvc.build_dataset(ws, tmp_path / "out" / "train.jsonl",
                                   dsvc.DatasetFilters(accepted_only=True, validation_share=0.2, seed=1))
        assert built.examples + built.validation_examples + built.duplicates_dropped == 30
        assert set(built.trajectory_ids) == set(ids[:30])  # traceable to the trajectories it learned from
        # the teacher's logprobs beside the file, one line per example, for the local trainer
        assert built.teacher_logprobs == tmp_path / "out" / "train.logprobs.jsonl"
        train_rows = built.path.read_text().splitlines()
        side = [json.loads(x) for x in built.teacher_logprobs.read_text().splitlines()]
        assert len(side) == len(train_rows) == built.examples
        plain = 0
        for row, lp in zip(train_rows, side, strict=True):
            answer = json.loads(row)["messages"][-1]
            assert lp is not None and lp["content"]
            if answer.get("content") and not answer.get("tool_calls"):
                assert "".join(e["token"] for e in lp["content"]) == answer["content"]
                plain += 1
        assert len((tmp_path / "out" / "train.validation.logprobs.jsonl").read_text().splitlines()) == \
            built.validation_examples
        assert plain > 0
        loose = dsvc.build_dataset(ws, tmp_path / "out" / "all.jsonl", dsvc.DatasetFilters(validation_share=0))
        assert loose.examples + loose.duplicates_dropped == 38 and loose.validation_path is None  # rejected left out
        recorded = dsvc.list_datasets(ws)
        assert recorded[1]["filters"]["accepted_only"] and recorded[1]["examples"] == built.examples
        sg = dsvc.build_dataset(ws, tmp_path / "out" / "sg.jsonl", dsvc.DatasetFilters(), "sharegpt")
        assert "conversations" in json.loads((tmp_path / "out" / "sg.jsonl").read_text().splitlines()[0])
        assert sg.examples > 0
    report = dsvc.validate_file(built.path, "gpt-4o-mini")
    assert report.ok and report.training_price_per_m == 3.0 and report.estimated_cost_usd > 0


def test_cli_dataset(tmp_path, capsys):
    from cascade_studio.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "x"}]}\n')
    assert main(["dataset", "validate", str(bad), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {"line": 1, "kind": "example_missing_assistant_message"} in out["errors"]
    assert main(["-w", str(tmp_path / "ws"), "dataset", "build", "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "no trajectories match" in capsys.readouterr().err


def test_evaluation_defaults_to_the_validation_split(tmp_path, capsys, sandbox_thread):
    from cascade_studio.cli import main

    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        teacher = max(TierRepository(ws).list(), key=lambda t: t.tier)
        run, _ = start_or_resume(ws, teacher, select_task_ids(ws, limit=40), {})
        asyncio.run(CollectionRun(ws, teacher, SecretStore(), run).run())
        built = dsvc.build_dataset(ws, tmp_path / "d" / "train.jsonl", dsvc.DatasetFilters(validation_share=0.25))
        split = dsvc.validation_task_ids(ws)
        assert split[0] == built.id and len(split[1]) == built.validation_examples
        valid_prompts = {json.loads(line)["messages"][-2]["content"]
                         for line in (tmp_path / "d" / "train.validation.jsonl").read_text().splitlines()}
        from cascade_studio.store.tasks import TaskRepository

        assert {TaskRepository(ws).get(t).prompt for t in split[1]} == valid_prompts
    capsys.readouterr()
    assert main(["-w", str(tmp_path / "ws"), "evaluate", "--student", "1", "--collect", "--json"]) == 0
    out = capsys.readouterr()
    assert f"validation split of dataset {built.id}" in out.err
    assert json.loads(out.out)["overall"]["tasks"] == built.validation_examples
    assert main(["-w", str(tmp_path / "ws"), "evaluate", "--student", "1", "--all-tasks", "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything["overall"]["tasks"] == built.validation_examples  # only these have both tiers so far
    assert everything["missing"] == 218 - built.validation_examples  # 200 BFCL + 18 travel-desk tasks
