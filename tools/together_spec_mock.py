"""A check from outside the app's own test server: run a whole Together job (limits, upload, price,
create, poll, events, metrics, checkpoints, cancel, use as tier) against a mock GENERATED from
Together's OpenAPI description, not written by hand.

The mock answers every operation of the spec under /v1: it checks each request with openapi-core
(a request the spec refuses gets 400 and fails the run) and answers with a 200 body synthesised from
the operation's response schema (the schema's `example` where it has one, else a value of each
property's type: enums take their first value, integers 8, strings "string", date-times now).
Two things are not from the schema, so that the job can go its whole way: a job answer echoes the
`model` the create request named, and `GET /fine-tunes/{id}` answers status `completed`.

    python tools/together_spec_mock.py [--spec PATH]

Prints each exchange and exits 0 when the job ran and every request and generated answer followed
the spec."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "meta-llama/Llama-3.2-1B-Instruct"  # in the price catalog, so "use as tier" can price it


def find_spec() -> Path:
    for parent in ROOT.parents:
        candidate = parent / "shared" / "together-openapi" / "openapi.yaml"
        if candidate.exists():
            return candidate
    return ROOT / "tests" / "data" / "together-openapi.yaml"


def relax(node: Any) -> None:
    """The same two readings as tests/spec_check.py: unmapped discriminators dropped, OpenAPI 3.0
    boolean exclusive bounds read as 3.0 meant them; and Together's "ft-<uuid>" ids are not uuids."""
    if isinstance(node, dict):
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if node.get(bound) is True and limit in node:
                node[bound] = node.pop(limit)
            elif node.get(bound) is False:
                del node[bound]
        if isinstance(node.get("discriminator"), dict) and "mapping" not in node["discriminator"]:
            del node["discriminator"]
        if node.get("format") == "uuid":
            del node["format"]
        for value in node.values():
            relax(value)
    elif isinstance(node, list):
        for value in node:
            relax(value)


class Generator:
    """A value that fits a schema of the spec (see the module's docstring for the choices)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        schema = self.resolve(schema)
        if "example" in schema:
            return schema["example"]
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return next(v for v in schema["enum"] if v is not None)
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                return self.value(schema[key][0], depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self.value(part, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind == "object" or "properties" in schema:
            if depth > 6:
                return {}
            return {name: self.value(sub, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
        if kind == "array":
            return [] if depth > 6 else [self.value(schema.get("items") or {}, depth + 1)]
        if kind == "integer":
            return max(8, int(schema.get("minimum", 8)))
        if kind == "number":
            return 1.0
        if kind == "boolean":
            return True
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "date-time":
                return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            return str(uuid.uuid4()) if fmt == "uuid" else "string"
        return None


def build_app(spec: dict[str, Any], api: OpenAPI, log: list[str], failures: list[str]) -> Starlette:
    gen = Generator(spec)
    routes = []

    def endpoint(path: str, method: str, operation: dict[str, Any]):
        async def handle(request: Request) -> JSONResponse:
            body = await request.body()
            ctype = request.headers.get("content-type", "application/json")
            label = f"{method.upper()} /v1{path}"
            mock = MockRequest("https://api.together.ai", method, request.url.path, args=dict(request.query_params),
                               headers=dict(request.headers), data=body or None,
                               content_type=ctype if ctype.startswith("multipart/") else ctype.split(";")[0])
            if not ctype.startswith("multipart/"):  # a binary part is beyond openapi-core: its fields are checked below
                errors = [repr(e) for e in api.iter_request_errors(mock)]
            else:
                fields = set(re.findall(rb'name="([^"]+)"', body))
                errors = [f"missing {f}" for f in (b"purpose", b"file_name", b"file") if f not in fields]
            if errors:
                failures.append(f"request {label}: {errors}")
                log.append(f"{label} -> 400 (refused by the spec)")
                return JSONResponse({"error": {"message": "; ".join(errors)[:500], "type": "invalid_request_error"}},
                                    status_code=400)
            schema = (((operation.get("responses") or {}).get("200") or {}).get("content") or {}) \
                .get("application/json", {}).get("schema") or {}
            answer = gen.value(schema)
            if isinstance(answer, dict):
                sent = json.loads(body) if body and ctype.startswith("application/json") else {}
                if path.startswith("/fine-tunes") and isinstance(sent, dict) and isinstance(sent.get("model"), str) \
                        and "model" in answer:
                    answer["model"] = sent["model"]
                    handle.model = sent["model"]  # type: ignore[attr-defined]
                if path == "/fine-tunes/{id}" and method == "get":
                    answer.update(id=request.path_params["id"], status="completed", model=MODEL)
            check = MockResponse(json.dumps(answer).encode(), status_code=200, content_type="application/json")
            problems = [repr(e) for e in api.iter_response_errors(mock, check)]
            if problems:
                failures.append(f"generated answer to {label} breaks the spec: {problems}")
            log.append(f"{label} -> 200")
            return JSONResponse(answer)

        return handle

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "delete", "put", "patch") and isinstance(operation, dict):
                routes.append(Route("/v1" + path, endpoint(path, method, operation), methods=[method.upper()]))
    # literal paths before templated ones ("/fine-tunes/estimate-price" is not "/fine-tunes/{id}")
    routes.sort(key=lambda r: r.path.count("{"))
    return Starlette(routes=routes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_job(base_url: str, folder: Path) -> list[str]:
    from cascade_studio.services.finetune import tracker
    from cascade_studio.services.finetune.backend import JobSpec
    from cascade_studio.services.finetune.together_backend import TogetherFineTuneBackend
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.workspace import Workspace

    steps = []
    data = folder / "train.jsonl"
    data.write_text("\n".join(json.dumps({
        "messages": [{"role": "developer", "content": "Answer."}, {"role": "user", "content": f"q{i}"},
                     {"role": "assistant", "content": f"a{i}"}], "parallel_tool_calls": False}) for i in range(12)))
    secrets = SecretStore(environ={})
    secrets.set_key(base_url, "tk-spec-mock-0123456789", session_only=True)
    ws = Workspace.open(folder / "ws")
    try:
        spec = JobSpec(MODEL, data, options={"training_type": "lora", "lora_rank": 8})
        state, _ = await tracker.start_job(ws, spec, None, secrets, backend_name="together", base_url=base_url,
                                           on_estimate=lambda e: steps.append(f"quote: {e.sentence()}"))
        steps.append(f"created {state.id} ({state.status})")
        state, new = await tracker.refresh(ws, state.id, secrets)
        steps.append(f"refreshed: {state.status}, {len(new)} events, "
                     f"{len(tracker.JobStore(ws).metrics(state.id))} metric points")
        backend = TogetherFineTuneBackend(base_url, secrets)
        try:
            steps.append(f"checkpoints: {len(await backend.checkpoints(state.id))}")
            steps.append(f"listed: {len(await backend.list_jobs())} jobs")
            steps.append(f"cancel answered: {(await backend.cancel(state.id)).status}")
        finally:
            await backend.close()
        tier = tracker.use_as_tier(ws, state.id, 1)
        steps.append(f"tier 1 now {tier.model} at {tier.base_url}")
    finally:
        ws.close()
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=find_spec())
    args = parser.parse_args()
    with open(args.spec, "rb") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    relax(spec)
    api = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
    log: list[str] = []
    failures: list[str] = []
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(spec, api, log, failures), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with tempfile.TemporaryDirectory() as folder:
            steps = asyncio.run(run_job(f"http://127.0.0.1:{port}/v1", Path(folder)))
    except Exception as exc:  # noqa: BLE001 - reported, with what the mock saw
        steps = [f"FAILED: {type(exc).__name__}: {exc}"]
        failures.append(str(exc))
    finally:
        server.should_exit = True
        thread.join(10)
    print(f"spec: {args.spec}")
    print("\n".join(f"  {line}" for line in log))
    print("\n".join(steps))
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    print(f"{len(log)} requests, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
