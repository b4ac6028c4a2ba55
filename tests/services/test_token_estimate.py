"""Issue 32: a run's cost estimate needs no tokenizer in the collecting process. The workspace keeps
tokens-per-byte rates counted at import; the estimate stays within a percent of counting every token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cascade_studio.core.tasks import parse_bfcl
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.run_plan import plan_run
from cascade_studio.services.task_import import import_tasks
from cascade_studio.services.token_estimate import stored
from cascade_studio.services.tokenizer import token_counter
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
BFCL = ROOT / "resources" / "bfcl"


def tier(model: str = "gpt-4o-mini", system_prompt: str = "") -> Tier:
    return Tier(tier=1, model=model, base_url="http://127.0.0.1:9/v1", provider=Provider.SANDBOX,
                input_price=Decimal("0.15"), output_price=Decimal("0.6"), system_prompt=system_prompt)


def exact_tokens(t: Tier, tasks) -> int:
    """The formula the estimate replaced: every message and the tools counted with the tokenizer."""
    from cascade_studio.core.trajectory import build_request

    count = token_counter(t.model)
    return sum(sum(count(str(m.get("content") or "")) + 4 for m in build_request(t, task.messages, task.tools)["messages"])
               + (count(json.dumps(task.tools)) if task.tools else 0) for task in tasks)


def test_import_stores_rates_and_the_estimate_is_within_a_percent_of_counting(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    import_tasks(ws, BFCL / "BFCL_v4_simple_python.json", "bfcl")  # rates from one kind of task...
    cal = stored(ws, "o200k_base")
    assert cal is not None and cal.tasks > 0 and cal.text_tokens > 0 and cal.tool_tokens > 0
    import_tasks(ws, BFCL / "BFCL_v4_multiple.json", "bfcl")  # ...and a later import adds to them
    assert stored(ws, "o200k_base").tasks > cal.tasks
    counted = stored(ws, "o200k_base")
    import_tasks(ws, BFCL / "BFCL_v4_multiple.json", "bfcl")  # a re-import that changes nothing counts nothing
    assert stored(ws, "o200k_base") == counted
    t = tier(system_prompt="You are a careful assistant. Call exactly one tool when one fits; else answer.")
    ids = [task.id for task in TaskRepository(ws).list()]
    plan = plan_run(ws, t, ids)
    exact = exact_tokens(t, TaskRepository(ws).get_many(ids).values())
    assert abs(plan.input_tokens - exact) / exact < 0.01, (plan.input_tokens, exact)
    # tasks the rates were not counted on (another file of another kind) are estimated as closely
    other = parse_bfcl((BFCL / "BFCL_v4_irrelevance.json").read_text(), "BFCL_v4_irrelevance.json")
    TaskRepository(ws).upsert(other)
    plan = plan_run(ws, t, [o.id for o in other])
    exact = exact_tokens(t, other)
    assert abs(plan.input_tokens - exact) / exact < 0.02, (plan.input_tokens, exact)
    ws.close()


def test_a_workspace_without_rates_counts_once_and_keeps_them(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    tasks = parse_bfcl((BFCL / "BFCL_v4_multiple.json").read_text(), "BFCL_v4_multiple.json")
    TaskRepository(ws).upsert(tasks)  # as a workspace made before the rates existed
    assert stored(ws, "o200k_base") is None
    plan = plan_run(ws, tier(), [t.id for t in tasks])
    assert stored(ws, "o200k_base") is not None
    assert abs(plan.input_tokens - exact_tokens(tier(), tasks)) / plan.input_tokens < 0.01
    # a legacy model's encoding gets rates of its own
    assert stored(ws, "cl100k_base") is None
    legacy = plan_run(ws, tier("gpt-4-0613"), [t.id for t in tasks])
    assert stored(ws, "cl100k_base") is not None
    assert abs(legacy.input_tokens - exact_tokens(tier("gpt-4-0613"), tasks)) / legacy.input_tokens < 0.01
    # a damaged value is counted again, never trusted
    ws.set_meta("token_calibration:o200k_base", "{not json")
    again = plan_run(ws, tier(), [t.id for t in tasks])
    assert again.input_tokens == pytest.approx(plan.input_tokens, rel=0.001)
    assert stored(ws, "o200k_base") is not None
    ws.close()


def test_the_collecting_process_never_loads_the_tokenizer(tmp_path):
    """`collect` (a plan, then the run) in a process of its own: tiktoken (~73 MB) is not imported."""
    folder = tmp_path / "ws"
    ws = Workspace.open(folder)
    import_tasks(ws, BFCL / "BFCL_v4_multiple.json", "bfcl")
    TierRepository(ws).replace_all([tier()])
    ws.close()
    script = ("import sys\nfrom cascade_studio.cli import main\n"
              f"code = main(['-w', {str(folder)!r}, 'collect', '--tier', '1', '--dry-run', '--json'])\n"
              "print('TIKTOKEN' if 'tiktoken' in sys.modules else 'NO-TOKENIZER', code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "NO-TOKENIZER 0" in out.stdout, out.stdout
    assert json.loads(out.stdout.split("NO-TOKENIZER")[0])["estimated_input_tokens"] > 0


def test_a_huge_task_without_spaces_does_not_stall_the_import(tmp_path):
    """BPE on one long run of letters grows faster than its length; rates come from a prefix."""
    from cascade_studio.core.tasks import Task
    from cascade_studio.services.token_estimate import calibrate

    ws = Workspace.open(tmp_path / "ws")
    huge = Task("huge", "odd", [{"role": "user", "content": "a" * 8_000_000}])
    cal = calibrate(ws, [huge])
    assert cal.text_bytes <= 40_000 and cal.text_tokens > 0
    TaskRepository(ws).upsert([huge])
    assert plan_run(ws, tier(), ["huge"]).input_tokens > 8_000_000 * cal.text_rate() * 0.99
    ws.close()
