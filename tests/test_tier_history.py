"""Issue 27: every change of the tier set is kept with the set before it, so the CLI (and the GUI's
Edit > Undo Tier Change) can take back a switch, a threshold or a removal; `finetune use` refuses the
teacher's tier without --replace-teacher."""

from __future__ import annotations

import json

from cascade_studio.cli import main
from cascade_studio.core.tier_changes import describe_change
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.ui.test_no_slip import FT, tiers, workspace_with_job


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_change_names_what_changed():
    before = tiers()
    after = [before[0].replace(model=FT, threshold=0.7)]
    assert describe_change(before, after) == f"tier 1: model gpt-4.1-nano -> {FT}, threshold 0.8 -> 0.7; " \
                                             "tier 2 removed (gpt-4o)"
    assert describe_change(after, before).endswith("tier 2 added (gpt-4o)")
    assert describe_change(before, before) == "no change"


def test_the_first_set_and_a_save_without_change_are_not_history(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        repo = TierRepository(ws)
        assert repo.replace_all(tiers()) is None and repo.replace_all(tiers()) is None
        assert repo.history() == [] and repo.last_undoable() is None


def test_cli_history_undo_and_revert(tmp_path, capsys):
    ws_dir = str(tmp_path / "ws")
    workspace_with_job(tmp_path / "ws").close()
    code, _, err = run(capsys, "--workspace", ws_dir, "finetune", "use", "ftjob-1", "--tier", "2")
    assert code == 1 and "teacher" in err and "--replace-teacher" in err
    assert run(capsys, "--workspace", ws_dir, "finetune", "use", "ftjob-1", "--tier", "1")[0] == 0
    assert run(capsys, "--workspace", ws_dir, "tiers", "set", "1", "--threshold", "0.6")[0] == 0
    assert run(capsys, "--workspace", ws_dir, "tiers", "remove", "2")[0] == 0
    code, out, _ = run(capsys, "--workspace", ws_dir, "tiers", "history", "--json")
    changes = [row["change"] for row in json.loads(out)]
    assert changes == ["tier 2 removed (gpt-4o)", "tier 1: threshold 0.8 -> 0.6",
                       f"tier 1: model gpt-4.1-nano -> {FT}"]
    for expected in ("tier 2 added (gpt-4o)", "threshold 0.6 -> 0.8", f"model {FT} -> gpt-4.1-nano"):
        code, out, err = run(capsys, "--workspace", ws_dir, "tiers", "undo")
        assert code == 0 and expected in out, err
    with Workspace.open(tmp_path / "ws") as ws:
        assert [t.to_json() for t in TierRepository(ws).list()] == [t.to_json() for t in tiers()]
    code, _, err = run(capsys, "--workspace", ws_dir, "tiers", "undo")
    assert code == 1 and "nothing to undo" in err
    newest = json.loads(run(capsys, "--workspace", ws_dir, "tiers", "history", "--json")[1])[0]
    assert newest["undoes"] == 1  # the switch was undone last
    code, out, _ = run(capsys, "--workspace", ws_dir, "tiers", "revert", str(newest["id"]))  # redo the switch
    assert code == 0 and f"model gpt-4.1-nano -> {FT}" in out
    code, _, err = run(capsys, "--workspace", ws_dir, "finetune", "use", "ftjob-1", "--tier", "2", "--replace-teacher")
    assert code == 0, err
    with Workspace.open(tmp_path / "ws") as ws:
        assert [t.model for t in TierRepository(ws).list()] == [FT, FT]


def test_the_demo_following_the_sandbox_port_is_no_change_and_undo_keeps_the_running_port(tmp_path):
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.services.tier_service import undo_tier_change

    prepare_demo(tmp_path / "ws", "http://127.0.0.1:40001/v1")
    with Workspace.open(tmp_path / "ws") as ws:
        repo = TierRepository(ws)
        repo.save(repo.get(1).replace(threshold=0.42))
    prepare_demo(tmp_path / "ws", "http://127.0.0.1:40002/v1")  # the next start: another port
    with Workspace.open(tmp_path / "ws") as ws:
        repo = TierRepository(ws)
        assert len(repo.history()) == 1  # only the user's threshold
        _, done = undo_tier_change(ws)
        assert "threshold 0.42" in done and "endpoint" not in done
        assert {t.base_url for t in repo.list()} == {"http://127.0.0.1:40002/v1"}
