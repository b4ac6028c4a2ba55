"""The self-check the packaged program runs, here from the source tree (the packaging CI step runs
it from the installed .deb)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_self_check_passes(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT),
           "CASCADE_STUDIO_CONFIG_DIR": str(tmp_path / "c"), "CASCADE_STUDIO_DATA_DIR": str(tmp_path / "d")}
    proc = subprocess.run([sys.executable, "-m", "cascade_studio", "--self-check"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("resources", "main window", "keyring backend", "sandbox round trip"):
        assert f"] {step}" in proc.stdout
    assert "self-check passed" in proc.stdout


def test_startup_probe_reports_first_window(tmp_path):
    import time

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT),
           "CASCADE_STUDIO_CONFIG_DIR": str(tmp_path / "c"), "CASCADE_STUDIO_DATA_DIR": str(tmp_path / "d"),
           "CASCADE_STUDIO_STARTUP_PROBE": str(time.time())}
    proc = subprocess.run([sys.executable, "-m", "cascade_studio", "-w", str(tmp_path / "ws")], capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 0 and "main window shown" in proc.stdout


def test_packaging_files_exist():
    for rel in ("packaging/cascade-studio.spec", "packaging/build.sh", "packaging/test_installed.sh",
                "packaging/windows/cascade-studio.iss", "packaging/macos/make_dmg.sh", "packaging/README.md",
                "packaging/linux/cascade-studio.desktop"):
        assert (ROOT / rel).exists(), rel
