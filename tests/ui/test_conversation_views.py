"""Issue 29: the inspector's timeline and the evaluation drill-down show user turns as inputs (never
steps), unknown figures as unknown, the recorded outcome, and the offline step alignment."""

from __future__ import annotations

from cascade_studio.core.episode import Episode, Step, ToolResult
from cascade_studio.core.trajectory import Trajectory
from cascade_studio.ui.episode_pair import episode_pair_html
from cascade_studio.ui.trajectory_detail import episode_html


def call(name=None, content=None) -> Trajectory:
    calls = [{"id": "c1", "name": name, "arguments": {"id": 7}}] if name else []
    return Trajectory("t1", 1, "m", "ok", request={"messages": [{"role": "user", "content": "Hi"}]}, content=content,
                      tool_calls=calls, final_answer=None if name else content)


def conversation(**kw) -> Episode:
    return Episode("t1", 1, "m", "g", "k", [
        Step(0, call(content="Your order number?"), user_turns=[{"role": "user", "content": "It is 7.",
                                                                   "_usage": [10, 2, 5, 1.0]}]),
        Step(1, call("get_order"), [ToolResult("c1", "get_order", {"id": 7}, "shipped")]),
        Step(2, call(content="It has shipped.")),
    ], end_reason="user_stop", **kw)


def test_the_timeline_shows_user_turns_unknown_figures_and_the_outcome():
    episode = conversation(unknown=("usage", "cost", "latency"), outcome={"success": True, "reward": 1.0}, trial=2)
    text = episode_html(episode.summary(), {"category": "airline"}, episode, set())
    assert "3 step(s)" in text and "1 user turn(s)" in text and "<b>user:</b> It is 7." in text
    assert "unknown ms" in text and "$unknown" in text and "trial 2" in text and "recorded outcome: success" in text
    assert "_usage" not in text


def test_the_drill_down_shows_user_turns_and_the_alignment():
    teacher = conversation(outcome={"success": True, "reward": 1.0})
    student = conversation()
    student.steps.insert(1, Step(1, call("lookup"), [ToolResult("c1", "lookup", {"id": 7}, "ok")]))
    text = episode_pair_html(None, teacher, student, ("Teacher", "Student"))
    assert "user:</i> It is 7." in text and "first differs at step 2" in text
    assert "the student takes 3 of the teacher's 3 actions" in text and "(recorded outcome)" in text


def test_the_inspector_table_says_unknown_for_what_a_record_did_not_give(tmp_path, capsys, qtbot):
    import json

    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.workspace import Workspace
    from cascade_studio.ui.trajectories_page import TrajectoriesPage
    from tests.agent.test_episodes import cli
    from tests.agent.test_transcripts_wild import chat

    ws_path = tmp_path / "ws"
    assert cli(capsys, ws_path, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1",
               "--provider", "sandbox")[0] == 0
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(chat("t1", "Where is my order?")) + "\n")
    assert cli(capsys, ws_path, "trajectories", "import", str(path), "--tier", "1", "--format", "transcripts")[0] == 0
    ws = Workspace.open(ws_path)
    page = TrajectoriesPage(SecretStore())
    qtbot.addWidget(page)
    page.set_workspace(ws)
    page.apply_filter()
    model = page.model
    assert model.rowCount() == 1
    assert [model.index(0, c).data() for c in (model.COL_COST, model.COL_LATENCY, model.COL_TOKENS)] == \
        ["unknown"] * 3
    page._filter_timer.stop()
    page.set_workspace(None)
    ws.close()
