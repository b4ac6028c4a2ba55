"""Issue 30 in the GUI: rate trajectories on the Trajectories page (undoable), and the Evaluation
page's judge box shows the same calibration figures as `judge calibrate --json`, with its warning."""

from __future__ import annotations

import datetime as dt
import json

from cascade_studio.cli import main
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.judges import RatingRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow
from tests.ui.conftest import run_until

PLAIN = ["Explain how compound interest differs from simple interest for a savings account.",
         "Summarise why unit tests help when refactoring a large codebase.",
         "Describe the water cycle in a few sentences for a school project."]


def test_rate_and_the_judge_box(qtbot, tmp_path, qloop, sandbox_thread, capsys):
    ws = tmp_path / "ws"
    with Workspace.open(ws) as w:
        TierRepository(w).replace_all([
            Tier(tier=1, model="gpt-4.1-nano", base_url=sandbox_thread.base_url, provider=Provider.SANDBOX),
            Tier(tier=2, model="gpt-4o", base_url=sandbox_thread.base_url, provider=Provider.SANDBOX)])
    tasks = tmp_path / "plain.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"plain-{i}", "category": "plain", "tools": [],
                                         "messages": [{"role": "user", "content": p}]}) + "\n"
                             for i, p in enumerate(PLAIN)))
    for args in (["tasks", "import", str(tasks)], ["collect", "--tier", "1"], ["collect", "--tier", "2"],
                 ["judge", "add", "ref", "--tier", "2", "--model", "judge-sim-0"]):
        assert main(["-w", str(ws), *args]) == 0
    window = MainWindow(SecretStore(), AppSettings(), today=dt.date(2026, 11, 27))
    qtbot.addWidget(window)
    window.open_workspace(ws)
    window.show()
    page = window.trajectories_page
    run_until(qloop, lambda: page.model.rowCount() == 6)
    page.table.selectAll()
    ids = page.selected_ids()
    page.rate("good")
    ratings = RatingRepository(window.ws)
    assert set(ratings.ratings_of(ids).values()) == {"good"}
    page.undo_stack.undo()
    assert set(ratings.ratings_of(ids).values()) == {None}
    page.undo_stack.redo()
    ratings.rate(ids[:1], "bad")
    capsys.readouterr()
    assert main(["-w", str(ws), "judge", "calibrate", "ref", "--json"]) == 0  # judges and stores the verdicts
    cli = json.loads(capsys.readouterr().out)
    assert cli["judged"] >= 3 and cli["requests"] == cli["judged"]
    box = window.evaluation_page.judge_panel
    box.refresh()
    run_until(qloop, lambda: box.report is not None and box.report["judged"] == cli["judged"])
    for key in ("judged", "kappa", "accuracy", "confusion_matrix", "disagreements", "warnings", "unparseable"):
        assert box.report[key] == cli[key]
    assert box.report["requests"] == 0  # the page sends nothing
    assert f"on {cli['judged']} labels" in box.figures.text()
    assert box.warning.isVisibleTo(box) and "at least 30" in box.warning.text()
