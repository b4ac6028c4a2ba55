"""The layer rules of DESIGN.md, enforced by import-linter contracts in pyproject.toml."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_core_store_services_and_sandbox_do_not_load_qt():
    code = ("import sys, cascade_studio.core.tiers, cascade_studio.store.tiers, cascade_studio.services.tier_service, "
            "cascade_studio.services.connection, cascade_studio.sandbox.server, cascade_studio.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'qasync', 'pyqtgraph'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stderr
