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
    assert json.loads(run(capsys, "-w", ws1, "tiers", "list", "--json")[1]) == json.loads(
        run(capsys, "-w", ws2, "tiers", "list", "--json")[1])


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
