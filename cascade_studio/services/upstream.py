"""The fast outbound client of the gateway and of collection runs: one keep-alive HTTP/1.1 pool per
tier, the request written as prepared bytes and the answer read with httptools, without the openai
SDK's per-request machinery (its request building, retry wrapper and httpx's pool scans cost ~60% of
the gateway's CPU and most of a collection run's).

Every exchange is bounded as a whole (`exchange_limits`: the tier's timeout covers connecting,
sending, waiting and reading the whole answer; an answer above the services' cap is refused), the
same bounds the services' client keeps. Failures are raised as the openai SDK's exceptions (the
SDK's own constructor for status errors), so the cascade retries, escalates and describes them
exactly as it does on the SDK's path. A tier behind an HTTP proxy (the *_PROXY environment) goes
through the SDK, which honours the proxy settings; so does one whose client cannot be made."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
import zlib
from urllib.parse import urlsplit

import httptools
import httpx2
import openai

MAX_IDLE = 256  # keep-alive connections a tier keeps open between requests


class AnswerTooLarge(Exception):
    """The answer passed the size cap (exchange_limits; a failure of the tier, not retried). `size`: how
    large, in the words of the services' refusal (bounded_http.too_large_message)."""

    def __init__(self, message: str, size: str = "") -> None:
        super().__init__(message)
        self.size = size


def exchange_limits(timeout_s: float) -> tuple[float, int]:
    """(the whole exchange's deadline in seconds, the answer-size cap in bytes): the tier's timeout, and
    the services' cap (services.bounded_http: 32 MB unless $CASCADE_STUDIO_MAX_ANSWER_MB or the setting
    says otherwise), the same bounds every other request to a tier keeps."""
    from cascade_studio.services.bounded_http import max_answer_bytes

    return timeout_s, max_answer_bytes()


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


def uses_proxy(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(parts.hostname or "")


class _Exchange(asyncio.Protocol):
    """One connection; reads one answer at a time into memory (bounded)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.keep_alive = False
        self.done: asyncio.Future[None] | None = None
        self._headers_done = False

    def start(self, request: bytes) -> asyncio.Future[None]:
        self._reset()
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.done

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done is None or self.done.done():
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(ConnectionError(f"the server's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            if self._headers_done and self._until_close():
                self._finish(None)  # an answer delimited by the end of the connection
            else:
                self._finish(ConnectionError("the server closed the connection before the whole answer arrived"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self.status = self._parser.get_status_code()
        declared = next((v for n, v in self.headers if n.lower() == b"content-length"), None)
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            # refused before its first byte, as the services' client refuses it (bounded_http): no time, no memory
            self._finish(AnswerTooLarge(f"The answer is larger than the {_mb(self.limit)} limit (it declares "
                                        f"{_mb(int(declared))}); it was not read.",
                                        f"{_mb(int(declared))} declared"))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self._finish(AnswerTooLarge(f"The answer is larger than the {_mb(self.limit)} limit; it was not "
                                        "read further.", f"more than {_mb(self.limit)} so far"))
            self.close()
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        self._finish(None)

    def _until_close(self) -> bool:
        names = {n.lower() for n, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _finish(self, exc: BaseException | None) -> None:
        if self.done is not None and not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """`await upstream.post(body_bytes)` -> the answer's bytes (2xx), else the SDK's exception."""

    def __init__(self, sdk: openai.AsyncOpenAI, timeout_s: float, *, loopback_only: bool = False,
                 user_agent: str = "cascade-studio-gateway") -> None:
        self._sdk = sdk  # builds the status errors, exactly as on the SDK's path
        # plain http without the user's leave: connect only to this machine, checked when connecting
        # (services.loopback: a name must resolve to loopback addresses alone; the checked address is used)
        self.loopback_only = loopback_only
        url = str(sdk.base_url).rstrip("/") + "/chat/completions"
        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.timeout_s, self.limit = exchange_limits(timeout_s)
        self._ssl = httpx2.create_ssl_context() if self.tls else None
        if self._ssl is not None:
            self._ssl.set_alpn_protocols(["http/1.1"])
        headers = {k: v for k, v in {**sdk.default_headers, **sdk.auth_headers}.items()
                   if isinstance(v, str) and not k.lower().startswith("x-stainless")}
        headers["User-Agent"] = user_agent
        netloc = parts.netloc.rsplit("@", 1)[-1]
        path = parts.path or "/"
        self._head = (f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode("latin-1")
        self._idle: list[_Exchange] = []

    async def _connect(self) -> _Exchange:
        loop = asyncio.get_running_loop()
        host = self.host
        if self.loopback_only:  # the services' rule and words (services.loopback), the checked address used
            from cascade_studio.services.loopback import checked_loopback_address

            host = await checked_loopback_address(host, self.port)
        _, conn = await loop.create_connection(lambda: _Exchange(self.limit), host, self.port, ssl=self._ssl,
                                               server_hostname=self.host if self.tls else None)
        return conn

    async def post(self, body: bytes) -> bytes:
        request = self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        conn: _Exchange | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                while self._idle:
                    candidate = self._idle.pop()
                    if not candidate.closed and candidate.transport is not None and not candidate.transport.is_closing():
                        conn = candidate
                        break
                if conn is None:
                    conn = await self._connect()
                await conn.start(request)
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise openai.APITimeoutError(request=self._request()) from exc
        except AnswerTooLarge:
            if conn is not None:
                conn.close()
            raise
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            if conn is not None:
                conn.close()
            raise openai.APIConnectionError(request=self._request()) from exc
        except BaseException:  # cancelled mid-answer: the connection is out of step
            if conn is not None:
                conn.close()
            raise
        raw = b"".join(conn.body)
        coding = next((v for n, v in conn.headers if n.lower() == b"content-encoding"), b"identity").lower()
        if coding in (b"gzip", b"deflate"):  # not asked for, but some servers compress anyway
            try:
                raw = zlib.decompressobj(16 + zlib.MAX_WBITS if coding == b"gzip" else zlib.MAX_WBITS).decompress(
                    raw, self.limit + 1)
            except zlib.error as exc:
                conn.close()
                raise openai.APIConnectionError(request=self._request()) from exc
            if len(raw) > self.limit:
                conn.close()
                raise AnswerTooLarge(f"The answer is larger than the {_mb(self.limit)} limit once unpacked; it "
                                     "was not read further.", f"more than {_mb(self.limit)} once inflated")
        if conn.keep_alive and not conn.closed and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        if 200 <= conn.status < 300:
            return raw
        response = httpx2.Response(conn.status, headers=conn.headers, content=raw, request=self._request())
        raise self._sdk._make_status_error_from_response(response)

    def _request(self) -> httpx2.Request:
        return httpx2.Request("POST", self.url)

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def refusal_error(sdk: openai.AsyncOpenAI, url: str, exc: AnswerTooLarge) -> openai.APIStatusError:
    """The error the services' client (bounded_http) raises for an answer over the cap, for one the fast
    client refused: the same status, headers and words, so it is described, and not retried, alike."""
    from cascade_studio.services.bounded_http import _refusal, max_answer_bytes, too_large_message

    request = httpx2.Request("POST", url)
    response = _refusal(request, too_large_message(request, exc.size or "over the limit", max_answer_bytes()), {})
    return sdk._make_status_error_from_response(response)


def fast_client(sdk: openai.AsyncOpenAI, timeout_s: float, *, loopback_only: bool,
                user_agent: str) -> Upstream | None:
    """The fast client for an SDK client's base URL, or None where the SDK must send (an HTTP proxy)."""
    url = str(sdk.base_url)
    if uses_proxy(url) or urlsplit(url).scheme not in ("http", "https"):
        return None
    return Upstream(sdk, timeout_s, loopback_only=loopback_only, user_agent=user_agent)
