"""Between the app and an MCP server over stdio: `python -m cascade_studio.services.agent.stdio_guard
MAX_BYTES COMMAND [ARGS...]` runs the server and relays its messages line by line, so that

- a message larger than MAX_BYTES (a 50 MB tool result) is not passed on: the request it answers
  gets a JSON-RPC error saying so ("result larger than N MB"), instead of the SDK spending minutes on
  the line and the call ending as "timed out" (issue 33);
- when the server exits, its exit code is said on stderr, which the app quotes ("exited with code 1").

Standard library only: it starts in a few tens of milliseconds, once per tool session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

CHUNK = 1 << 16
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
EXIT_NOTE = "cascade-studio: the server exited with code"
TOO_LARGE = "the tool's result is larger than"


def _too_large(head: bytes, size: int, limit: int) -> bytes | None:
    """The error answer for a message cut off at `limit` bytes (None when its id is not in its head)."""
    found = _ID.search(head)
    if found is None:
        return None
    message = (f"{TOO_LARGE} {limit / (1024 * 1024):.3g} MB (at least {size / (1024 * 1024):.3g} MB); "
               "it was not read")
    error = {"jsonrpc": "2.0", "id": json.loads(found.group(1)), "error": {"code": -32603, "message": message}}
    return json.dumps(error).encode() + b"\n"


def relay_out(source, sink, limit: int) -> None:
    """Copy newline-delimited messages from `source` to `sink`, replacing any over `limit` bytes."""
    while True:
        line = source.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n") and len(line) == limit + 1:
            sink.write(line)
            sink.flush()
            continue
        head, size = line[:4096], len(line)
        while not line.endswith(b"\n"):  # read the rest of the message away, keeping nothing
            line = source.readline(CHUNK)
            if not line:
                break
            size += len(line)
        answer = _too_large(head, size, limit)
        if answer is not None:
            sink.write(answer)
            sink.flush()
        print(f"cascade-studio: a message of {size} bytes from the server was over the {limit}-byte limit and was "
              "not passed on", file=sys.stderr, flush=True)


def relay_in(source, sink) -> None:
    try:
        while chunk := source.read1(CHUNK) if hasattr(source, "read1") else source.read(CHUNK):
            sink.write(chunk)
            sink.flush()
    except (OSError, ValueError):
        pass
    finally:
        try:
            sink.close()
        except OSError:
            pass


def main(argv: list[str]) -> int:
    limit, command = int(argv[0]), argv[1:]
    try:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError as exc:
        print(f"cascade-studio: cannot start {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    threading.Thread(target=relay_in, args=(sys.stdin.buffer, child.stdin), daemon=True).start()
    try:
        relay_out(child.stdout, sys.stdout.buffer, limit)
    except (OSError, ValueError):
        pass
    code = child.wait()
    print(f"{EXIT_NOTE} {code}", file=sys.stderr, flush=True)
    return code if code >= 0 else 1


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)  # not sys.exit: the stdin thread may be blocked in a read that shutdown would wait on
