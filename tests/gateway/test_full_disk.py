"""A full disk never costs a client its answer, and never tears the gateway's log (issue 33): lines are
whole or absent, the loss is counted on /healthz and said on stderr, and `traffic import` skips a torn
line (as older gateways left them) with a warning naming it, importing the rest. ENOSPC is injected."""

from __future__ import annotations

import errno
import json
import os

import httpx2
import openai

from cascade_studio.cli import main
from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.request_log import RequestLog
from cascade_studio.gateway.server import GatewayServer
from tests.gateway.helpers import ASK, WEATHER_TOOL, tiers_at, write


class FullDisk:
    """os.write for files under `folder`: takes `room` more bytes, then part of a line, then ENOSPC
    (every other descriptor writes as usual)."""

    def __init__(self, monkeypatch, folder, room: int) -> None:
        self.room = room
        self.folder = str(folder)
        self.real = os.write
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd: int, data: bytes) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if not target.startswith(self.folder):
            return self.real(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.room)
        self.room -= n
        return self.real(fd, data[:n])


def test_a_line_the_disk_took_only_part_of_is_cut_back(tmp_path, monkeypatch, capsys):
    log = RequestLog(tmp_path)
    assert log.write({"n": 1, "pad": "x" * 50})
    disk = FullDisk(monkeypatch, tmp_path, room=30)  # the next line fits only in part
    assert not log.write({"n": 2, "pad": "y" * 50})
    assert not log.write({"n": 3})
    err = capsys.readouterr().err
    assert "could not write the request log: No space left on device" in err and "Clients still get" in err
    assert log.status()["failed"] == 2 and log.status()["written"] == 1
    disk.room = 10**6  # space again
    assert log.write({"n": 4})
    assert "the request log is written again (2 record(s) lost" in capsys.readouterr().err
    log.close()
    lines = log.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(x)["n"] for x in lines[:-1]] == [1, 4]


def test_a_line_that_cannot_be_cut_back_ends_its_file(tmp_path, monkeypatch):
    log = RequestLog(tmp_path)
    assert log.write({"n": 1})
    first = log.path
    disk = FullDisk(monkeypatch, tmp_path, room=5)

    def no_truncate(fd, size):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "ftruncate", no_truncate)
    assert not log.write({"n": 2, "pad": "y" * 50})
    disk.room = 10**6
    assert log.write({"n": 3})
    log.close()
    assert log.path != first and json.loads(log.path.read_text())["n"] == 3


async def test_clients_get_their_answers_while_the_disk_is_full(tmp_path, sandbox, monkeypatch, capsys):
    FullDisk(monkeypatch, tmp_path / "logs", room=0)
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(tmp_path / "logs"))) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
        for _ in range(5):
            answer = await client.chat.completions.create(model="cascade", messages=ASK, tools=[WEATHER_TOOL])
            assert answer.choices[0].message.tool_calls
        await client.close()
        async with httpx2.AsyncClient() as http:
            health = (await http.get(gw.base_url.removesuffix("/v1") + "/healthz")).json()
    assert health["status"] == "ok" and health["log_failed"] == 5
    assert health["log"]["failed"] == 5 and "No space left" in health["log"]["last_error"]
    assert "could not write the request log" in capsys.readouterr().err


def _record(n: int) -> dict:
    return {"format": "cascade-studio/traffic@1", "kind": "request", "id": f"gw-{n}", "time": "2026-12-01T00:00:00Z",
            "category": "weather", "model": "cascade", "stream": False, "answered_by": 1, "escalated": False,
            "latency_ms": 5.0, "cost_micro": 10, "teacher_only_micro": 20, "shadow": False, "error": None,
            "attempts": [{"tier": 1, "status": "ok", "cost_micro": 10, "latency_ms": 5.0}], "content": {}}


def test_traffic_import_skips_a_torn_line_and_imports_the_rest(tmp_path, capsys):
    from cascade_studio.core.traffic import FORMAT

    whole = [json.dumps({**_record(n), "format": FORMAT}) for n in range(4)]
    torn = whole[1][:37] + whole[2]  # an old gateway: part of record 1, then record 2 glued on
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "requests-1.jsonl"
    log.write_text("\n".join([whole[0], torn, whole[3], whole[3][:20]]) + "\n")
    ws = str(tmp_path / "ws")
    assert main(["-w", ws, "traffic", "import", str(log)]) == 0
    captured = capsys.readouterr()
    assert "3 requests (3 new)" in captured.out
    assert "requests-1.jsonl:2: skipped a torn line" in captured.err and "glued onto its end was imported" in captured.err
    assert "requests-1.jsonl:4: skipped a torn line" in captured.err
    # a file that is not a log at all is still refused, naming its first line
    (tmp_path / "junk.jsonl").write_text("{not json\n{neither\n")
    assert main(["-w", ws, "traffic", "import", str(tmp_path / "junk.jsonl")]) != 0
    assert "junk.jsonl:1" in capsys.readouterr().err


async def test_traffic_import_is_all_or_nothing_per_file(tmp_path, sandbox, monkeypatch):
    """Issue 33: a kill between a file's tasks and its requests left requests without their tasks (or
    tasks without requests) until re-run; a file's tasks, trajectories and requests are one transaction."""
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.services.traffic import import_traffic
    from cascade_studio.store.production import ProductionRepository
    from cascade_studio.store.tasks import TaskRepository
    from cascade_studio.store.workspace import Workspace
    from tests.gateway.conftest import write_policy
    from tests.gateway.test_traffic_import import serve_tasks

    prepare_demo(tmp_path / "ws", sandbox.base_url)
    policy = write_policy(tmp_path / "ws", tmp_path / "policy.json")
    with Workspace.open(tmp_path / "ws") as ws:
        tasks = TaskRepository(ws).list(limit=3)
        before_tasks = TaskRepository(ws).count()
    await serve_tasks(policy, tmp_path / "logs", tasks, shadow_rate=0)

    def killed(self, rows, shadows):
        raise KeyboardInterrupt  # the process dies after the tasks and trajectories were written

    monkeypatch.setattr(ProductionRepository, "put_all", killed)
    with Workspace.open(tmp_path / "ws") as ws:
        trajectories = ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0]
        try:
            import_traffic(ws, tmp_path / "logs")
        except KeyboardInterrupt:
            pass
        assert not ws.conn.in_transaction
        assert TaskRepository(ws).count() == before_tasks
        assert ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == trajectories
        assert ProductionRepository(ws).count() == 0
    monkeypatch.undo()
    with Workspace.open(tmp_path / "ws") as ws:
        assert import_traffic(ws, tmp_path / "logs").requests == 3
        assert ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] > trajectories
