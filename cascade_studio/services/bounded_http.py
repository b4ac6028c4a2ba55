"""One home for the two limits every request to a tier obeys, whatever the server says:

- the request's timeout (the tier's, or a call's override) bounds the whole exchange: connecting,
  sending, waiting and reading the body. httpx's own timeouts bound each read, so a server sending a
  byte a second never times out; and a server's declared Content-Length never buys it more time.
- an answer larger than a cap (32 MB unless set) is refused in words without being read into memory:
  a declared size over the cap is refused before its first byte, an undeclared one when the cap is
  crossed.

`BoundedTransport` wraps any httpx transport, so the SDK's clients (`clients.http_client`) and a
pooled client of our own (the gateway) get the same rules by building their client on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx2
import orjson

DEFAULT_MAX_ANSWER_MB = 32
MAX_ANSWER_ENV = "CASCADE_STUDIO_MAX_ANSWER_MB"
MAX_ANSWER_SETTING = "max_answer_mb"
REFUSED_HEADER = "x-cascade-refused"  # set on the answer this module makes in place of one it refused
UPLOAD_BYTES_PER_S = 256 * 1024  # our own request body (a training file) gets time for its size at this rate


def max_answer_bytes() -> int:
    """The answer-size cap: $CASCADE_STUDIO_MAX_ANSWER_MB, else the app setting "max_answer_mb", else 32 MB."""
    raw: object = os.environ.get(MAX_ANSWER_ENV)
    if not raw:
        from cascade_studio.services.settings import AppSettings

        raw = AppSettings().get(MAX_ANSWER_SETTING)
    try:
        mb = float(raw) if raw not in (None, "") else DEFAULT_MAX_ANSWER_MB  # type: ignore[arg-type]
    except (TypeError, ValueError):
        mb = DEFAULT_MAX_ANSWER_MB
    return int(mb * 1024 * 1024) if mb > 0 else DEFAULT_MAX_ANSWER_MB * 1024 * 1024


_cap_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("answer_cap_override", default=None)


@contextlib.contextmanager
def answers_up_to(max_bytes: int) -> Iterator[None]:
    """Within this block (this task), answers up to max_bytes are read: for a download whose size the
    caller chose (a batch's result file), not for answers a server sizes as it likes."""
    token = _cap_override.set(max_bytes)
    try:
        yield
    finally:
        _cap_override.reset(token)


def stored_answer_problem(text: str | None) -> str | None:
    """Why an imported answer is not stored (larger than the cap a collected one may be), or None."""
    cap = max_answer_bytes()
    if text is None or len(text) <= cap // 4 or len(text.encode("utf-8", "surrogatepass")) <= cap:
        return None
    return (f"the answer is larger than the {_mb(cap)} limit answers are held to; it was not stored "
            f"(raise it with {MAX_ANSWER_ENV} if it is right)")


class WholeRequestTimeout(httpx2.ReadTimeout):
    """The request's timeout ran out before the whole answer arrived. The SDK turns this (an httpx
    timeout) into `openai.APITimeoutError`, retried and described like any other timeout."""


class AnswerTooLarge(Exception):
    """Raised inside a streamed answer (server-sent events) that grows past the cap."""


def _total_seconds(request: httpx2.Request) -> float | None:
    timeout = request.extensions.get("timeout") or {}
    values = [v for v in timeout.values() if isinstance(v, int | float)] if isinstance(timeout, dict) else []
    return max(values) if values else None


def _declared(headers: httpx2.Headers) -> int | None:
    try:
        value = headers.get("content-length")
        return max(0, int(value)) if value is not None else None
    except ValueError:
        return None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


def too_large_message(request: httpx2.Request, size: str, cap: int) -> str:
    return (f"The answer from {request.url.host} is larger than the {_mb(cap)} limit ({size}); it was not read. "
            f"Ask for a shorter answer, or raise the limit ({MAX_ANSWER_ENV} or the setting "
            f"\"{MAX_ANSWER_SETTING}\").")


def _refusal(request: httpx2.Request, message: str, extensions: dict) -> httpx2.Response:
    """The answer given in place of one that was refused: an error the SDK raises as an APIStatusError
    without retrying it (x-should-retry: false), marked so `describe_error` can say what happened."""
    body = orjson.dumps({"error": {"message": message, "type": "answer_too_large", "param": None,
                                   "code": "answer_too_large"}})
    return httpx2.Response(502, headers={"content-type": "application/json", "x-should-retry": "false",
                                         REFUSED_HEADER: "answer-too-large"},
                           content=body, request=request, extensions={"http_version": extensions.get("http_version", b"HTTP/1.1")})


class _BoundedStream(httpx2.AsyncByteStream):
    """A streamed body whose every chunk must arrive before the deadline and whose size stays under the cap."""

    def __init__(self, inner: httpx2.AsyncByteStream, deadline: float, request: httpx2.Request, total: float | None,
                 cap: int) -> None:
        self._inner, self._deadline, self._request, self._total, self._cap = inner, deadline, request, total, cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        chunks = self._inner.__aiter__()
        while True:
            limit = asyncio.timeout_at(self._deadline)
            try:
                async with limit:
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                if not limit.expired():
                    raise
                raise _timed_out(self._request, self._total, "reading the answer") from exc
            seen += len(chunk)
            if seen > self._cap:
                raise AnswerTooLarge(too_large_message(self._request, f"more than {_mb(self._cap)} so far", self._cap))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _timed_out(request: httpx2.Request, total: float | None, doing: str) -> WholeRequestTimeout:
    return WholeRequestTimeout(f"no complete answer within {total:g} s ({doing})", request=request)


class BoundedTransport(httpx2.AsyncBaseTransport):
    """Any httpx transport, with the whole-request deadline and the answer-size cap.

    A non-streamed answer (anything but server-sent events) is read here, within the deadline and up
    to the cap, so a refusal is an answer (not an exception the SDK would retry)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int | None = None) -> None:
        self.inner = inner
        self.max_bytes = max_bytes if max_bytes is not None else max_answer_bytes()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # only encodings this transport inflates within the cap (a 32 MB gzip can hold 32 GB)
        request.headers["accept-encoding"] = "gzip, deflate"
        total = _total_seconds(request)
        cap = _cap_override.get() or self.max_bytes
        loop = asyncio.get_running_loop()
        # Our own body (a training file) gets time for its size: we know it, the server did not declare it.
        upload = _declared(request.headers) or 0
        deadline = loop.time() + (total if total is not None else 1e9) + upload / UPLOAD_BYTES_PER_S
        limit = asyncio.timeout_at(deadline)
        try:
            async with limit:
                response = await self.inner.handle_async_request(request)
        except TimeoutError as exc:
            if not limit.expired():
                raise
            raise _timed_out(request, total, "waiting for the answer") from exc
        declared = _declared(response.headers)
        if declared is not None and declared > cap:
            await response.aclose()
            return _refusal(request, too_large_message(request, f"{_mb(declared)} declared", cap), response.extensions)
        stream = _BoundedStream(response.stream, deadline, request, total, cap)  # type: ignore[arg-type]
        if "text/event-stream" in response.headers.get("content-type", ""):
            return httpx2.Response(response.status_code, headers=response.headers, stream=stream,
                                   extensions=response.extensions)
        chunks: list[bytes] = []
        try:
            async for chunk in stream:
                chunks.append(chunk)
        except AnswerTooLarge as exc:
            return _refusal(request, str(exc), response.extensions)
        finally:
            await stream.aclose()
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        headers = httpx2.Headers(response.headers)
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                data = _inflate(body, encoding, cap)
            except zlib.error:
                data = None  # not what it says it is: leave it to httpx, which says so
            if data is None:
                pass
            elif len(data) > cap:
                return _refusal(request, too_large_message(request, f"more than {_mb(cap)} once inflated", cap),
                                response.extensions)
            else:
                body = data
                del headers["content-encoding"]
                headers.pop("content-length", None)
        return httpx2.Response(response.status_code, headers=headers, content=body,
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _inflate(data: bytes, encoding: str, cap: int) -> bytes:
    """The body inflated, at most cap + 1 bytes of it (more means over the cap)."""
    if encoding == "deflate" and data[:1] != b"\x78":
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
    else:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)
    return inflater.decompress(data, cap + 1)


def bounded_transport(base_url: str, *, max_bytes: int | None = None, loopback_only: bool = False,
                      **transport_kwargs: object) -> BoundedTransport:
    """The transport for requests to a tier. Plain http needs no TLS: skip building a CA-verifying SSL
    context (~70 ms of CPU each time a client is made). `loopback_only`: connect only to this machine,
    checked when connecting (a key sent over plain http without the user's leave for another host)."""
    if base_url.strip().lower().startswith("http://"):
        transport_kwargs.setdefault("verify", False)
    inner = httpx2.AsyncHTTPTransport(**transport_kwargs)  # type: ignore[arg-type]
    if loopback_only:
        from cascade_studio.services.loopback import LoopbackOnlyBackend

        inner._pool._network_backend = LoopbackOnlyBackend()  # type: ignore[union-attr]  # httpcore's one seam for it
    return BoundedTransport(inner, max_bytes)


def needs_loopback(base_url: str, allow_insecure: bool) -> bool:
    """Whether requests to this URL may go to this machine only: plain http, without the user's leave."""
    return base_url.strip().lower().startswith("http://") and not allow_insecure
