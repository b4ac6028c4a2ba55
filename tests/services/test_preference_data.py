"""Preference pairs from disagreements: the teacher's answer preferred where a student answered the
same task differently (by the evaluation's agreement rule); agreements dropped; the file checked by
`dataset validate` with errors on their line numbers."""

import asyncio
import json

import pytest

from cascade_studio.core.agreement import offline_similarity
from cascade_studio.core.evaluation import compare
from cascade_studio.core.preference import as_chat_pair, validate_preference
from cascade_studio.services import datasets as dsvc
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.evaluation import latest_sides
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


def _words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def collected(tmp_path, sandbox_thread):
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        tiers = sorted(TierRepository(ws).list(), key=lambda t: t.tier)
        tasks = select_task_ids(ws, limit=40)
        for tier in (tiers[-1], tiers[0]):
            run, _ = start_or_resume(ws, tier, tasks, {})
            asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
    return tmp_path / "ws"


def test_pairs_are_the_disagreements_teacher_preferred(tmp_path, collected):
    with Workspace.open(collected) as ws:
        tiers = sorted(TierRepository(ws).list(), key=lambda t: t.tier)
        teacher, student = tiers[-1], tiers[0]
        built = dsvc.build_dataset(ws, tmp_path / "out" / "pairs.jsonl",
                                   dsvc.DatasetFilters(validation_share=0.2, seed=1), "preference")
        info = built.preference
        assert info["teacher_tier"] == teacher.tier and info["student_tier"] == student.tier
        assert info["pairs"] == built.examples + built.validation_examples > 0
        assert info["agreed_dropped"] > 0  # the demo's student agrees on some tasks: those are not pairs
        # the same verdicts as an evaluation of the two tiers would give, task by task
        t_sides, s_sides = latest_sides(ws, teacher), latest_sides(ws, student)
        def agrees(t, s):
            text = not t.tool_calls and not s.tool_calls and t.answer and s.answer
            return compare("", "", t, s, answer_similarity=offline_similarity(t.answer, s.answer) if text else None).agrees

        both = set(t_sides) & set(s_sides)
        disagree = {task for task in both if not agrees(t_sides[task], s_sides[task])}
        assert info["pairs"] == len(disagree) and info["agreed_dropped"] == len(both) - len(disagree)
        rows = [json.loads(x) for x in built.path.read_text().splitlines()]
        rows += [json.loads(x) for x in built.validation_path.read_text().splitlines()]
        assert len(rows) == info["pairs"]
        for row in rows:
            chosen, rejected = row["preferred_output"][0], row["non_preferred_output"][0]
            assert chosen["role"] == rejected["role"] == "assistant" and chosen != rejected
            assert row["input"]["messages"][-1]["role"] == "user"
        recorded = DatasetRepository(ws).list()[-1]
        assert recorded["format"] == "preference" and recorded["filters"]["preference"]["student_tier"] == student.tier
        assert DatasetRepository(ws).find_by_path(built.path)[0] == built.id
    report = dsvc.validate_file(built.path)
    assert report.format == "preference" and report.error_counts == {"too_few_examples": 1}, report.errors[:3]


def test_cli_build_and_validate(tmp_path, collected, capsys):
    from cascade_studio.cli import main

    out = tmp_path / "p.jsonl"
    assert main(["-w", str(collected), "dataset", "build", "--out", str(out), "--format", "preference",
                 "--validation-share", "0"]) == 0
    text = capsys.readouterr().out
    assert "disagreements kept" in text and "agreements dropped" in text and "--method dpo" in text
    assert main(["dataset", "validate", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "preference" and report["ok"] and report["examples"] >= 10
    assert main(["-w", str(collected), "dataset", "build", "--out", str(out), "--format", "preference",
                 "--student", "9"]) == 1
    assert "tier 9 is not a student" in capsys.readouterr().err


def test_validate_names_the_lines():
    good = {"input": {"messages": [{"role": "user", "content": "Weather in Oslo?"}]},
            "preferred_output": [{"role": "assistant", "content": "Cold."}],
            "non_preferred_output": [{"role": "assistant", "content": "Warm."}]}
    same = {**good, "non_preferred_output": good["preferred_output"]}
    two = {**good, "preferred_output": [good["preferred_output"][0]] * 2}
    bad_call = {**good, "non_preferred_output": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{oops"}}]}]}
    lines = [good] * 10 + [same, two, "{not json", bad_call, {"input": {}, "preferred_output": []}]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    r = validate_preference(text, _words)
    kinds = {(e["line"], e["kind"]) for e in r.errors}
    assert (11, "preference_same_outputs") in kinds and (12, "preference_bad_output") in kinds
    assert (13, "invalid_json") in kinds and (14, "tool_call_arguments_not_json") in kinds
    assert (15, "preference_missing_input") in kinds and (15, "preference_bad_output") in kinds
    assert all(e["line"] > 10 for e in r.errors)
    assert next(e for e in r.errors if e["line"] == 14)["detail"].startswith("non_preferred_output")
    assert validate_preference("\n".join([json.dumps(good)] * 10), _words).ok


def test_prompt_assistant_turns_are_not_trained():
    row = {"input": {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                  {"role": "user", "content": "c"}], "tools": [{"type": "function"}]},
           "preferred_output": [{"role": "assistant", "content": "yes"}],
           "non_preferred_output": [{"role": "assistant", "content": "no"}]}
    chosen, rejected = as_chat_pair(row)
    assert chosen["messages"][1]["weight"] == 0 and chosen["messages"][-1]["content"] == "yes"
    assert rejected["messages"][-1]["content"] == "no" and chosen["tools"] == rejected["tools"]


def test_preference_files_go_to_dpo_jobs_only():
    from cascade_studio.core.datasets import ValidationReport, backend_refusal

    pref, chat = ValidationReport(), ValidationReport()
    pref.format = "preference"
    assert "supervised jobs only" in backend_refusal(pref, "openai", "dpo")
    assert "--method dpo" in backend_refusal(pref, "local", "lora")
    assert backend_refusal(pref, "local", "dpo") is None
    assert "--format preference" in backend_refusal(chat, "local", "dpo")
    assert backend_refusal(chat, "local", "lora") is None and backend_refusal(chat, "openai") is None
