"""After storing keys through the CLI and the GUI and using them, no file the app wrote
(workspace, settings, logs, exports) contains a key."""

import io
import logging

from cascade_studio.cli import main
from cascade_studio.services.paths import config_dir, data_dir, log_dir

CLI_KEY = "sk-cli-secret-a1b2c3d4e5f6"
GUI_KEY = "sk-gui-secret-z9y8x7w6v5u4"


def scan(roots, secrets):
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                for s in secrets:
                    if s.encode() in blob:
                        hits.append((path, s))
    return hits


def test_keys_never_reach_files(tmp_path, monkeypatch, capsys, qtbot, sandbox_thread, memory_keyring):
    ws = tmp_path / "ws"
    assert main(["-w", str(ws), "tiers", "set", "1", "--model", "gpt-4o-mini", "--base-url",
                 sandbox_thread.base_url]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(CLI_KEY + "\n"))
    assert main(["keys", "set", sandbox_thread.base_url]) == 0
    assert main(["-w", str(ws), "tiers", "test", "1", "--json"]) == 0
    assert main(["-w", str(ws), "keys", "status", "--json"]) == 0
    assert main(["-w", str(ws), "tiers", "export", str(tmp_path / "export.json")]) == 0
    # a bad key: the 401 path must not echo it either
    sandbox_thread.config.api_keys = {"something-else"}
    assert main(["-w", str(ws), "tiers", "test", "1"]) == 1
    sandbox_thread.config.api_keys = None

    # GUI: store a second key through the dialog's code path and log a message containing it
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.services.settings import AppSettings
    from cascade_studio.ui.main_window import MainWindow

    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(ws)
    window.secrets.set_key("https://api.openai.com/v1", GUI_KEY)
    logging.getLogger("test").warning("oops, a careless log line with %s", GUI_KEY)
    window.tiers_page.save()
    window.close()
    for handler in logging.getLogger().handlers:
        handler.flush()

    out, err = capsys.readouterr()
    assert CLI_KEY not in out + err and GUI_KEY not in out + err
    assert memory_keyring.store  # the keys did go to the keyring
    assert any(log_dir().rglob("*.log")), "the log file should exist"
    roots = [ws, tmp_path / "export.json", data_dir(), config_dir(), log_dir()]
    roots = [r for r in roots if r.exists()]
    hits = scan([r for r in roots if r.is_dir()], [CLI_KEY, GUI_KEY])
    hits += [(r, s) for r in roots if r.is_file() for s in (CLI_KEY, GUI_KEY) if s.encode() in r.read_bytes()]
    assert hits == []
