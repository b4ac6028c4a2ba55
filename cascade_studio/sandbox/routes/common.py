"""What every route shares: OpenAI's error envelope, JSON responses, auth, bounded request bodies,
JSON parsing, field type checks, pagination and fault injection."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from cascade_studio.sandbox.faults import FaultSpec

Handler = Callable[[Request], Awaitable[Any]]


def render_json(content: Any) -> bytes:
    """orjson: logprob-heavy bodies encode ~10x faster than with the json module."""
    try:
        return orjson.dumps(content)
    except orjson.JSONEncodeError:  # what orjson refuses and json takes (integers past 64 bits)
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return render_json(content)


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.envelope(), status_code=self.status, headers=self.headers)


async def api_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def server_error_response(request: Request, exc: Exception) -> Response:
    """A bug in the sandbox still answers in OpenAI's envelope (the traceback goes to the log)."""
    return ApiError(500, "The sandbox had an error while processing your request.", type_="server_error").response()


class DroppedResponse(Response):
    """Announce a body, send part of it, then stop: the client sees the connection drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"id": "chatcmpl-', "more_body": True})
        raise ConnectionResetError("sandbox: simulated dropped connection")


# -- auth ------------------------------------------------------------------------------------
def bearer_key(auth: str) -> str:
    """The key of an Authorization header's Bearer scheme (case-insensitive), or ""."""
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def check_auth(request: Request, api_keys: set[str] | None) -> None:
    key = bearer_key(request.headers.get("authorization", ""))
    if not key:
        raise ApiError(401, "You didn't provide an API key. You need to provide your API key in an "
                       "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                       code=None)
    if api_keys is not None and key not in api_keys:
        raise ApiError(401, f"Incorrect API key provided: {key[:3]}***{key[-2:]}.", code="invalid_api_key")


def request_id_headers() -> dict[str, str]:
    return {"x-request-id": "req_" + secrets.token_hex(8)}


# -- request bodies --------------------------------------------------------------------------
def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than the sandbox's limit of {limit:,} bytes. Send a smaller "
                    "request (for large data, upload a file in parts or split the batch).",
                    code="request_too_large")


def bounded(request: Request, limit: int) -> Request:
    """The same request, refused with 413 once its body passes `limit` bytes: at once when
    Content-Length says so, otherwise as soon as the streamed bytes do (nothing past is read)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "Invalid Content-Length header.")
        if int(length) > limit:
            raise _too_large(limit)
    receive = request.receive
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return message

    return Request(request.scope, counted)


async def read_json(request: Request, max_depth: int) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)  # ~5x faster; what it refuses (NaN, huge integers...) json may take
    except orjson.JSONDecodeError:
        body = None
    try:
        if body is None:
            body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # JSONDecodeError is a ValueError
        raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                       "aren't using your HTTP library correctly.)") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if raw.count(b"[") + raw.count(b"{") > max_depth:  # else it cannot nest deeper (the common case)
        check_depth(body, max_depth)
    return body


def check_depth(body: dict[str, Any], max_depth: int) -> None:
    """A 400 naming the first field nested past `max_depth` levels (the body is level 1): deeper
    JSON is no real request, and would overflow the recursion of what reads it."""
    if _depth_exceeds(body, max_depth):
        param = _too_deep_path(body, max_depth)
        raise ApiError(400, f"Invalid '{param}': JSON nested more than {max_depth} levels deep.", param=param,
                       code="invalid_value")


def _depth_exceeds(value: dict[str, Any], limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _too_deep_path(body: dict[str, Any], limit: int) -> str:
    """The path of the first container past `limit` levels (the body itself is level 1)."""
    stack: list[tuple[Any, int, str]] = [(body, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if not isinstance(child, dict | list):
                continue
            child_path = (f"{path}.{key}" if path else str(key)) if isinstance(key, str) else f"{path}[{key}]"
            if depth >= limit:
                return child_path
            stack.append((child, depth + 1, child_path))
    return ""


# -- field types -----------------------------------------------------------------------------
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "array": ("an array", lambda v: isinstance(v, list)),
    "object": ("an object", lambda v: isinstance(v, dict)),
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(400, f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} instead.",
                    param=param, code="invalid_type")


def expect(value: Any, kind: str, param: str, *fill: Any, optional: bool = True) -> Any:
    """`value` if it is of JSON type `kind` (or None when optional), else a 400 naming `param`
    (`param.format(*fill)`: built only for the error, as the checks run on every request)."""
    if value is None and optional:
        return value
    expected, ok = _KINDS[kind]
    if not ok(value):
        raise invalid_type(param.format(*fill) if fill else param, expected, value)
    return value


def expect_metadata(value: Any, param: str = "metadata") -> None:
    """OpenAI's metadata: an object of string keys to string values."""
    for key, item in (expect(value, "object", param) or {}).items():
        expect(item, "string", f"{param}.{key}", optional=False)


# -- lists -----------------------------------------------------------------------------------
def paginate(items: list, after: str | None, limit: str | None, default: int, key) -> tuple[list, bool]:
    try:
        size = int(limit) if limit is not None else default
    except ValueError:
        raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
    if size < 1:
        raise ApiError(400, "Invalid 'limit': must be at least 1.", param="limit")
    start = 0
    if after:
        ids = [key(x) for x in items]
        if after in ids:
            start = ids.index(after) + 1
    page = items[start:start + size]
    return page, start + size < len(items)


def id_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A list page that names its first and last ids (files, checkpoints, batches)."""
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


# -- faults ----------------------------------------------------------------------------------
async def maybe_fault(spec: FaultSpec, rng: random.Random) -> Response | None:
    """Raise the simulated error the fault spec picks for this request, sleep for "slow", or give
    the response that drops the connection."""
    fault = spec.pick(rng)
    if fault is None:
        return None
    if fault == "429":
        reset = f"{spec.retry_after_s:g}s"
        raise ApiError(429, "Rate limit reached for requests (simulated by the sandbox). Please try again in "
                       f"{spec.retry_after_s:g}s.", type_="requests", code="rate_limit_exceeded",
                       headers={"retry-after": f"{spec.retry_after_s:g}", "x-ratelimit-limit-requests": "500",
                                "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset,
                                "x-ratelimit-limit-tokens": "200000", "x-ratelimit-remaining-tokens": "0",
                                "x-ratelimit-reset-tokens": reset})
    if fault == "500":
        raise ApiError(500, "The server had an error while processing your request (simulated). Sorry about that!",
                       type_="server_error")
    if fault == "503":
        raise ApiError(503, "The engine is currently overloaded (simulated), please try again later.",
                       type_="server_error", headers={"retry-after": f"{spec.retry_after_s:g}"})
    if fault == "slow":
        await asyncio.sleep(spec.slow_s)
        return None
    return DroppedResponse()
