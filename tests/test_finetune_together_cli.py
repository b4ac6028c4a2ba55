"""`finetune backends` and `finetune start --backend together` from the command line: the deadline
read against an injected clock, a job on the sandbox's Together routes from an OpenAI-format
dataset (no rebuild), the model put in a tier, and api.openai.com refused after its closing date."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cascade_studio.cli import main
from cascade_studio.services.finetune import backend as ft_backend
from cascade_studio.services.secrets import SecretStore
from tests.services.test_finetune_together import MODEL, openai_dataset


def run_json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("day, opens, words", [
    (dt.date(2026, 12, 7), True, "until 2027-01-06 (30 days left)"),
    (dt.date(2027, 1, 6), True, "(0 days left)"),
    (dt.date(2027, 1, 7), False, "stopped taking new fine-tuning jobs on 2027-01-06"),
])
def test_backends_show_the_deadline(tmp_path, capsys, monkeypatch, day, opens, words):
    monkeypatch.setattr(ft_backend, "today", lambda: day)
    out = run_json(capsys, ["-w", str(tmp_path / "ws"), "finetune", "backends", "--json"])
    rows = {b["name"]: b for b in out["backends"]}
    assert out["today"] == day.isoformat() and set(rows) == {"openai", "together", "local"}
    assert rows["openai"]["starts_jobs_today"] is opens and rows["openai"]["closes_on"] == "2027-01-06"
    assert words in rows["openai"]["message"]
    assert rows["together"]["starts_jobs_today"] is True and rows["together"]["closes_on"] is None
    assert main(["-w", str(tmp_path / "ws"), "finetune", "backends"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("openai   available    ")
    assert ("[starts jobs today, closes 2027-01-06]" in text) is opens
    assert ("[starts no jobs today, closes 2027-01-06]" in text) is not opens


def test_openai_refused_after_its_closing_date(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ft_backend, "today", lambda: dt.date(2027, 1, 7))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-0123456789")
    ws = str(tmp_path / "ws")
    assert main(["-w", ws, "tiers", "set", "1", "--model", "gpt-4o-mini"]) == 0
    data = openai_dataset(tmp_path / "train.jsonl")
    capsys.readouterr()
    assert main(["-w", ws, "finetune", "start", "--dataset", str(data), "--base-model", "gpt-4o-mini"]) == 1
    err = capsys.readouterr().err
    assert "stopped taking new fine-tuning jobs on 2027-01-06" in err and "--backend together" in err


def test_start_follow_use_from_the_command_line(tmp_path, capsys, sandbox_thread):
    url = sandbox_thread.base_url
    SecretStore().set_key(url, "tk-together-cli-0123456789")
    ws = str(tmp_path / "ws")
    assert MODEL in run_json(capsys, ["-w", ws, "finetune", "models", "--base-url", url, "--json"])
    data = openai_dataset(tmp_path / "train.jsonl")
    assert main(["-w", ws, "finetune", "start", "--backend", "together", "--base-url", url, "--dataset", str(data),
                 "--base-model", MODEL, "--full", "--epochs", "2", "--suffix", "cli", "--max-price", "10",
                 "--json"]) == 0
    out = capsys.readouterr()
    state = json.loads(out.out)
    assert "Together estimates $" in out.err
    assert state["status"] == "queued" and state["hyperparameters"]["training_type"] == "full"
    assert main(["-w", ws, "finetune", "watch", state["id"]]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["-w", ws, "finetune", "use", state["id"], "--tier", "1"]) == 0
    out = capsys.readouterr().out
    assert "sandbox-user/Llama-3.2-1B-Instruct-cli-" in out and "dedicated endpoint" in out
    # over the cap: quoted, not started
    assert main(["-w", ws, "finetune", "start", "--backend", "together", "--base-url", url, "--dataset", str(data),
                 "--base-model", MODEL, "--max-price", "0"]) == 1
    assert "above your limit of $0.00" in capsys.readouterr().err
    assert len(run_json(capsys, ["-w", ws, "finetune", "list", "--json"])) == 1
