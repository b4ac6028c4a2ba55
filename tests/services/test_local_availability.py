"""Without the `local` extra the local backend is listed as unavailable, with the install command,
never as an error; nothing here needs torch."""

import importlib.util
import sys

import pytest

from cascade_studio.services.finetune import local_backend, tracker
from cascade_studio.services.finetune.backend import JobSpec
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace


@pytest.fixture
def no_torch(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torch", "peft") else real(name, *a))


def test_listed_unavailable_with_install_command(no_torch):
    local = next(b for b in tracker.backends() if b["name"] == "local")
    assert local["available"] is False
    assert local["message"] == "Local training needs torch, peft: `pip install 'cascade-studio[local]'`"


async def test_start_refuses_in_words(no_torch, tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    (tmp_path / "t.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match=r"pip install 'cascade-studio\[local\]'"):
        await tracker.start_job(ws, JobSpec(str(tmp_path), tmp_path / "t.jsonl"), None, SecretStore(),
                                backend_name="local")
    assert tracker.JobStore(ws).list() == []
    ws.close()


def test_cli_lists_it(no_torch, tmp_path, capsys):
    from cascade_studio.cli import main

    assert main(["-w", str(tmp_path / "ws"), "finetune", "backends"]) == 0
    assert "local    unavailable  Local training needs torch" in capsys.readouterr().out


def test_packaged_app_points_at_pip(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delenv("CASCADE_STUDIO_TRAINER_PYTHON", raising=False)
    a = local_backend.availability()
    assert not a.available and "CASCADE_STUDIO_TRAINER_PYTHON" in a.message


def test_model_names_and_job_ids():
    assert local_backend.model_name("/models/Qwen2.5-0.5B-Instruct/", "Distilled v1", "ftlocal-0123456789ab") == \
        "qwen2.5-0.5b-instruct-distilled-v1-012345"
    with pytest.raises(ValueError):
        local_backend.LocalFineTuneBackend(".").job_dir("../../etc")


def test_another_python_is_checked(monkeypatch, tmp_path):
    local_backend._other_python_ready.cache_clear()
    monkeypatch.setenv("CASCADE_STUDIO_TRAINER_PYTHON", str(tmp_path / "no-python"))
    a = local_backend.availability()
    assert not a.available and "cannot run the trainer" in a.message
    monkeypatch.setenv("CASCADE_STUDIO_TRAINER_PYTHON", sys.executable)  # a Python with (or without) the extra
    expected = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "peft"))
    assert local_backend.availability().available == bool(expected)


async def test_a_trainer_that_cannot_start_leaves_nothing_behind(monkeypatch, tmp_path):
    import subprocess

    monkeypatch.setattr(local_backend, "availability", lambda: local_backend.Availability(True, ""))

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "t.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}, '
                                      '{"role": "assistant", "content": "a"}]}\n')
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(ValueError, match="cannot start the trainer with .*Permission denied"):
        await tracker.start_job(ws, JobSpec(str(tmp_path / "model"), tmp_path / "t.jsonl"), None, SecretStore(),
                                backend_name="local")
    assert tracker.JobStore(ws).list() == [] and list((ws.path / "local-jobs").iterdir()) == []
    ws.close()
