"""`cascade-studio demo`: sandbox in-process, demo workspace with simulated tiers and BFCL tasks, GUI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cascade_studio.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_prepares_populated_workspace(tmp_path, capsys):
    ws = tmp_path / "demo"
    assert main(["--workspace", str(ws), "demo", "--no-gui", "--once"]) == 0
    out = capsys.readouterr().out
    assert "3 simulated tiers, 200 BFCL sample tasks" in out
    assert main(["--workspace", str(ws), "tiers", "list", "--json"]) == 0
    tiers = json.loads(capsys.readouterr().out)
    assert [t["model"] for t in tiers] == ["gpt-4.1-nano", "gpt-4o-mini", "gpt-4o"]
    assert all(t["simulated"] and t["provider"] == "sandbox" for t in tiers)
    assert tiers[2]["input_price"] == "2.5"
    # a second start follows the sandbox's new port and does not duplicate tasks
    assert main(["--workspace", str(ws), "demo", "--no-gui", "--once"]) == 0
    assert "200 BFCL sample tasks" in capsys.readouterr().out


def test_demo_gui_starts_and_talks_to_the_sandbox(tmp_path):
    """The README's run command path, offscreen: the window opens and the teacher tier answers."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    code = (
        "import sys, json\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "import cascade_studio.ui.app as app\n"
        "orig = app.run_gui\n"
        "def run_gui(ws, **kw):\n"
        "    def started(w):\n"
        "        page = w.tiers_page\n"
        "        print('tiers', page.list.count(), 'tasks', w.tasks_page.model.total, flush=True)\n"
        "        QTimer.singleShot(100, page.test_button.click)  # once the qasync loop runs, as a user would\n"
        "        def check():\n"
        "            if page.test_result.text().startswith(('✔', '✖')):\n"
        "                print('test:', page.test_result.text(), flush=True); w.close(); QApplication.quit()\n"
        "            else: QTimer.singleShot(50, check)\n"
        "        QTimer.singleShot(200, check)\n"
        "    return orig(ws, on_started=started, **kw)\n"
        "app.run_gui = run_gui\n"
        "from cascade_studio.cli import main\n"
        f"sys.exit(main(['--workspace', {str(tmp_path / 'demo')!r}, 'demo']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "tiers 3 tasks 218" in proc.stdout  # 200 BFCL tasks and 18 travel-desk agent tasks (2 conversations)
    assert "test: ✔" in proc.stdout


def test_sandbox_command_prints_url_and_stops_on_sigint():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cascade_studio", "sandbox", "--port", "0", "--latency-scale", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line and line.strip().endswith("/v1")
        import openai

        url = line.split(" at ")[1].strip()
        client = openai.OpenAI(api_key="sk-x", base_url=url, max_retries=0)
        assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]).choices
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sandbox_command_rejects_bad_faults():
    proc = subprocess.run([sys.executable, "-m", "cascade_studio", "sandbox", "--faults", "429=2"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=30)
    assert proc.returncode == 2 and "between 0 and 1" in proc.stderr
    time.sleep(0)
