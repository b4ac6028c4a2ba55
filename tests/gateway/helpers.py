"""Policies over several servers, and a server that answers 200 with garbage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier
from cascade_studio.services.policy import policy_document

MODELS = ("gpt-4.1-nano", "gpt-4o-mini", "gpt-4o")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def tiers_at(*urls: str, threshold: float = 0.6, timeout_s: float = 10.0) -> list[Tier]:
    return [Tier(tier=i + 1, model=MODELS[i], provider=Provider.SANDBOX, base_url=url, threshold=threshold,
                 timeout_s=timeout_s, confidence_method=ConfidenceMethod.TOOL_NAME_PROB,
                 input_price=__import__("decimal").Decimal("0.1") * (i + 1),
                 output_price=__import__("decimal").Decimal("0.4") * (i + 1)) for i, url in enumerate(urls)]


def write(path: Path, tiers: list[Tier]) -> str:
    path.write_text(json.dumps(policy_document(tiers)))
    return str(path)


class GarbageServer:
    """Answers every request 200 with an HTML page (a proxy's error page, say)."""

    async def __aenter__(self) -> GarbageServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    await reader.readexactly(length)
                    body = b"<html><body>Bad gateway</body></html>"
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
