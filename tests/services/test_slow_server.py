"""A server that dribbles its answer (a byte every 0.2 s) never trips httpx's per-read timeout: the
tier's timeout must bound each whole request, reading the body included (issue 14)."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from cascade_studio.cli import main
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.connection import test_connection as check
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace
from tests.services.test_collector import synthetic_tasks


class DribblingServer:
    """Answers every request with headers at once, then its body one byte per `interval` seconds."""

    def __init__(self, interval: float = 0.2, body: bytes | None = None, chunk: int = 1) -> None:
        self.stop = threading.Event()
        self.requests = 0
        server = self
        payload = body or json.dumps({"object": "list", "data": [], "padding": "x" * 400}).encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _dribble(self) -> None:
                server.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.flush()
                try:
                    for i in range(0, len(payload), chunk):
                        if server.stop.wait(interval):
                            return
                        self.wfile.write(payload[i:i + chunk])
                        self.wfile.flush()
                except OSError:
                    return  # the client gave up: as it should
                finally:
                    self.close_connection = True

            do_GET = _dribble  # noqa: N815
            do_POST = _dribble  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> DribblingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dribbler():
    with DribblingServer() as server:
        yield server


def slow_tier(url: str, timeout: float = 1.0) -> Tier:
    return Tier(tier=1, model="gpt-4o-mini", base_url=url, provider=Provider.COMPATIBLE, timeout_s=timeout,
                input_price=Decimal("0.15"), output_price=Decimal("0.6"), max_concurrency=4)


async def test_connection_test_is_bounded_by_the_tiers_timeout(dribbler):
    store = SecretStore(environ={})
    store.set_key(dribbler.base_url, "sk-x")
    started = time.monotonic()
    result = await check(slow_tier(dribbler.base_url), store)
    elapsed = time.monotonic() - started
    assert elapsed < 4, f"took {elapsed:.1f} s for a 1 s timeout (the body alone takes ~80 s)"
    assert not result.ok and result.kind == "timeout"
    assert "Timed out after the tier's 1 s timeout" in result.message and "whole request" in result.message


async def test_collection_is_bounded_by_timeout_times_attempts(dribbler, tmp_path):
    ws = Workspace.open(tmp_path)
    synthetic_tasks(ws, 3)
    tier = slow_tier(dribbler.base_url)
    TierRepository(ws).replace_all([tier])
    store = SecretStore(environ={})
    store.set_key(dribbler.base_url, "sk-x")
    run, _ = start_or_resume(ws, tier, select_task_ids(ws), {})
    started = time.monotonic()
    result = await CollectionRun(ws, tier, store, run, max_attempts=2, backoff_base=0.01).run()
    elapsed = time.monotonic() - started
    assert elapsed < 6, f"took {elapsed:.1f} s for 2 attempts of 1 s (in parallel)"
    assert result.status == "failed" and result.failed == 3 and result.done == 0
    errors = [r for r in TrajectoryRepository(ws).summary_rows() if r["status"] == "error"]
    assert len(errors) == 3
    for row in errors:
        traj, _ = TrajectoryRepository(ws).get(row["id"])
        assert "Timed out after the tier's 1 s timeout" in traj.error and traj.attempts == 2
    assert dribbler.requests == 6
    ws.close()


def test_cli_tiers_test_returns_within_the_timeout(dribbler, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CASCADE_TIER1_KEY", "sk-x")
    ws = str(tmp_path / "ws")
    assert main(["-w", ws, "tiers", "set", "1", "--model", "gpt-4o-mini", "--base-url", dribbler.base_url,
                 "--input-price", "0", "--output-price", "0", "--timeout", "1", "--key-env", "CASCADE_TIER1_KEY"]) == 0
    capsys.readouterr()
    started = time.monotonic()
    code = main(["-w", ws, "tiers", "test", "1", "--json"])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert elapsed < 4 and code != 0
    assert json.loads(out)["kind"] == "timeout"


async def test_a_slow_but_complete_answer_within_the_timeout_still_arrives(tmp_path):
    body = json.dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0,
                                                   "owned_by": "x"}]}).encode()
    with DribblingServer(interval=0.0005, body=body) as server:
        store = SecretStore(environ={})
        store.set_key(server.base_url, "sk-x")
        from cascade_studio.services.clients import make_async_client

        async with make_async_client(slow_tier(server.base_url, timeout=5), store) as client:
            ids = [m.id async for m in client.models.list()]
    assert ids == ["gpt-4o-mini"]


async def test_a_large_answer_gets_no_time_for_its_declared_size():
    """A 2 MiB answer at 1 MiB/s takes 2 s, over a 1 s timeout: a declared size buys no time (issue 33:
    a server declaring 100 GB would otherwise hold the request for days); the timeout bounds it all."""
    data = [{"id": f"model-{i:06d}", "object": "model", "created": 0, "owned_by": "x" * 40} for i in range(24000)]
    body = json.dumps({"object": "list", "data": data}).encode()
    assert len(body) > 2 * 1024 * 1024
    with DribblingServer(interval=0.03, body=body, chunk=32 * 1024) as server:
        store = SecretStore(environ={})
        store.set_key(server.base_url, "sk-x")
        from cascade_studio.services.clients import make_async_client

        started = time.monotonic()
        async with make_async_client(slow_tier(server.base_url, timeout=1), store) as client:
            with pytest.raises(openai.APITimeoutError):
                await client.models.list()
        assert time.monotonic() - started < 3
