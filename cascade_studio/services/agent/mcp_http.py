"""The HTTP client an MCP environment over Streamable HTTP is reached with: the same size limit on a
tool's result as over stdio (stdio_guard), so a 50 MB answer is refused in words instead of read.

- A JSON answer (`application/json`) is read here up to the limit; one larger (declared or found
  while reading) is replaced by a JSON-RPC error for the request it answers, in the words the stdio
  guard uses ("the tool's result is larger than 8 MB (at least 50 MB); it was not read"), which the
  call records as the tool's error and the model reads.
- Server-sent events are bounded one event at a time (a stream may stay open for the whole session):
  an event growing past the limit ends the stream, and a stream that answers a request ends with that
  error as its last event. The SDK's own per-event limit is set a little higher, as a backstop.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import httpx2

from cascade_studio.services.agent.stdio_guard import TOO_LARGE

# the SDK's own timeouts for MCP over HTTP (mcp.shared._httpx_utils): a server may hold a stream open
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 300.0


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


def _request_id(request: httpx2.Request) -> Any:
    try:
        body = json.loads(request.content or b"null")
    except (ValueError, httpx2.RequestNotRead):
        return None
    return body.get("id") if isinstance(body, dict) else None


def _error(request: httpx2.Request, size: int, limit: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": _request_id(request), "error": {
        "code": -32603, "message": f"{TOO_LARGE} {_mb(limit)} (at least {_mb(size)}); it was not read"}}).encode()


def _too_large(request: httpx2.Request, response: httpx2.Response, size: int, limit: int) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=_error(request, size, limit),
                           request=request, extensions=response.extensions)


def _event_ends(data: bytes):  # noqa: ANN202 - an iterator of ints
    """Where each event of `data` ends (just past its blank line: LF LF or CR LF CR LF), in order."""
    at = 0
    while True:
        lf, crlf = data.find(b"\n\n", at), data.find(b"\r\n\r\n", at)
        ends = [e for e in (lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1) if e >= 0]
        if not ends:
            return
        at = min(ends)
        yield at


class _BoundedEvents(httpx2.AsyncByteStream):
    """An event stream passed on event by event while no event grows past the limit."""

    def __init__(self, inner: httpx2.AsyncByteStream, request: httpx2.Request, limit: int) -> None:
        self._inner, self._request, self._limit = inner, request, limit

    async def __aiter__(self):  # type: ignore[override]
        pending: list[bytes] = []  # the bytes of the event not yet ended (held back until it ends)
        size, tail = 0, b""
        async for chunk in self._inner:  # type: ignore[union-attr]
            probe = tail + chunk  # a boundary may span two chunks
            done = 0  # the chunk's bytes up to the end of its last whole event
            for end in _event_ends(probe):
                at = end - len(tail)
                if at <= done:
                    continue
                size += at - done
                if size > self._limit:
                    break
                size, done = 0, at
            else:
                size += len(chunk) - done
            if size > self._limit:
                if _request_id(self._request) is not None:  # the answer to a request: end it with the error
                    yield b"event: message\ndata: " + _error(self._request, size, self._limit) + b"\n\n"
                return
            if done:
                yield b"".join(pending) + chunk[:done]
                pending = [chunk[done:]]
            else:
                pending.append(chunk)
            tail = probe[-3:]
        if pending:
            yield b"".join(pending)

    async def aclose(self) -> None:
        await self._inner.aclose()


class ToolResultCap(httpx2.AsyncBaseTransport):
    """A transport whose JSON answers stay under `limit` bytes (see the module's text)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["accept-encoding"] = "identity"  # a compressed answer's size says nothing of its text
        response = await self.inner.handle_async_request(request)

        def response_with(body: bytes) -> httpx2.Response:
            return httpx2.Response(response.status_code, headers=response.headers, content=body, request=request,
                                   extensions=response.extensions)

        kind = response.headers.get("content-type", "").lower()
        if kind.startswith("text/event-stream"):
            return httpx2.Response(response.status_code, headers=response.headers, request=request,
                                   stream=_BoundedEvents(response.stream, request, self.limit),  # type: ignore[arg-type]
                                   extensions=response.extensions)
        if not kind.startswith("application/json"):
            return response  # 202 Accepted, an empty body
        try:
            declared = int(response.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > self.limit:
            await response.aclose()
            return _too_large(request, response, declared, self.limit)
        chunks: list[bytes] = []
        seen = 0
        try:
            async for chunk in response.stream:  # type: ignore[union-attr]
                seen += len(chunk)
                if seen > self.limit:
                    return _too_large(request, response, seen, self.limit)
                chunks.append(chunk)
        finally:
            await response.aclose()
        body, headers = b"".join(chunks), httpx2.Headers(response.headers)
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):  # asked for none; sent anyway: inflated within the limit
            try:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)
                body = inflater.decompress(body, self.limit + 1)
            except zlib.error:
                return response_with(body)  # not what it says it is: httpx says so when it decodes it
            if len(body) > self.limit:
                return _too_large(request, response, len(body), self.limit)
            del headers["content-encoding"]
            headers.pop("content-length", None)
        return httpx2.Response(response.status_code, headers=headers, content=body, request=request,
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def capped_client(headers: dict[str, str] | None, limit: int) -> httpx2.AsyncClient:
    """An AsyncClient as the SDK's `create_mcp_http_client` makes it, with the result-size cap."""
    return httpx2.AsyncClient(headers=headers or None,
                              timeout=httpx2.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
                              transport=ToolResultCap(httpx2.AsyncHTTPTransport(), limit))
