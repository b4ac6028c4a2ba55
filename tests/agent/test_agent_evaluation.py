"""Issue 17 on the demo's travel desk: evaluate a student in both modes, see where it diverges,
pick thresholds on the episode sweep, and get a monthly cost for episodes."""

from __future__ import annotations

import json

from cascade_studio.services.demo import prepare_demo
from tests.agent.test_episodes import cli


def test_evaluate_agents_and_the_episode_whatif(tmp_path, capsys, sandbox_thread):
    ws = tmp_path / "demo"
    prepare_demo(ws, sandbox_thread.base_url)
    args = ["evaluate", "--student", "1", "--category", "travel-flights", "--no-embeddings", "--mode", "both"]
    code, out, err = cli(capsys, ws, *args, "--collect", "--json")
    assert code == 0, err
    report = json.loads(out)
    steps, episodes = report["step_agreement"], report["episodes"]
    teacher_steps = steps["overall"]["steps"]
    assert teacher_steps >= 8 and 0 <= steps["overall"]["agreement"] <= 1
    assert set(steps["by_step"]) >= {"0", "1"} and steps["by_category"]["travel-flights"]["steps"] == teacher_steps
    assert steps["first_divergence"]["episodes"] == episodes["tasks"] >= 3
    assert steps["estimate_basis"] == "teacher-forced steps"
    for side in ("teacher", "student"):
        assert episodes[side]["judged_by"] == {"check": episodes["tasks"]}  # the travel desk's state check
        assert episodes[side]["success_rate"] is not None and episodes[side]["steps_mean"] >= 1
        assert float(episodes[side]["cost_per_episode_usd"]) > 0
    assert float(episodes["student"]["cost_per_episode_usd"]) < float(episodes["teacher"]["cost_per_episode_usd"])
    # measured once: a second evaluation sends nothing
    sent = sandbox_thread.sandbox.request_count
    code, out, _ = cli(capsys, ws, *args, "--collect", "--json")
    assert code == 0 and sandbox_thread.sandbox.request_count == sent
    assert json.loads(out)["step_agreement"] == steps
    code, out, _ = cli(capsys, ws, *args)
    assert "Step agreement (teacher-forced" in out and "Episodes, student: success" in out
    # calibration per step: the threshold that escalates about a quarter of the steps
    code, out, _ = cli(capsys, ws, *args, "--target-rate", "0.25", "--json")
    cal = json.loads(out)["step_agreement"]["calibration"]
    assert code == 0 and 0 <= cal["threshold"] <= 1 and cal["tasks"] == steps["overall"]["steps"]
    # the per-step cascade: tier 2 needs its forced steps too
    assert cli(capsys, ws, "evaluate", "--student", "2", "--category", "travel-flights", "--no-embeddings",
               "--mode", "steps", "--collect")[0] == 0
    for policy in ("step", "rest"):
        code, out, err = cli(capsys, ws, "whatif", "--episodes", "--policy", policy, "--category", "travel-flights",
                             "--sweep", "--volume", "10000", "--json")
        assert code == 0, err
        w = json.loads(out)
        assert w["episodes"] >= 3 and "teacher-forced" in w["basis"]
        assert abs(sum(w["cascade"]["share_answered"].values()) - 1) < 1e-3  # rounded to 4 places
        assert float(w["whatif"]["monthly_cost_usd"]) > 0
        assert float(w["whatif"]["monthly_cost_usd"]) <= float(w["whatif"]["teacher_only_monthly_cost_usd"]) * 1.5
        assert len(w["sweep"]) == 101 and w["pareto"]
    code, out, _ = cli(capsys, ws, "whatif", "--episodes", "--thresholds", "0.9,0.9", "--category", "travel-flights")
    assert code == 0 and "episodes a month" in out and "teacher-forced" in out
