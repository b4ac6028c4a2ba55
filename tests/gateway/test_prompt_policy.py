"""A prompt-distilled student behind the gateway: the exported policy carries its demonstrations
and the nearest-neighbour index, and the gateway's request to the tier is the one collection sent,
byte for byte (one home: core.demonstrations.apply_demonstrations, called by build_request)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai
import orjson

from cascade_studio.core.demonstrations import NEAREST, PromptProgram, demonstration_from
from cascade_studio.core.policy import policy_from_json
from cascade_studio.core.tiers import Provider, Tier, generation_id
from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.server import GatewayServer
from cascade_studio.services.collector import CollectionRun, start_or_resume
from cascade_studio.services.policy import export_policy
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl" / "BFCL_v4_simple_python.json"
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
          "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                       "message": {"role": "assistant", "content": "done"}}],
          "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


class RecordingServer:
    """Keeps every request body it receives (the raw bytes) and answers a fixed chat completion."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __aenter__(self) -> RecordingServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    self.bodies.append(await reader.readexactly(length))
                    body = json.dumps(ANSWER).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def nearest_program(tasks: list) -> PromptProgram:
    demos = [demonstration_from(t.id, t.category, t.messages, [{"name": t.tools[0]["function"]["name"],
                                                                "arguments": {"x": i}}], "I call it.",
                                reasoning=i % 2 == 0, index=i) for i, t in enumerate(tasks)]
    return PromptProgram(NEAREST, 3, tuple(demos), "Answer as the examples do.", {"dataset": 1})


def canonical(raw: bytes) -> bytes:
    """The body as sent, in one spelling (key order kept): what a serializer's spacing cannot change."""
    return orjson.dumps(orjson.loads(raw))


async def test_gateway_sends_the_collected_request_byte_for_byte(tmp_path):
    async with RecordingServer() as upstream:
        with Workspace.open(tmp_path / "ws") as ws:
            import_tasks(ws, BFCL, "bfcl")
            tasks = TaskRepository(ws).list()
            pool, asked = tasks[:40], tasks[40:52]
            student = Tier(tier=1, model="student-model", provider=Provider.COMPATIBLE, base_url=upstream.base_url,
                           no_key=True, threshold=0.0, temperature=0.3, system_prompt="Be brief.",
                           demonstrations=nearest_program(pool))
            teacher = Tier(tier=2, model="teacher-model", provider=Provider.COMPATIBLE, base_url=upstream.base_url,
                           no_key=True)
            TierRepository(ws).replace_all([student, teacher])
            student = TierRepository(ws).get(1)
            run, _ = start_or_resume(ws, student, [t.id for t in asked], {})
            assert (await CollectionRun(ws, student, SecretStore(), run).run()).failed == 0
            collected = {orjson.loads(b)["messages"][-1]["content"]: b for b in upstream.bodies}
            stored = TrajectoryRepository(ws).generations(1)
            assert stored and stored[0][1] == generation_id(student)
            export_policy(TierRepository(ws).list(), tmp_path / "policy.json")
        doc = json.loads((tmp_path / "policy.json").read_text())
        entry = doc["tiers"][0]["demonstrations"]
        assert entry["mode"] == "nearest" and all("vector" in d for d in entry["demonstrations"])
        assert policy_from_json(doc).tiers[0].demonstrations == student.demonstrations
        upstream.bodies.clear()
        async with GatewayServer(GatewayConfig(str(tmp_path / "policy.json"), port=0)) as gw:
            client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
            for task in asked:
                await client.chat.completions.create(model="cascade", messages=task.messages, tools=task.tools)
            await client.close()
        sent = [b for b in upstream.bodies if orjson.loads(b)["model"] == "student-model"]
        assert len(sent) == len(asked)
        for raw in sent:
            body = orjson.loads(raw)
            assert body["messages"][1]["content"] == "Answer as the examples do."
            assert sum(m["role"] == "assistant" for m in body["messages"]) == 3
            assert canonical(raw) == canonical(collected[body["messages"][-1]["content"]])
            assert raw == collected[body["messages"][-1]["content"]]
