"""Requests a client gets wrong (badly typed fields, JSON nested without end, bodies past the
limit) get OpenAI's error envelope naming the field, 400 or 413, never a bare 500; checked over
real HTTP against the sandbox server."""

from __future__ import annotations

import copy
import http.client
import json
import socket

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_studio.sandbox.app import SandboxConfig
from cascade_studio.sandbox.server import SandboxThread
from tests.spec_check import check_error_envelope

LIMIT = 4096
AUTH = {"Authorization": "Bearer sk-test"}
TOOLS = [{"type": "function", "function": {
    "name": "calculate_triangle_area", "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {"type": "object", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"},
                                                    "unit": {"type": "string", "enum": ["cm", "m"]}},
                   "required": ["base", "height"]}}}]
CHAT = {"model": "gpt-4o-mini", "tools": TOOLS, "tool_choice": "auto", "logprobs": True, "top_logprobs": 2,
        "store": True, "metadata": {"run": "r1"},
        "messages": [{"role": "system", "content": "You are helpful."},
                     {"role": "user", "content": [{"type": "text", "text": "Area of a triangle, base 10 height 5?"}]}]}


@pytest.fixture(scope="module")
def server():
    thread = SandboxThread(SandboxConfig(latency_scale=0, job_seconds=1.0, max_body_bytes=LIMIT))
    thread.start()
    yield thread.server
    thread.stop()


def send(server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         ) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={**AUTH, "Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def post_json(server, path: str, body: object) -> tuple[int, dict]:
    return send(server, "POST", path, json.dumps(body).encode())


def assert_error(status: int, body: dict, expected_status: int, param: str | None) -> dict:
    assert status == expected_status, body
    check_error_envelope(body)
    error = body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param is not None:
        assert param in error["message"]
    return error


def upload(server, name: str, content: bytes, purpose: str) -> str:
    boundary = "sandbox-test-boundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    status, body = send(server, "POST", "/v1/files", form,
                        {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, body
    return body["id"]


def with_value(base: dict, path: tuple, value: object) -> dict:
    body = copy.deepcopy(base)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


CHAT_CASES = [
    (("tools", 0, "function", "name"), ["calculate_triangle_area"], "tools[0].function.name"),
    (("model",), 5, "model"),
    (("messages", 1, "content", 0, "text"), 7, "messages[1].content[0].text"),
    (("messages", 0, "role"), ["user"], "messages[0].role"),
    (("tools", 0, "function", "parameters"), ["base"], "tools[0].function.parameters"),
    (("tools", 0, "function", "parameters", "required", 0), ["base"], "tools[0].function.parameters.required[0]"),
    (("tools", 0, "function", "parameters", "properties", "unit", "enum"), "cm",
     "tools[0].function.parameters.properties.unit.enum"),
    (("tool_choice",), {"type": "function", "function": {"name": ["calculate_triangle_area"]}},
     "tool_choice.function.name"),
    (("logprobs",), "yes", "logprobs"),
    (("metadata", "run"), 1, "metadata.run"),
]


@pytest.mark.parametrize(("path", "value", "param"), CHAT_CASES, ids=[c[2] for c in CHAT_CASES])
def test_badly_typed_chat_fields_get_400_naming_the_field(server, path, value, param):
    status, body = post_json(server, "/v1/chat/completions", CHAT)
    assert status == 200, body
    status, body = post_json(server, "/v1/chat/completions", with_value(CHAT, path, value))
    assert_error(status, body, 400, param)


def test_badly_typed_fields_of_other_endpoints_get_400(server):
    emb = {"model": "text-embedding-3-small", "input": ["hello"]}
    assert post_json(server, "/v1/embeddings", emb)[0] == 200
    assert_error(*post_json(server, "/v1/embeddings", {**emb, "model": ["text-embedding-3-small"]}), 400, "model")
    assert_error(*post_json(server, "/v1/embeddings", {**emb, "input": [{"text": "hello"}]}), 400, "input[0]")

    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(10)]
    training = upload(server, "train.jsonl", "\n".join(json.dumps(r) for r in rows).encode(), "fine-tune")
    job = {"model": "gpt-4o-mini", "training_file": training}
    for change, param in [({"model": 5}, "model"), ({"training_file": [training]}, "training_file"),
                          ({"validation_file": {"id": training}}, "validation_file"), ({"seed": "42"}, "seed"),
                          ({"hyperparameters": {"learning_rate_multiplier": "fast"}},
                           "hyperparameters.learning_rate_multiplier"),
                          ({"hyperparameters": ["n_epochs", 3]}, "hyperparameters"),
                          ({"method": {"type": "supervised", "supervised": [1]}}, "method.supervised"),
                          ({"metadata": {"owner": ["me"]}}, "metadata.owner")]:
        assert_error(*post_json(server, "/v1/fine_tuning/jobs", {**job, **change}), 400, param)
    assert post_json(server, "/v1/fine_tuning/jobs", job)[0] == 200

    line = {"custom_id": "t1", "method": "POST", "url": "/v1/chat/completions", "body": CHAT}
    batch_file = upload(server, "batch.jsonl", json.dumps(line).encode(), "batch")
    batch = {"input_file_id": batch_file, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    assert_error(*post_json(server, "/v1/batches", {**batch, "input_file_id": [batch_file]}), 400, "input_file_id")
    assert_error(*post_json(server, "/v1/batches", {**batch, "endpoint": 1}), 400, "endpoint")
    assert post_json(server, "/v1/batches", batch)[0] == 200


def test_the_sdk_sees_a_bad_request_naming_the_field(server):
    client = openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)
    tools = [{"type": "function", "function": {"name": ["get_weather"], "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=tools)
    assert info.value.status_code == 400
    assert info.value.param == "tools[0].function.name" and info.value.code == "invalid_type"


@pytest.fixture(scope="module")
def roomy_server():
    """The default body limit (32 MiB)."""
    thread = SandboxThread(SandboxConfig(latency_scale=0))
    thread.start()
    yield thread.server
    thread.stop()


@pytest.mark.parametrize("depth", [65, 500, 100_000])
def test_deeply_nested_json_gets_400(roomy_server, depth):
    raw = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": ' \
        + b"[" * depth + b"]" * depth + b"}"
    status, body = send(roomy_server, "POST", "/v1/chat/completions", raw)
    if depth < 1000:  # the parser takes it; the depth check names where it went too deep
        error = assert_error(status, body, 400, "metadata" + "[0]" * 63)
        assert "nested more than 64 levels" in error["message"]
    else:  # past the parser's own recursion limit
        assert_error(status, body, 400, None)


def test_a_body_just_under_the_limit_is_served(server):
    body = with_value(CHAT, ("messages", 0, "content"), "x" * 1000)
    assert len(json.dumps(body)) < LIMIT
    assert post_json(server, "/v1/chat/completions", body)[0] == 200


def test_content_length_over_the_limit_gets_413_without_sending_the_body(server):
    """The answer comes while the client still holds the whole body back."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer sk-test\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1))
        head, _, rest = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 413"), head
    error = assert_error(413, json.loads(rest), 413, None)
    assert error["code"] == "request_too_large"


def test_streamed_body_over_the_limit_gets_413(server):
    """No Content-Length (chunked): the bytes are counted as they arrive."""
    chunk = b"[" + b"0," * 511 + b"0]"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer sk-test\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):  # 3 KiB: past the 4 KiB limit with the next chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        head, _, rest = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(rest)["error"]["code"] == "request_too_large"


def test_file_upload_over_the_limit_gets_413_through_the_sdk(server):
    client = openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.jsonl", b"{}\n" * LIMIT), purpose="batch")
    assert info.value.status_code == 413 and info.value.code == "request_too_large"
    assert client.files.create(file=("small.jsonl", b"{}\n"), purpose="batch").bytes == 3


def _read_response(sock: socket.socket) -> tuple[bytes, bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        assert part, data
        data += part
    head, sep, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        part = sock.recv(65536)
        assert part
        rest += part
    return head, sep, rest


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    out = [path] if path else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        out += _paths(child, (*path, key))
    return out


@settings(max_examples=150)
@given(path=st.sampled_from(_paths(CHAT)), value=JSON_VALUES)
def test_any_value_in_any_chat_field_never_gets_a_500(server, path, value):
    status, body = post_json(server, "/v1/chat/completions", with_value(CHAT, path, value))
    assert status in (200, 400, 404), body
    if status != 200:
        check_error_envelope(body)


def test_a_bug_in_the_sandbox_still_answers_in_the_envelope(server, monkeypatch):
    from cascade_studio.sandbox import simulator

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(simulator, "generate_chat", broken)
    unseen = {**CHAT, "messages": [{"role": "user", "content": "A request not sent before (answers are cached)."}]}
    status, body = post_json(server, "/v1/chat/completions", unseen)
    assert status == 500
    check_error_envelope(body)
    assert body["error"]["type"] == "server_error"
