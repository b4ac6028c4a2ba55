"""Issue 29's done-when: an agent benchmark's results file (a small fixture in tau2-bench's layout:
5 airline tasks, 4 trials each, two models), converted to transcripts with user turns and the
benchmark's reward as the outcome, gives per side the benchmark's own success and pass^k figures,
computed here by hand."""

from __future__ import annotations

import importlib.util
import json
from fractions import Fraction
from math import comb
from pathlib import Path

import pytest

from tests.agent.test_episodes import cli

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "tau2_style"


def converter():
    spec = importlib.util.spec_from_file_location("tau2_to_transcripts", ROOT / "tools" / "tau2_to_transcripts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def published(results: dict) -> dict:
    """The benchmark's own figures, by hand: success = a reward of 1 (within 1e-6); pass^k = the mean
    over tasks of C(c, k) / C(n, k), k up to the fewest trials of a task."""
    by_task: dict[str, list[bool]] = {}
    for sim in results["simulations"]:
        by_task.setdefault(sim["task_id"], []).append(abs(sim["reward_info"]["reward"] - 1) <= 1e-6)
    trials = min(len(v) for v in by_task.values())
    episodes = [ok for v in by_task.values() for ok in v]
    return {"success": Fraction(sum(episodes), len(episodes)),
            "pass_k": {k: sum(Fraction(comb(sum(v), k), comb(len(v), k)) for v in by_task.values()) / len(by_task)
                       for k in range(1, trials + 1)}}


def test_a_benchmark_results_file_gives_its_own_success_and_pass_k(tmp_path, capsys):
    ws = tmp_path / "ws"
    for tier, model in ((1, "gpt-4.1-mini"), (2, "gpt-4.1")):
        assert cli(capsys, ws, "tiers", "set", str(tier), "--model", model, "--base-url", "http://127.0.0.1:9/v1",
                   "--provider", "sandbox")[0] == 0
    tool = converter()
    figures = {}
    for tier, model in ((1, "gpt-4.1-mini"), (2, "gpt-4.1")):
        results = json.loads((DATA / f"airline_{model}.json").read_text())
        figures[tier] = published(results)
        out = tmp_path / f"{model}.jsonl"
        assert tool.main([str(DATA / f"airline_{model}.json"), str(out)]) == 0
        capsys.readouterr()
        code, text, err = cli(capsys, ws, "trajectories", "import", str(out), "--tier", str(tier),
                              "--format", "transcripts", "--json")
        assert code == 0, err
        found = json.loads(text)
        assert found["episodes"] == 20 and found["trials"] == 4 and found["outcomes"] == 20 and not found["unknown"]
        assert found["user_turns"] > 0
    code, text, err = cli(capsys, ws, "evaluate", "--student", "1", "--teacher", "2", "--mode", "episodes",
                          "--all-tasks", "--json")
    assert code == 0, err
    episodes = json.loads(text)["episodes"]
    assert episodes["tasks"] == 5
    for side, tier in (("teacher", 2), ("student", 1)):
        got, want = episodes[side], figures[tier]
        assert got["episodes"] == 20 and got["judged_by"] == {"outcome": 20}
        assert got["success_rate"] == pytest.approx(float(want["success"]), abs=1e-12)
        assert got["trials"]["trials_min"] == 4 and got["trials"]["tasks"] == 5
        assert got["trials"]["pass_k"] == {str(k): pytest.approx(float(v), abs=1e-12) for k, v in want["pass_k"].items()}
        assert set(got["success_by_trial"]) == {"0", "1", "2", "3"}
        # the benchmark's costs and durations are known: no zero stands in for them
        assert got["cost_unknown"] == 0 and float(got["cost_per_episode_usd"]) > 0 and got["wall_s_mean"] > 0
        assert got["end_reasons"].get("handoff") == 2  # transfer_to_human_agents: hand-off, not step_limit
    # hand figures for the record: teacher 12/20 succeed (a reward of 0.9999999 counts), student 6/20
    assert figures[2]["success"] == Fraction(12, 20) and figures[1]["success"] == Fraction(6, 20)
    assert episodes["compared"]["tasks"] == 5 and episodes["compared"]["left_out"] == 0
    # two recorded episodes compared step by step, without any model
    alignment = episodes["alignment"]
    assert alignment["episodes"] == 20 and alignment["by_index"]["overall"]["steps"] > 0
    assert alignment["aligned"]["overall"]["same_tool"] >= alignment["by_index"]["overall"]["same_tool"]
    text = cli(capsys, ws, "evaluate", "--student", "1", "--teacher", "2", "--mode", "episodes", "--all-tasks")[1]
    assert "pass^4" in text and "judged by recorded outcome 20" in text and "Step alignment" in text
