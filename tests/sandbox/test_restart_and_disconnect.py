"""The sandbox remembers the fine-tuned models it made across restarts (a tier using one keeps
answering after the demo restarts), and a client that goes away mid-request is a debug line, not a
traceback. Over real HTTP with the official SDK and a raw socket."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading

import openai
import pytest

from cascade_studio.sandbox.app import SandboxConfig
from cascade_studio.sandbox.server import SandboxThread
from cascade_studio.sandbox.state import STATE_FILE


def started(data_dir) -> tuple[SandboxThread, openai.OpenAI]:
    thread = SandboxThread(SandboxConfig(latency_scale=0, job_seconds=0.3, data_dir=data_dir))
    return thread, openai.OpenAI(base_url=thread.start(), api_key="sk-test", max_retries=0)


def training_file() -> io.BytesIO:
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(12)]
    return io.BytesIO("\n".join(json.dumps(r) for r in rows).encode())


def fine_tune(client: openai.OpenAI) -> str:
    upload = client.files.create(file=("train.jsonl", training_file()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload.id, suffix="kept")
    for _ in range(500):
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        threading.Event().wait(0.05)
    assert job.status == "succeeded"
    return job.fine_tuned_model


def test_fine_tuned_models_outlive_a_restart(tmp_path):
    first, client = started(tmp_path / "sandbox")
    try:
        model = fine_tune(client)
    finally:
        first.stop()
    assert (tmp_path / "sandbox" / STATE_FILE).exists()
    second, client = started(tmp_path / "sandbox")
    try:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert answer.model == model and answer.choices[0].message
        assert model in {m.id for m in client.models.list()}
    finally:
        second.stop()
    # without a data folder nothing is remembered: the model is unknown to a fresh sandbox
    third, client = started(None)
    try:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    finally:
        third.stop()


def test_an_unreadable_state_file_is_reported_and_replaced(tmp_path, caplog):
    folder = tmp_path / "sandbox"
    folder.mkdir()
    (folder / STATE_FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="cascade_studio.sandbox"):
        thread, client = started(folder)
    try:
        assert any("cannot be read" in r.getMessage() for r in caplog.records)
        model = fine_tune(client)
    finally:
        thread.stop()
    assert model in json.loads((folder / STATE_FILE).read_text())["fine_tuned"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if "went away" in record.getMessage() or record.levelno >= logging.ERROR:
            self.seen.set()


def test_a_client_that_goes_away_is_one_debug_line(tmp_path):
    thread = SandboxThread(SandboxConfig(latency_scale=0))
    url = thread.start()  # first: starting uvicorn configures its loggers
    records = _Records()
    loggers = [logging.getLogger(name) for name in ("cascade_studio.sandbox", "uvicorn.error", "uvicorn")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(records)
        lg.setLevel(logging.DEBUG)
    try:
        host, port = url.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:  # announces 1000 bytes, sends 10, leaves
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":")
        assert records.seen.wait(10), "the sandbox said nothing about the request"
    finally:
        thread.stop()
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(records)
            lg.setLevel(level)
    errors = [r for r in records.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    went = [r for r in records.records if "went away" in r.getMessage()]
    assert len(went) == 1 and went[0].levelno == logging.DEBUG and "/v1/chat/completions" in went[0].getMessage()
