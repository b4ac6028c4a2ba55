"""The layer rules of docs/ARCHITECTURE.md, enforced by import-linter contracts in pyproject.toml."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch):
    import logging

    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    finally:  # import-linter's dictConfig disables every logger that existed: later tests need theirs
        for lg in loggers:
            lg.disabled = False


def test_core_store_services_and_sandbox_do_not_load_qt():
    code = ("import sys, cascade_studio.core.tiers, cascade_studio.store.tiers, cascade_studio.services.tier_service, "
            "cascade_studio.services.connection, cascade_studio.sandbox.server, cascade_studio.cli, "
            "cascade_studio.gateway.server, cascade_studio.services.traffic; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'qasync', 'pyqtgraph'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stderr


def test_no_sql_outside_store():
    """docs/ARCHITECTURE.md, one home per rule: SQL lives in cascade_studio/store/ only."""
    import re

    package = ROOT / "cascade_studio"
    call = re.compile(r"\.(execute|executemany|executescript)\(")
    allowed = [package / "store"]
    found = []
    for path in sorted(package.rglob("*.py")):
        if any(path == a or a in path.parents for a in allowed):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if call.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "SQL outside cascade_studio/store/ (move it into a repository there):\n" + "\n".join(found)
