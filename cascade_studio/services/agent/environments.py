"""Environments give episodes their tools and run their calls, through the official MCP SDK:

- `stdio`: an MCP server started as a command line (a new process for every session);
- `http`: an MCP server at a Streamable HTTP URL (a new MCP session every time);
- `python`: a module of type-hinted functions, served by services.agent.module_server in a process
  of its own (so a misbehaving tool cannot take the app down).

Every episode opens its own session, so episodes do not leak state into one another. Values of
an environment's variables and headers are secrets: they live in the OS keyring (account
"env:NAME:env:KEY" / "env:NAME:header:KEY"), never in the workspace; headers go over https, or
plain http to this machine only, unless the user allowed plain http (the API keys' rule).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import anyio

from cascade_studio.core.episode import DEFAULT_TOOL_TIMEOUT_S, ToolResult, environment_name_problem
from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import transport_problem
from cascade_studio.services import events
from cascade_studio.services.agent.stdio_guard import EXIT_NOTE, TOO_LARGE
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.environments import EnvironmentRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)
KINDS = ("stdio", "http", "python")
START_TIMEOUT_S = 30.0
MAX_TOOL_RESULT_ENV = "CASCADE_STUDIO_MAX_TOOL_RESULT_MB"
DEFAULT_MAX_TOOL_RESULT_MB = 8.0
SSE_SLACK = 64 * 1024  # the SDK's event limit above ours (which counts the event's field names too)
PYTHON_COMMAND = "@python"  # a stdio command that means "the Python running this app" (the demo's server)
_OPENAI_NAME = re.compile(r"[^A-Za-z0-9_-]")


class EnvironmentError_(UserError):
    """An environment could not be added, started or reached; the message names the fix."""


class EnvironmentStopped(EnvironmentError_):
    """The environment went away in the middle of an episode (its process exited, the server closed)."""


@dataclass
class EnvironmentSpec:
    name: str
    kind: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    cwd: str | None = None
    env_keys: list[str] = field(default_factory=list)  # variable names; values in the keyring
    url: str = ""
    header_keys: list[str] = field(default_factory=list)  # header names; values in the keyring
    allow_insecure: bool = False
    module: str = ""
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    def to_json(self) -> dict[str, Any]:
        keep = {"stdio": ("command", "args", "cwd", "env_keys"), "http": ("url", "header_keys", "allow_insecure"),
                "python": ("module", "cwd", "env_keys")}[self.kind]
        return {"timeout_s": self.timeout_s, **{k: getattr(self, k) for k in keep}}

    @classmethod
    def from_json(cls, name: str, kind: str, d: dict[str, Any]) -> EnvironmentSpec:
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(name=name, kind=kind, **fields)

    def describe(self) -> str:
        if self.kind == "stdio":
            return " ".join(["python" if self.command == PYTHON_COMMAND else self.command, *self.args])
        if self.kind == "http":
            return self.url
        return f"python module {self.module}"


# -- the workspace's environments ----------------------------------------------------------------
def add_environment(ws: Workspace, secrets: SecretStore, spec: EnvironmentSpec, *,
                    env: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> bool:
    """Store an environment (replacing one of the same name); its variables' and headers' values go
    to the keyring. Returns True when it replaced one."""
    problem = environment_name_problem(spec.name)
    if problem:
        raise EnvironmentError_(problem)
    if spec.kind not in KINDS:
        raise EnvironmentError_(f"unknown environment kind {spec.kind!r}: use stdio, http or python")
    env, headers = dict(env or {}), dict(headers or {})
    if spec.kind == "stdio" and not spec.command.strip():
        raise EnvironmentError_("--stdio needs a command line, e.g. --stdio \"python -m my_server\"")
    if spec.kind == "python" and not spec.module.strip():
        raise EnvironmentError_("--python needs a module file or a dotted module name")
    if spec.kind == "http":
        parsed = urlparse(spec.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise EnvironmentError_(f"{spec.url!r} is not an http(s) URL; give the MCP endpoint, e.g. "
                                    "http://127.0.0.1:8000/mcp")
        if headers:
            why = transport_problem(spec.url, spec.allow_insecure)
            if why:
                raise EnvironmentError_(f"The environment's headers are secrets and its URL {why.replace('API key', 'headers')}.")
    if not 0 < spec.timeout_s <= 3600:
        raise EnvironmentError_("the tool-call timeout must be between 0 and 3600 seconds")
    spec.env_keys = sorted(env) if spec.kind != "http" else []
    spec.header_keys = sorted(headers) if spec.kind == "http" else []
    repo = EnvironmentRepository(ws)
    old = repo.get(spec.name)
    for key, value in env.items():
        secrets.set_secret(f"env:{spec.name}:env:{key}", value)
    for key, value in headers.items():
        secrets.set_secret(f"env:{spec.name}:header:{key}", value)
    if old is not None:
        old_spec = EnvironmentSpec.from_json(spec.name, old[0], old[1])
        _forget(secrets, old_spec, keep_env=set(spec.env_keys), keep_headers=set(spec.header_keys))
    replaced = repo.put(spec.name, spec.kind, spec.to_json())
    events.publish(events.ENVIRONMENTS, ws)
    return replaced


def _forget(secrets: SecretStore, spec: EnvironmentSpec, *, keep_env: set[str] = frozenset(),
            keep_headers: set[str] = frozenset()) -> None:
    for key in spec.env_keys:
        if key not in keep_env:
            secrets.delete_secret(f"env:{spec.name}:env:{key}")
    for key in spec.header_keys:
        if key not in keep_headers:
            secrets.delete_secret(f"env:{spec.name}:header:{key}")


def get_environment(ws: Workspace, name: str) -> EnvironmentSpec:
    row = EnvironmentRepository(ws).get(name)
    if row is None:
        known = ", ".join(n for n, _, _ in EnvironmentRepository(ws).list()) or "none yet"
        raise EnvironmentError_(f"No environment named {name!r} (known: {known}). Add it with "
                                f"`cascade-studio env add {name} --stdio \"COMMAND\"` or `--url URL`.")
    return EnvironmentSpec.from_json(name, *row)


def list_environments(ws: Workspace) -> list[dict[str, Any]]:
    used = TaskRepository(ws).environments()
    return [{"name": n, "kind": k, "target": EnvironmentSpec.from_json(n, k, spec).describe(), "tasks": used.get(n, 0),
             **spec} for n, k, spec in EnvironmentRepository(ws).list()]


def remove_environment(ws: Workspace, secrets: SecretStore, name: str) -> bool:
    row = EnvironmentRepository(ws).get(name)
    if row is None:
        return False
    _forget(secrets, EnvironmentSpec.from_json(name, *row))
    removed = EnvironmentRepository(ws).remove(name)
    events.publish(events.ENVIRONMENTS, ws)
    return removed


# -- sessions ------------------------------------------------------------------------------------
def openai_tool(tool: Any) -> tuple[str, dict[str, Any]]:
    """An MCP tool as an OpenAI function definition (name made valid for OpenAI: [A-Za-z0-9_-], 64)."""
    name = _OPENAI_NAME.sub("_", tool.name)[:64] or "tool"
    schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {}
    params = dict(schema) if isinstance(schema, dict) else {}
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    fn: dict[str, Any] = {"name": name, "description": (tool.description or "").strip(), "parameters": params}
    return name, {"type": "function", "function": fn}


def result_text(result: Any) -> tuple[str, Any]:
    """The text the model reads for an MCP CallToolResult, and its structured content."""
    parts = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', getattr(block, 'mimeType', ''))}, "
                         f"{len(getattr(block, 'data', '') or '') * 3 // 4} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(block, 'uri', '')}]")
        elif kind == "resource":
            res = getattr(block, "resource", None)
            parts.append(getattr(res, "text", None) or f"[resource {getattr(res, 'uri', '')}]")
        else:
            parts.append(f"[{kind}]")
    structured = getattr(result, "structured_content", None)
    if structured is None:
        structured = getattr(result, "structuredContent", None)
    text = "\n".join(parts)
    if not text and structured is not None:
        text = json.dumps(structured)
    return text, structured


class ToolSession:
    """One live session with an environment: its tools (as OpenAI definitions) and their calls."""

    def __init__(self, spec: EnvironmentSpec, session: Any, tools: list[Any], hidden: set[str], stderr: Any) -> None:
        self.spec, self._session, self._stderr = spec, session, stderr
        self.names: dict[str, str] = {}  # OpenAI name -> MCP name
        self.tools: list[dict[str, Any]] = []
        self.all_tools: list[dict[str, Any]] = []
        for tool in tools:
            name, definition = openai_tool(tool)
            self.names[name] = tool.name
            self.all_tools.append(definition)
            if tool.name not in hidden and name not in hidden:
                self.tools.append(definition)

    async def call(self, name: str, arguments: Any, call_id: str = "", timeout_s: float | None = None) -> ToolResult:
        """Run one tool call. A tool error (isError) and a timeout are results the model reads; an
        environment that went away raises EnvironmentStopped."""
        from mcp.shared.exceptions import MCPError

        timeout = timeout_s or self.spec.timeout_s
        started = time.perf_counter()
        result = ToolResult(call_id=call_id, name=name, arguments=arguments)
        if not isinstance(arguments, dict) or "__unparsed__" in arguments:
            result.error = f"the arguments are not a JSON object: {str(arguments)[:200]}"
            return result
        mcp_name = self.names.get(name)
        if mcp_name is None:
            result.error = f"there is no tool named {name!r} (tools: {', '.join(self.names) or 'none'})"
            return result
        try:
            reply = await self._session.call_tool(mcp_name, arguments, read_timeout_seconds=timeout)
        except MCPError as exc:
            result.duration_ms = (time.perf_counter() - started) * 1000
            code = getattr(getattr(exc, "error", None), "code", None)
            if code == -32001 or "timed out" in str(exc):
                result.error = f"the tool did not answer within {timeout:g} s (timed out)"
                return result
            if code == -32000 or "closed" in str(exc).lower():
                raise EnvironmentStopped(self.stopped_message(f"calling {name}")) from None
            if TOO_LARGE in str(exc):  # said by stdio_guard
                result.error = str(exc)
                return result
            result.error = f"the environment refused the call: {exc}"
            return result
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            raise EnvironmentStopped(self.stopped_message(f"calling {name}", exc)) from None
        result.duration_ms = (time.perf_counter() - started) * 1000
        result.content, result.structured = result_text(reply)
        result.is_error = bool(getattr(reply, "is_error", None) or getattr(reply, "isError", False))
        return result

    def stopped_message(self, doing: str, exc: BaseException | None = None) -> str:
        tail = stderr_tail(self._stderr)
        why = f" ({type(exc).__name__}: {exc})" if exc is not None and str(exc) else ""
        return (f"The environment {self.spec.name!r} ({self.spec.describe()}) stopped while {doing}{why}."
                + (f" Its last output: {tail}" if tail else "") + " Check that the server runs on its own, "
                "then run again: the episode goes on from its last stored step.")


def stderr_tail(stream: Any, limit: int = 400) -> str:
    if stream is None:
        return ""
    try:
        stream.flush()
        stream.seek(0)
        text = stream.read()
    except (OSError, ValueError):
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith(EXIT_NOTE)]
    return " | ".join(lines[-4:])[-limit:]


def _exit_code(stream: Any) -> str | None:
    """The server's exit code, as stdio_guard said it on stderr."""
    try:
        stream.flush()
        stream.seek(0)
        found = re.findall(re.escape(EXIT_NOTE) + r" (-?\d+)", stream.read())
    except (AttributeError, OSError, ValueError):
        return None
    return found[-1] if found else None


@contextlib.asynccontextmanager
async def open_session(spec: EnvironmentSpec, secrets: SecretStore, *, hidden: set[str] | None = None
                       ) -> AsyncIterator[ToolSession]:
    """A fresh session with the environment, its tools listed. Raises EnvironmentError_ in words
    when it cannot start (command not found, server exits, no answer within START_TIMEOUT_S).
    The SDK's task groups wrap errors in exception groups; one error comes out as itself."""
    try:
        async with _session(spec, secrets, hidden or set()) as session:
            yield session
    except BaseExceptionGroup as group:
        leaf = _single(group)
        if leaf is None:
            raise
        raise leaf from None


def _single(group: BaseExceptionGroup) -> BaseException | None:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for e in exc.exceptions:
                walk(e)
        else:
            leaves.append(exc)

    walk(group)
    real = [e for e in leaves if not isinstance(e, anyio.get_cancelled_exc_class())]
    if len(real) == 1:
        return real[0]
    return leaves[0] if leaves and not real else None


@contextlib.asynccontextmanager
async def _session(spec: EnvironmentSpec, secrets: SecretStore, hidden: set[str]) -> AsyncIterator[ToolSession]:
    from mcp import ClientSession

    stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(stderr.close)
        garbage: list[Exception] = []  # what the server wrote that is not MCP (a wrong command, a log line)
        spoke = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, Exception) and not garbage:
                garbage.append(message)
                spoke.set()

        try:
            read, write = await stack.enter_async_context(_transport(spec, secrets, stderr))
            session = await stack.enter_async_context(ClientSession(read, write, message_handler=on_message))
            tools = None
            with anyio.fail_after(START_TIMEOUT_S):
                async with anyio.create_task_group() as group:
                    async def fail_fast() -> None:  # garbage before the handshake: do not wait 30 s for it
                        await spoke.wait()
                        group.cancel_scope.cancel()

                    group.start_soon(fail_fast)
                    await session.initialize()
                    tools = await _all_tools(session)
                    group.cancel_scope.cancel()
            if tools is None:
                raise EnvironmentError_(f"The environment {spec.name!r} ({spec.describe()}) does not speak MCP on its "
                                        f"standard output: it printed {_printed(garbage[0])}. Check the command: it "
                                        f"must start an MCP server over stdio. {_tail_hint(stderr)}")
        except EnvironmentError_:
            raise
        except TimeoutError:
            raise EnvironmentError_(f"The environment {spec.name!r} ({spec.describe()}) did not answer within "
                                    f"{START_TIMEOUT_S:g} s of starting. {_tail_hint(stderr)}") from None
        except FileNotFoundError as exc:
            raise EnvironmentError_(f"The environment {spec.name!r} cannot start: {exc.filename or spec.command!r} "
                                    "was not found. Give the full path of the command, or install it.") from None
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported in words
            raise EnvironmentError_(_start_failure(spec, exc, stderr)) from None
        yield ToolSession(spec, session, tools, hidden, stderr)


def _start_failure(spec: EnvironmentSpec, exc: BaseException, stderr: Any) -> str:
    """Why a session could not start, in words: the SDK's task groups wrap the cause in exception groups."""
    from mcp.shared.exceptions import MCPError

    if isinstance(exc, BaseExceptionGroup):
        exc = _single(exc) or exc
    where = f"The environment {spec.name!r} ({spec.describe()})"
    if isinstance(exc, ToolListError):
        return f"{where} cannot be used: {exc}. Check the server's tools/list paging. {_tail_hint(stderr)}"
    closed = isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream) or (
        isinstance(exc, MCPError) and "closed" in str(exc).lower())
    if closed:
        gone = "exited" if spec.kind != "http" else "closed the connection"
        code = _exit_code(stderr)
        if code is not None:
            gone = f"exited with code {code}"
        said = _tail_hint(stderr)
        return (f"{where}: the server {gone} before listing its tools. {said + '.' if said else 'It printed nothing.'} "
                "Run the command on its own to see why.")
    return f"{where} could not be started or reached: {type(exc).__name__}: {exc}. {_tail_hint(stderr)}"


def _printed(exc: Exception) -> str:
    """The line a server printed that is not a JSON-RPC message (from the SDK's parse error)."""
    try:
        found = exc.errors()[0].get("input")  # type: ignore[attr-defined] - a pydantic ValidationError
    except (AttributeError, IndexError, TypeError):
        found = None
    return repr(str(found)[:120]) if found is not None else f"something else ({str(exc)[:120]})"


def _tail_hint(stderr: Any) -> str:
    tail = stderr_tail(stderr)
    return f"Its output: {tail}" if tail else ""


MAX_TOOL_PAGES = 100  # a server whose tool list has more pages than this is paging forever


class ToolListError(Exception):
    """The server's tool list cannot be read to its end (said in words by `_session`)."""


async def _all_tools(session: Any) -> list[Any]:
    from mcp.types import PaginatedRequestParams

    tools: list[Any] = []
    cursor = None
    seen: set[str] = set()
    for _ in range(MAX_TOOL_PAGES):
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor)) if cursor \
            else await session.list_tools()
        tools.extend(page.tools)
        cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
        if not cursor:
            return tools
        if cursor in seen:
            raise ToolListError(f"its tool list repeats a page (cursor {cursor[:40]!r}): it never ends")
        seen.add(cursor)
    raise ToolListError(f"its tool list goes on past {MAX_TOOL_PAGES} pages ({len(tools)} tools so far): it "
                        "seems never to end")


def _transport(spec: EnvironmentSpec, secrets: SecretStore, stderr: Any) -> Any:
    if spec.kind == "http":
        from mcp.client.streamable_http import streamable_http_client

        from cascade_studio.services.agent.mcp_http import capped_client

        headers = _secret_values(secrets, spec, "header", spec.header_keys)
        if headers:
            why = transport_problem(spec.url, spec.allow_insecure)
            if why:
                raise EnvironmentError_(f"Not sending {spec.name!r}'s headers: its URL {why}.")
        return _http(spec.url, headers, max_tool_result_bytes(), capped_client, streamable_http_client)
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = _secret_values(secrets, spec, "env", spec.env_keys)
    if spec.kind == "python":
        command, args = python_command(["-m", "cascade_studio.services.agent.module_server", spec.module])
    elif spec.command == PYTHON_COMMAND:
        command, args = python_command(list(spec.args))
    else:
        command, args = spec.command, list(spec.args)
    command, args = _guarded(spec, command, args)
    params = StdioServerParameters(command=command, args=args, env=env or None, cwd=spec.cwd or None)
    return stdio_client(params, errlog=stderr)


def max_tool_result_bytes() -> int:
    """The largest message a tool server may send ($CASCADE_STUDIO_MAX_TOOL_RESULT_MB, default 8 MB: far
    more text than any model's context holds)."""
    try:
        mb = float(os.environ.get(MAX_TOOL_RESULT_ENV) or DEFAULT_MAX_TOOL_RESULT_MB)
    except ValueError:
        mb = DEFAULT_MAX_TOOL_RESULT_MB
    return int(max(mb, 0.001) * 1024 * 1024)


def _guarded(spec: EnvironmentSpec, command: str, args: list[str]) -> tuple[str, list[str]]:
    """The server's command line run through stdio_guard (a message over the limit is answered with an
    error in words, the exit code is said); a command that is not there is refused here, in words."""
    found = shutil.which(command, path=None) if os.sep not in command else command
    if os.sep in command and not os.path.isabs(command):
        found = os.path.join(spec.cwd or os.getcwd(), command)
    if not found or not os.path.exists(found):
        raise FileNotFoundError(2, "not found", command)
    guard = [str(max_tool_result_bytes()), command, *args]
    if getattr(sys, "frozen", False):
        return python_command(["-m", "cascade_studio.services.agent.stdio_guard", *guard])
    return sys.executable, [str(Path(__file__).with_name("stdio_guard.py")), *guard]


def python_command(args: list[str]) -> tuple[str, list[str]]:
    """The command line that runs `python ARGS` with the app's own Python; in the packaged app (no
    separate interpreter) the program runs the module itself: `cascade-studio --run-module M ...`."""
    if getattr(sys, "frozen", False) and args[:1] == ["-m"]:
        return sys.executable, ["--run-module", *args[1:]]
    return sys.executable, args


def _secret_values(secrets: SecretStore, spec: EnvironmentSpec, kind: str, keys: list[str]) -> dict[str, str]:
    """The values of an environment's variables (kind "env") or headers ("header") from the keyring."""
    out = {}
    for key in keys:
        value = secrets.get_secret(f"env:{spec.name}:{kind}:{key}")
        if value is None:
            raise EnvironmentError_(f"The environment {spec.name!r}'s {'header' if kind == 'header' else 'variable'} "
                                    f"{key} is not in the keyring; add the environment again with --{kind} {key}=VALUE.")
        out[key] = value
    return out


@contextlib.asynccontextmanager
async def _http(url: str, headers: dict[str, str], limit: int, make_client: Any, transport: Any) -> AsyncIterator[Any]:
    """Streamable HTTP with the tool-result limit stdio has (the client's transport: mcp_http); the
    SDK's own per-event limit a little above it, as a backstop."""
    async with make_client(headers or None, limit) as client, \
            transport(url, http_client=client, max_sse_event_size=limit + SSE_SLACK) as streams:
        yield streams[0], streams[1]


async def list_tools(spec: EnvironmentSpec, secrets: SecretStore) -> list[dict[str, Any]]:
    """The environment's tools as OpenAI definitions (check tools included)."""
    async with open_session(spec, secrets) as session:
        return session.all_tools


async def try_call(spec: EnvironmentSpec, secrets: SecretStore, name: str, arguments: dict[str, Any]) -> ToolResult:
    """One call in a fresh session (the Environments page's and `env call`'s test)."""
    async with open_session(spec, secrets) as session:
        return await session.call(name, arguments, call_id="test")
