"""The CLI: same services as the GUI, --json output, errors on stderr with a non-zero exit."""

import io
import json

import pytest

from cascade_studio.cli import main


def run(capsys, *args, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_tiers_set_list_json_with_catalog_prices(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "--workspace", ws, "tiers", "set", "1", "--name", "Student", "--model", "gpt-4o-mini",
                         "--base-url", "https://api.openai.com/v1")
    assert code == 0, err
    assert "retires on 2027-01-14" in err  # deprecation warning on stderr
    code, out, err = run(capsys, "--workspace", ws, "tiers", "set", "2", "--model", "gpt-4o", "--threshold", "0.7")
    assert code == 0, err
    code, out, err = run(capsys, "--workspace", ws, "tiers", "list", "--json")
    rows = json.loads(out)
    assert [r["tier"] for r in rows] == [1, 2]
    first = rows[0]
    for key in ("tier", "name", "model", "base_url", "input_price", "output_price"):
        assert key in first
    assert (first["input_price"], first["output_price"], first["cached_price"]) == ("0.15", "0.6", "0.075")
    assert rows[1]["teacher"] and rows[1]["threshold"] == 0.7 and rows[1]["output_price"] == "10"


def test_tiers_set_keeps_omitted_values_and_explicit_prices(tmp_path, capsys):
    ws = str(tmp_path)
    run(capsys, "-w", ws, "tiers", "set", "1", "--model", "my-local", "--base-url", "http://localhost:8000/v1",
        "--input-price", "0", "--output-price", "0", "--concurrency", "4")
    code, out, err = run(capsys, "-w", ws, "tiers", "set", "1", "--name", "Local")
    assert code == 0, err
    row = json.loads(run(capsys, "-w", ws, "tiers", "list", "--json")[1])[0]
    assert (row["name"], row["model"], row["max_concurrency"], row["provider"]) == ("Local", "my-local", 4, "compatible")


def test_errors_go_to_stderr_with_nonzero_exit(tmp_path, capsys):
    ws = str(tmp_path)
    code, out, err = run(capsys, "-w", ws, "tiers", "set", "1", "--model", "unknown-model-x")
    assert code != 0 and "--input-price" in err and out == ""
    code, out, err = run(capsys, "-w", ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", "localhost:8000")
    assert code != 0 and "base_url" in err and "http://" in err
    code, out, err = run(capsys, "-w", ws, "tiers", "set", "2", "--model", "gpt-4o")
    assert code != 0 and "without gaps" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["-w", ws, "tiers", "set", "1", "--input-price", "abc"])
    assert exit_info.value.code == 2
    code, out, err = run(capsys, "-w", ws, "tiers", "test", "3")
    assert code != 0 and "no tier 3" in err


def test_export_import_round_trip_without_keys(tmp_path, capsys, monkeypatch):
    ws1, ws2 = str(tmp_path / "a"), str(tmp_path / "b")
    run(capsys, "-w", ws1, "tiers", "set", "1", "--model", "gpt-4o-mini")
    run(capsys, "-w", ws1, "tiers", "set", "2", "--model", "gpt-4o")
    run(capsys, "keys", "set", "https://api.openai.com/v1", stdin="sk-export-secret-999\n", monkeypatch=monkeypatch)
    target = tmp_path / "tiers.json"
    code, out, err = run(capsys, "-w", ws1, "tiers", "export", str(target))
    assert code == 0, err
    assert "sk-export-secret-999" not in target.read_text()
    code, out, err = run(capsys, "-w", ws2, "tiers", "import", str(target))
    assert code == 0, err
    imported = json.loads(run(capsys, "-w", ws2, "tiers", "list", "--json")[1])
    assert all(t.pop("key_origin_pending") for t in imported)  # new here: key variables wait for confirmation
    original = json.loads(run(capsys, "-w", ws1, "tiers", "list", "--json")[1])
    assert not any(t.pop("key_origin_pending") for t in original)
    assert original == imported


def test_import_bad_file_changes_nothing(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    run(capsys, "-w", ws, "tiers", "set", "1", "--model", "gpt-4o-mini")
    bad = tmp_path / "bad.json"
    bad.write_text('{"tiers": [{"tier": 1, "model": "x", "input_price": "-3"}]}')
    code, out, err = run(capsys, "-w", ws, "tiers", "import", str(bad))
    assert code != 0 and "input_price" in err
    bad.write_text("{not json")
    code, out, err = run(capsys, "-w", ws, "tiers", "import", str(bad))
    assert code != 0 and "line 1" in err
    rows = json.loads(run(capsys, "-w", ws, "tiers", "list", "--json")[1])
    assert rows[0]["model"] == "gpt-4o-mini"


def test_keys_set_and_status(tmp_path, capsys, monkeypatch, memory_keyring):
    ws = str(tmp_path)
    run(capsys, "-w", ws, "tiers", "set", "1", "--model", "gpt-4o-mini")
    code, out, err = run(capsys, "keys", "set", "https://api.openai.com/v1", stdin="sk-status-key-123\n",
                         monkeypatch=monkeypatch)
    assert code == 0 and "keyring" in out and "sk-status" not in out
    code, out, err = run(capsys, "-w", ws, "keys", "status", "--json")
    status = json.loads(out)
    assert status["usable"] and status["tiers"][0]["has_key"] and status["tiers"][0]["source"] == "keyring"
    assert "sk-status-key-123" not in out
    code, out, err = run(capsys, "keys", "set", "not a url", stdin="k\n", monkeypatch=monkeypatch)
    assert code == 2 and "ENDPOINT" in err


def test_tiers_test_against_sandbox(tmp_path, capsys, sandbox_thread):
    ws = str(tmp_path)
    run(capsys, "-w", ws, "tiers", "set", "1", "--model", "gpt-4o-mini", "--base-url", sandbox_thread.base_url,
        "--provider", "sandbox")
    code, out, err = run(capsys, "-w", ws, "tiers", "test", "1", "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] and result["latency_ms"] > 0 and result["key_source"] == "sandbox"
    run(capsys, "-w", ws, "tiers", "set", "1", "--model", "gpt-missing", "--input-price", "1", "--output-price", "1")
    code, out, err = run(capsys, "-w", ws, "tiers", "test", "1", "--json")
    assert code == 1 and json.loads(out)["kind"] == "not_found"


def test_catalog_show_and_import(tmp_path, capsys):
    code, out, err = run(capsys, "catalog", "show", "gpt-4o", "--json")
    data = json.loads(out)
    assert data["model"]["deprecation_date"] == "2027-01-14" and "LiteLLM" in data["source"]
    newer = tmp_path / "litellm.json"
    newer.write_text(json.dumps({"my-model": {"mode": "chat", "input_cost_per_token": 1e-6,
                                              "output_cost_per_token": 2e-6, "litellm_provider": "x"}}))
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "-w", ws, "catalog", "import", str(newer))
    assert code == 0, err
    code, out, err = run(capsys, "-w", ws, "tiers", "set", "1", "--model", "my-model", "--base-url",
                         "http://localhost:8000/v1")
    assert code == 0, err
    row = json.loads(run(capsys, "-w", ws, "tiers", "list", "--json")[1])[0]
    assert (row["input_price"], row["output_price"]) == ("1", "2")
    (tmp_path / "broken.json").write_text("[1, 2")
    code, out, err = run(capsys, "-w", ws, "catalog", "import", str(tmp_path / "broken.json"))
    assert code == 1 and "not valid JSON" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "cascade-studio" in capsys.readouterr().out


def test_tasks_import_and_list(tmp_path, capsys):
    from pathlib import Path

    bfcl = Path(__file__).resolve().parents[1] / "resources" / "bfcl" / "BFCL_v4_multiple.json"
    ws = str(tmp_path)
    code, out, err = run(capsys, "-w", ws, "tasks", "import", str(bfcl), "--json")
    assert code == 0 and json.loads(out)["added"] == 60
    code, out, err = run(capsys, "-w", ws, "tasks", "import", str(bfcl), "--format", "bfcl", "--json")
    assert json.loads(out)["unchanged"] == 60
    code, out, err = run(capsys, "-w", ws, "tasks", "list", "--category", "multiple", "--limit", "2", "--json")
    rows = json.loads(out)
    assert len(rows) == 2 and rows[0]["has_expected"] and rows[0]["category"] == "multiple"
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt\nhello\n")
    code, out, err = run(capsys, "-w", ws, "tasks", "import", str(bad))
    assert code == 1 and "category" in err and "Nothing was imported" in err


def _modules_after(argv: list[str]) -> set[str]:
    """Run the CLI with `argv` in a fresh interpreter; the top-level packages it imported."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom cascade_studio.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.splitlines()[-1].split())


@pytest.mark.parametrize("argv", [["--help"], ["tiers", "--help"], ["finetune", "start", "--help"],
                                  ["demo", "--no-gui", "--once"]])
def test_headless_commands_do_not_import_qt(tmp_path, argv):
    modules = _modules_after(["-w", str(tmp_path / "ws"), *argv])
    assert "cascade_studio" in modules
    assert not modules & {"PySide6", "qasync", "pyqtgraph"}


def test_user_errors_are_messages_and_bugs_keep_their_traceback(tmp_path, capsys, monkeypatch):
    from cascade_studio.core.errors import UserError
    from cascade_studio.store.tasks import TaskRepository

    ws = str(tmp_path / "ws")

    def bug(*args, **kwargs):
        raise ValueError("a bug, not a message")

    monkeypatch.setattr(TaskRepository, "list", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["-w", ws, "tasks", "list"])

    def refused(*args, **kwargs):
        raise UserError("the user can fix this", code=3)

    monkeypatch.setattr(TaskRepository, "list", refused)
    code, out, err = run(capsys, "-w", ws, "tasks", "list")
    assert (code, out, err) == (3, "", "error: the user can fix this\n")


def test_the_user_error_classes_share_one_base():
    from cascade_studio.cli.common import CliError
    from cascade_studio.core.errors import UserError
    from cascade_studio.core.tasks import TaskImportError
    from cascade_studio.core.tiers import TierError
    from cascade_studio.services.catalog import CatalogError
    from cascade_studio.services.clients import KeyWithheldError, MissingKeyError
    from cascade_studio.services.secrets import SecretStoreError
    from cascade_studio.services.tier_service import TierServiceError
    from cascade_studio.services.trajectory_io import TrajectoryImportError

    for cls in (CliError, TaskImportError, TierError, CatalogError, KeyWithheldError, MissingKeyError,
                SecretStoreError, TierServiceError, TrajectoryImportError):
        assert issubclass(cls, UserError), cls
    for cls in (TaskImportError, TierError, TrajectoryImportError):  # still what callers catch
        assert issubclass(cls, ValueError), cls
    assert TierError("base_url", "is empty").code == 1 and CliError("usage", code=2).code == 2
