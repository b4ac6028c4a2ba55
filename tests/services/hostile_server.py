"""A server that lies about its answer's size and drips it (issue 33): headers at once, declaring
`declared` bytes (None: chunked, no size), then `chunk` every `interval` seconds until `limit` bytes
were sent or the client hangs up."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HostileServer:
    def __init__(self, *, declared: int | None = 100 * 10**9, interval: float = 1.0, chunk: bytes = b" ",
                 limit: int | None = None, content_type: str = "application/json") -> None:
        self.stop = threading.Event()
        self.requests = 0
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                server.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if declared is None:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.close_connection = True
                try:
                    self.wfile.flush()
                    while limit is None or server.sent < limit:
                        if interval and server.stop.wait(interval):
                            return
                        if server.stop.is_set():
                            return
                        data = chunk if declared is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                        self.wfile.write(data)
                        self.wfile.flush()
                        server.sent += len(chunk)
                    if declared is None:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    return  # the client hung up: as it should

            do_GET = _answer  # noqa: N815
            do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    async def __aenter__(self) -> HostileServer:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()
