"""A local HTTP server that records every Authorization header it receives: the witness for
"a key goes only where the user sent it". It answers like a minimal OpenAI-compatible server, or
redirects every request to another address."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(model: str) -> dict:
    return {
        "id": "chatcmpl-witness", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "ok", "refusal": None}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }


class WitnessServer:
    def __init__(self, redirect_to: str | None = None, respond=None) -> None:
        """`respond(body) -> (status, bytes | dict)` answers POSTs instead of the default completion."""
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.bodies: list[dict] = []
        self.redirect_to = redirect_to
        self.respond = respond
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> None:
                witness.requests.append((self.command, self.path, self.headers.get("Authorization")))

            def _send(self, status: int, body, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                if witness.redirect_to:
                    return self._send(307, {}, {"Location": witness.redirect_to + self.path})
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model", "created": 0,
                                                             "owned_by": "witness"}]})

            def do_POST(self) -> None:  # noqa: N802
                self._record()
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                witness.bodies.append(body)
                if witness.redirect_to:
                    return self._send(307, {}, {"Location": witness.redirect_to + self.path})
                if witness.respond is not None:
                    status, answer = witness.respond(body)
                    return self._send(status, answer)
                self._send(200, completion(str(body.get("model", "m"))))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def auth_headers(self) -> list[str | None]:
        return [auth for _, _, auth in self.requests]

    def __enter__(self) -> WitnessServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
