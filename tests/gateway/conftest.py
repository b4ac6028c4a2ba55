"""A demo workspace whose three simulated tiers have answered the same tasks, and its policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.policy import export_policy
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


async def collect_demo(folder: Path, base_url: str, limit: int = 40) -> list[str]:
    prepare_demo(folder, base_url)
    with Workspace.open(folder) as ws:
        ids = select_task_ids(ws, limit=limit)
        for tier in TierRepository(ws).list():
            run, _ = start_or_resume(ws, tier, ids, {})
            progress = await CollectionRun(ws, tier, SecretStore(), run).run()
            assert progress.failed == 0
    return ids


def write_policy(folder: Path, target: Path) -> Path:
    with Workspace.open(folder) as ws:
        export_policy(TierRepository(ws).list(), target)
    return target


@pytest.fixture
async def demo(tmp_path, sandbox):
    """(workspace folder, task ids, policy file) on the sandbox."""
    ws = tmp_path / "ws"
    ids = await collect_demo(ws, sandbox.base_url)
    return ws, ids, write_policy(ws, tmp_path / "policy.json")
