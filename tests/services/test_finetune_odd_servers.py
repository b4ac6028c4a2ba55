"""Fine-tuning against endpoints that answer oddly (issue 14): an events list that always says
`has_more: true` (the spec's own example) or never ends, and a job or file without the fields every
job has. `finetune status`/`list` return, `finetune start` says which endpoint answered what."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from cascade_studio.cli import main
from cascade_studio.core.errors import UserError
from cascade_studio.core.finetune import JobSpec, JobState
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.finetune import openai_backend, tracker
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

GUARD = 400  # the fake answers 500 after this many requests, so a regression fails instead of hanging


def job(job_id: str = "ftjob-1", status: str = "running", **extra) -> dict:
    return {"object": "fine_tuning.job", "id": job_id, "model": "gpt-4o-mini", "created_at": 1700000000,
            "finished_at": None, "fine_tuned_model": None, "organization_id": "org", "result_files": [],
            "status": status, "validation_file": None, "training_file": "file-1", "trained_tokens": None,
            "error": None, "seed": 1, "hyperparameters": {"n_epochs": 3}, **extra}


def event(event_id: str) -> dict:
    return {"object": "fine_tuning.job.event", "id": event_id, "created_at": 1700000001, "level": "info",
            "message": f"event {event_id}", "type": "message", "data": {}}


class FakeFineTuning:
    """A tiny OpenAI-like fine-tuning API; `answers[(method, route)]` -> callable(query, body) -> JSON."""

    def __init__(self, **answers) -> None:
        self.requests: list[tuple[str, str]] = []
        self.answers = {"files": lambda q, b: {"id": "file-1", "object": "file", "bytes": 1, "created_at": 0,
                                               "filename": "t.jsonl", "purpose": "fine-tune", "status": "processed"},
                        "create": lambda q, b: job(status="validating_files"),
                        "retrieve": lambda q, b: job(),
                        "events": lambda q, b: {"object": "list", "data": [], "has_more": False}, **answers}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                url = urlparse(self.path)
                fake.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = url.path.removeprefix("/v1/").split("/")
                route = ("files" if parts == ["files"] else "create" if parts == ["fine_tuning", "jobs"]
                         else "events" if parts[-1] == "events" else "retrieve")
                status, answer = 200, None
                if len(fake.requests) > GUARD:
                    status, answer = 500, {"error": {"message": "too many requests in this test", "type": "x"}}
                else:
                    answer = fake.answers[route](parse_qs(url.query), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer  # noqa: N815
            do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def count(self, route_end: str) -> int:
        return sum(1 for _, path in self.requests if urlparse(path).path.endswith(route_end))

    def __enter__(self) -> FakeFineTuning:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def workspace_on(tmp_path, url: str, *, with_job: bool = True) -> str:
    with Workspace.open(tmp_path / "ws") as ws:
        TierRepository(ws).replace_all([Tier(tier=1, model="gpt-4o-mini", base_url=url, provider=Provider.COMPATIBLE,
                                             no_key=True, input_price=Decimal("0.15"), output_price=Decimal("0.6"),
                                             timeout_s=5)])
        if with_job:
            JobStore(ws).save(JobState("ftjob-1", "running", "gpt-4o-mini", "file-1"), backend="openai",
                              base_url=url, tier=1)
    return str(tmp_path / "ws")


def dataset(path, n=12):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_status_and_list_return_when_every_events_page_says_has_more(tmp_path, capsys):
    """The official spec's example: the same page, `has_more: true`, for ever."""
    spec_example = {"object": "list", "data": [event("ft-event-2"), event("ft-event-1")], "has_more": True}
    with FakeFineTuning(events=lambda q, b: spec_example) as fake:
        ws = workspace_on(tmp_path, fake.base_url)
        started = time.monotonic()
        assert main(["-w", ws, "finetune", "status", "ftjob-1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "running"
        assert fake.count("/events") == 2  # the second page repeats the first: stop there
        assert main(["-w", ws, "finetune", "list", "--json"]) == 0
        assert [j["id"] for j in json.loads(capsys.readouterr().out)] == ["ftjob-1"]
        assert fake.count("/events") == 3  # both events already known: one page
        assert time.monotonic() - started < 10
    with Workspace.open(tmp_path / "ws") as wsobj:
        assert [e["id"] for e in JobStore(wsobj).events("ftjob-1")] == ["ft-event-1", "ft-event-2"]


def test_events_that_never_end_are_read_a_bounded_number_of_pages_per_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(openai_backend, "MAX_EVENT_PAGES", 5)
    counter = iter(range(10**9))

    def endless(query, body):
        return {"object": "list", "data": [event(f"ev-{next(counter)}") for _ in range(100)], "has_more": True}

    with FakeFineTuning(events=endless) as fake:
        ws = workspace_on(tmp_path, fake.base_url)
        assert main(["-w", ws, "finetune", "status", "ftjob-1"]) == 0
        assert fake.count("/events") == 5
        afters = [parse_qs(urlparse(p).query).get("after") for _, p in fake.requests if "/events" in p]
        assert afters[0] is None and afters[1] == ["ev-99"]  # the cursor follows the last id of each page
    with Workspace.open(tmp_path / "ws") as wsobj:
        assert len(JobStore(wsobj).events("ftjob-1")) == 500


@pytest.mark.parametrize("answer, missing", [
    ({"object": "fine_tuning.job"}, "id (a non-empty string)"),
    ({**job(), "id": None}, "id (a non-empty string)"),
    ({**job(), "training_file": None, "status": 5}, "status (a non-empty string), training_file"),
    ({**job(), "created_at": "yesterday"}, "created_at (a whole number)"),
    ([1, 2], "id (a non-empty string)"),
])
def test_start_with_an_odd_job_answer_names_the_endpoint_and_what_is_missing(tmp_path, capsys, answer, missing):
    with FakeFineTuning(create=lambda q, b: answer) as fake:
        ws = workspace_on(tmp_path, fake.base_url, with_job=False)
        code = main(["-w", ws, "finetune", "start", "--dataset", str(dataset(tmp_path / "t.jsonl")),
                     "--base-model", "gpt-4o-mini"])
        out, err = capsys.readouterr()
    assert code == 1, err
    assert f"error: POST {fake.base_url}/fine_tuning/jobs answered with something that is not a fine-tuning job" in err
    assert missing in err and "Traceback" not in err and "IntegrityError" not in err
    with Workspace.open(tmp_path / "ws") as wsobj:
        assert JobStore(wsobj).list() == []


async def test_upload_without_a_file_id_is_refused_before_starting(tmp_path):
    with FakeFineTuning(files=lambda q, b: {"object": "file"}) as fake:
        workspace_on(tmp_path, fake.base_url, with_job=False)
        with Workspace.open(tmp_path / "ws") as ws:
            with pytest.raises(UserError, match=rf"POST {fake.base_url}/files accepted t.jsonl but its answer has no "
                                                r"file id\. Nothing was started"):
                await tracker.start_job(ws, JobSpec("gpt-4o-mini", dataset(tmp_path / "t.jsonl")), 1, SecretStore())
        assert fake.count("/fine_tuning/jobs") == 0


async def test_status_with_an_odd_answer_is_a_user_error(tmp_path):
    with FakeFineTuning(retrieve=lambda q, b: {"object": "fine_tuning.job", "id": "ftjob-1"}) as fake:
        workspace_on(tmp_path, fake.base_url)
        with Workspace.open(tmp_path / "ws") as ws:
            with pytest.raises(openai_backend.UnexpectedAnswer, match=rf"GET {fake.base_url}/fine_tuning/jobs/ftjob-1 "
                                                                      r"answered .* status \(a non-empty string\)"):
                await tracker.refresh(ws, "ftjob-1", SecretStore())
            assert JobStore(ws).get("ftjob-1")["status"] == "running"  # unchanged
