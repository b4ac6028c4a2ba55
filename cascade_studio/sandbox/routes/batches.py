"""/v1/batches: the input file is checked at creation, answered when the batch reaches finalizing."""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from cascade_studio.sandbox.routes.common import (
    ApiError,
    Handler,
    check_depth,
    expect,
    expect_metadata,
    id_page,
    paginate,
    read_json,
)
from cascade_studio.sandbox.state import Batch, StoredFile, new_id

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")


def _line_error(code: str, number: int, message: str) -> str:
    return json.dumps({"code": code, "line": number, "message": message})


def _input_error(batch: Batch, f: StoredFile) -> str | None:
    """Why the input file cannot run as this batch (the first bad line), or None."""
    lines = [ln for ln in f.content.decode("utf-8", errors="replace").split("\n") if ln.strip()]
    batch.total = len(lines)
    ids = set()
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            return _line_error("invalid_json_line", number, f"Line {number} is not valid JSON.")
        if not isinstance(row, dict) or row.get("url") != batch.endpoint or row.get("method") != "POST":
            return _line_error("invalid_request", number,
                               f"Line {number}: each request needs method POST and url {batch.endpoint}.")
        custom_id = row.get("custom_id")
        if custom_id is not None and not isinstance(custom_id, str):
            return _line_error("invalid_request", number, f"Line {number}: custom_id must be a string.")
        if row.get("body") is not None and not isinstance(row["body"], dict):
            return _line_error("invalid_request", number, f"Line {number}: body must be a JSON object.")
        if custom_id in ids:
            return _line_error("duplicate_custom_id", number,
                               f"Line {number}: custom_id {custom_id!r} is repeated.")
        ids.add(custom_id)
        if batch.model is None and isinstance(row.get("body"), dict) and isinstance(row["body"].get("model"), str):
            batch.model = row["body"]["model"]
    return None


def _status(b: Batch, now: float) -> str:
    if b.fail_reason:
        return "failed"
    t = (now - b.created_at) / b.job_seconds
    if b.cancelled_at is not None:
        return "cancelled" if now - b.cancelled_at > 0.05 * b.job_seconds else "cancelling"
    if t < 0.1:
        return "validating"
    if t < 0.8:
        return "in_progress"
    if t < 1.0:
        return "finalizing"
    return "completed"


def _output_line(custom_id: Any, status: int, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "batch_req_" + secrets.token_hex(8), "custom_id": custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body}, "error": None}


class BatchRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("/v1/batches", "POST", self.create_batch),
            ("/v1/batches", "GET", self.list_batches),
            ("/v1/batches/{batch_id}", "GET", self.get_batch),
            ("/v1/batches/{batch_id}/cancel", "POST", self.cancel_batch),
        ]

    async def create_batch(self, request: Request) -> Any:
        sandbox = self.sandbox
        body = await read_json(request, sandbox.config.max_json_depth)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(name):
                raise ApiError(400, f"Missing required parameter: '{name}'.", param=name,
                               code="missing_required_parameter")
            expect(body[name], "string", name)
        if body["endpoint"] not in ENDPOINTS:
            raise ApiError(400, "The sandbox supports batches for /v1/chat/completions and /v1/embeddings.",
                           param="endpoint", code="unsupported_value")
        if body["completion_window"] != "24h":
            raise ApiError(400, "Invalid 'completion_window': only '24h' is supported.", param="completion_window")
        expect_metadata(body.get("metadata"))
        f = sandbox.files.get(body["input_file_id"])
        if f is None:
            raise ApiError(400, f"Invalid file ID: {body['input_file_id']}", param="input_file_id",
                           code="invalid_file_id")
        if f.purpose != "batch":
            raise ApiError(400, f"File {f.id} has purpose {f.purpose!r}; batches need purpose 'batch'.",
                           param="input_file_id", code="invalid_file_purpose")
        batch = Batch(new_id("batch"), f.id, body["endpoint"], "24h", time.time(),
                      max(0.05, sandbox.config.job_seconds / 2), body.get("metadata"))
        batch.fail_reason = _input_error(batch, f)
        sandbox.batches[batch.id] = batch
        return self._batch_json(batch)

    def _run(self, b: Batch) -> None:
        """Answer every request of the batch (once) and write the output and error files."""
        if b.finished:
            return
        b.finished = True
        sandbox = self.sandbox
        f = sandbox.files[b.input_file_id]
        out_lines, err_lines = [], []
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for line in f.content.decode("utf-8", errors="replace").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            req_id = "req_" + secrets.token_hex(8)
            try:
                check_depth(row.get("body") or {}, sandbox.config.max_json_depth)
                if b.endpoint == "/v1/chat/completions":
                    result, _ = sandbox.chat_routes.complete(row.get("body") or {})
                    usage["input_tokens"] += result["usage"]["prompt_tokens"]
                    usage["output_tokens"] += result["usage"]["completion_tokens"]
                else:
                    result = sandbox.embedding_routes.embed(row.get("body") or {})
                    usage["input_tokens"] += result["usage"]["prompt_tokens"]
                out_lines.append(_output_line(row.get("custom_id"), 200, req_id, result))
                b.completed += 1
            except ApiError as exc:
                err_lines.append(_output_line(row.get("custom_id"), exc.status, req_id, exc.envelope()))
                b.failed += 1
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        b.usage = usage
        add_file = sandbox.file_routes.add_file
        if out_lines:
            b.output_file_id = add_file(f"{b.id}_output.jsonl", "batch_output",
                                        "\n".join(json.dumps(x) for x in out_lines).encode() + b"\n").id
        if err_lines:
            b.error_file_id = add_file(f"{b.id}_error.jsonl", "batch_output",
                                       "\n".join(json.dumps(x) for x in err_lines).encode() + b"\n").id

    def _batch_json(self, b: Batch) -> dict[str, Any]:
        now = time.time()
        status = _status(b, now)
        if status in ("finalizing", "completed"):
            self._run(b)
        created = int(b.created_at)
        out: dict[str, Any] = {
            "id": b.id, "object": "batch", "endpoint": b.endpoint, "input_file_id": b.input_file_id,
            "completion_window": b.completion_window, "status": status, "created_at": created,
            "expires_at": created + 86400, "metadata": b.metadata,
            "request_counts": {"total": b.total, "completed": 0, "failed": 0},
        }
        if b.model:
            out["model"] = b.model
        if status == "failed":
            err = json.loads(b.fail_reason or "{}")
            out["errors"] = {"object": "list", "data": [{"code": err.get("code"), "message": err.get("message"),
                                                         "param": "input_file_id", "line": err.get("line")}]}
            out["failed_at"] = created
            return out
        if status != "validating":
            out["in_progress_at"] = int(b.created_at + 0.1 * b.job_seconds)
        if status == "in_progress":
            frac = (now - b.created_at) / b.job_seconds
            out["request_counts"]["completed"] = min(b.total, int(b.total * (frac - 0.1) / 0.7))
        if status in ("finalizing", "completed"):
            out["request_counts"] = {"total": b.total, "completed": b.completed, "failed": b.failed}
            out["finalizing_at"] = int(b.created_at + 0.8 * b.job_seconds)
        if status == "completed":
            out["completed_at"] = int(b.created_at + b.job_seconds)
            if b.output_file_id:
                out["output_file_id"] = b.output_file_id
            if b.error_file_id:
                out["error_file_id"] = b.error_file_id
            if b.usage:
                out["usage"] = {"input_tokens": b.usage["input_tokens"], "output_tokens": b.usage["output_tokens"],
                                "total_tokens": b.usage["total_tokens"],
                                "input_tokens_details": {"cached_tokens": 0},
                                "output_tokens_details": {"reasoning_tokens": 0}}
        if status in ("cancelling", "cancelled"):
            out["cancelling_at"] = int(b.cancelled_at or now)
            if status == "cancelled":
                out["cancelled_at"] = int(b.cancelled_at or now)
        return out

    def _batch(self, request: Request) -> Batch:
        b = self.sandbox.batches.get(request.path_params["batch_id"])
        if b is None:
            raise ApiError(404, f"No batch found with id '{request.path_params['batch_id']}'.", param="batch_id")
        return b

    async def get_batch(self, request: Request) -> Any:
        return self._batch_json(self._batch(request))

    async def list_batches(self, request: Request) -> Any:
        items = sorted(self.sandbox.batches.values(), key=lambda b: (b.created_at, b.id), reverse=True)
        page, has_more = paginate(items, request.query_params.get("after"), request.query_params.get("limit"), 20,
                                  key=lambda b: b.id)
        return id_page([self._batch_json(b) for b in page], has_more)

    async def cancel_batch(self, request: Request) -> Any:
        b = self._batch(request)
        status = _status(b, time.time())
        if status not in ("validating", "in_progress"):
            raise ApiError(409, f"Cannot cancel a batch with status '{status}'.", code="invalid_state")
        b.cancelled_at = time.time()
        return self._batch_json(b)
