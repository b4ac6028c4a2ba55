"""The demo workspace: three simulated tiers on the built-in sandbox and the BFCL sample tasks."""

from __future__ import annotations

import shutil
from pathlib import Path

from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier
from cascade_studio.services import catalog as catalog_svc
from cascade_studio.services.paths import resources_dir
from cascade_studio.services.task_import import import_tasks
from cascade_studio.services.tier_service import apply_catalog_prices
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import DB_NAME, Workspace

DEMO_TIERS = [
    (1, "Student (nano, simulated)", "gpt-4.1-nano", 0.6),
    (2, "Student (mini, simulated)", "gpt-4o-mini", 0.7),
    (3, "Teacher (simulated)", "gpt-4o", 0.0),
]
DEMO_ENVIRONMENT = "travel-desk"
BFCL_FILES = ["BFCL_v4_simple_python.json", "BFCL_v4_multiple.json", "BFCL_v4_irrelevance.json"]


def prepare_demo(folder: Path, base_url: str, *, reset: bool = False) -> str:
    """Create or refresh the demo workspace so its tiers point at `base_url`. Returns a summary."""
    folder = Path(folder)
    if reset and (folder / DB_NAME).exists():
        shutil.rmtree(folder)
    catalog = catalog_svc.load_bundled()
    with Workspace.open(folder) as ws:
        repo = TierRepository(ws)
        existing = {t.tier: t for t in repo.list()}
        tiers = []
        for number, name, model, threshold in DEMO_TIERS:
            old = existing.get(number)
            if old is not None and old.provider == Provider.SANDBOX:
                tiers.append(old.replace(base_url=base_url))  # keep the user's edits, follow the new port
                continue
            tier = Tier(tier=number, name=name, provider=Provider.SANDBOX, base_url=base_url, model=model,
                        max_concurrency=16, threshold=threshold, confidence_method=ConfidenceMethod.TOOL_NAME_PROB)
            tiers.append(apply_catalog_prices(tier, catalog))
        repo.replace_all(tiers, record=False)  # following the sandbox's port is no change to undo
        add_demo_judges(ws, base_url)
        ws.set_meta("demo", "true")
        total = 0
        for name in BFCL_FILES:
            total += import_tasks(ws, resources_dir() / "bfcl" / name, "bfcl").total
        agent = add_demo_environment(ws)
        tasks = TaskRepository(ws)
        bfcl = tasks.count() - sum(tasks.environments().values())
    return f"{len(tiers)} simulated tiers, {bfcl} BFCL sample tasks, {agent} travel-desk agent tasks (MCP)"


DEMO_JUDGES = [  # (name, kind, sandbox model): issue 30's judges, simulated (10% wrong, see `sandbox`)
    ("sandbox-reference", "reference", "judge-sim"),
    ("sandbox-episodes", "rubric", "judge-sim"),
]


def add_demo_judges(ws: Workspace, base_url: str) -> None:
    """The demo's simulated judges (kept, with the user's edits, and pointed at the new sandbox)."""
    from cascade_studio.core.judges import Judge, JudgeKind
    from cascade_studio.store.judges import JudgeRepository

    judges = JudgeRepository(ws)
    for name, kind, model in DEMO_JUDGES:
        old = judges.get(name)
        if old is not None and old.provider != Provider.SANDBOX:
            continue  # the user made it a real judge
        judge = old.replace(base_url=base_url) if old is not None else Judge(
            name, JudgeKind(kind), Provider.SANDBOX, base_url, model)
        judges.save(judge)


def add_demo_environment(ws: Workspace) -> int:
    """The app's own MCP server (a travel desk, sandbox/travel_desk.py) as environment "travel-desk",
    and its agent tasks (2-5 steps each). Returns the number of those tasks."""
    from cascade_studio.services.agent.environments import PYTHON_COMMAND
    from cascade_studio.store.environments import EnvironmentRepository

    EnvironmentRepository(ws).put(DEMO_ENVIRONMENT, "stdio", {
        "command": PYTHON_COMMAND, "args": ["-m", "cascade_studio.sandbox.travel_desk"], "cwd": None, "env_keys": [],
        "timeout_s": 30.0})
    return import_tasks(ws, resources_dir() / "demo" / "travel_desk_tasks.jsonl", "native").total
