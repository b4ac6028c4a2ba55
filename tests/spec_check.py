"""Validate recorded HTTP exchanges against the official OpenAI OpenAPI spec (openapi-core)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import openai
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi" / "openapi.yaml"
BUNDLED_SPEC = Path(__file__).resolve().parent / "data" / "openapi.yaml"
SERVER = "https://api.openai.com"
# The spec documents /files/{id}/content as application/json "string"; the real API (and the SDK)
# return the raw file bytes. We check those bytes directly instead.
RAW_BODY_PATHS = ("/content",)


@lru_cache(maxsize=1)
def openapi() -> OpenAPI:
    path = SPEC_PATH if SPEC_PATH.exists() else BUNDLED_SPEC
    with open(path, "rb") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    _drop_unmapped_discriminators(spec)
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _drop_unmapped_discriminators(node: Any) -> None:
    """The spec puts `discriminator: {propertyName: role}` without a mapping on its message unions.
    OpenAPI's implicit mapping would then look for schemas named after the values ("user"), which
    do not exist, so every message would fail. Dropping those discriminators keeps the `oneOf`
    check itself (each value must match exactly one branch)."""
    if isinstance(node, dict):
        # The spec also keeps OpenAPI 3.0's boolean `exclusiveMinimum: true` in a 3.1 document, where
        # JSON Schema reads `true` as the number 1 (so learning_rate_multiplier=0.5 would be refused).
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if node.get(bound) is True and limit in node:
                node[bound] = node.pop(limit)
            elif node.get(bound) is False:
                del node[bound]
        disc = node.get("discriminator")
        if isinstance(disc, dict) and "mapping" not in disc:
            del node["discriminator"]
        for value in node.values():
            _drop_unmapped_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_unmapped_discriminators(value)


class Recorder:
    """httpx event hooks that keep every (request, response) the SDK exchanged."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[Any, Any]] = []

    def hook(self, response) -> None:
        response.read()
        self.exchanges.append((response.request, response))

    async def ahook(self, response) -> None:
        await response.aread()
        self.exchanges.append((response.request, response))

    def client(self, base_url: str, key: str = "sk-test", **kw) -> openai.OpenAI:
        http = openai.DefaultHttpxClient(event_hooks={"response": [self.hook]})
        return openai.OpenAI(api_key=key, base_url=base_url, http_client=http, max_retries=0, **kw)

    def async_client(self, base_url: str, key: str = "sk-test", **kw) -> openai.AsyncOpenAI:
        http = openai.DefaultAsyncHttpxClient(event_hooks={"response": [self.ahook]})
        return openai.AsyncOpenAI(api_key=key, base_url=base_url, http_client=http, max_retries=0, **kw)


def _mock_request(request) -> MockRequest:
    try:
        request.content  # noqa: B018
    except Exception:  # a streamed multipart body: read it (multipart streams can be re-read)
        request.read()
    ctype = request.headers.get("content-type", "application/json")
    if not ctype.startswith("multipart/"):  # multipart needs its boundary parameter
        ctype = ctype.split(";")[0]
    args = dict(request.url.params)
    return MockRequest(SERVER, request.method.lower(), request.url.path, args=args,
                       headers=dict(request.headers), data=request.content or None, content_type=ctype)


def check_error_envelope(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"]
    assert isinstance(err.get("type"), str)
    assert "param" in err and (err["param"] is None or isinstance(err["param"], str))
    assert "code" in err and (err["code"] is None or isinstance(err["code"], str))


def validate_exchange(request, response, *, check_request: bool = True) -> str:
    """Raise AssertionError if the exchange breaks the spec. Returns a short label."""
    api = openapi()
    mock_req = _mock_request(request)
    label = f"{request.method} {request.url.path} -> {response.status_code}"
    if check_request and mock_req.content_type.startswith("multipart/"):
        _check_multipart_upload(request)
    elif check_request and request.method in ("POST", "GET", "DELETE"):
        errors = list(api.iter_request_errors(mock_req))
        errors = [e for e in errors if "Security" not in type(e).__name__]
        assert not errors, f"request {label}: {[_explain(e) for e in errors]}"
    if response.status_code >= 400:
        check_error_envelope(json.loads(response.content))
        return label
    if request.url.path.endswith(RAW_BODY_PATHS):
        assert response.content is not None
        return label
    content = response.content
    if request.url.path.endswith("/embeddings"):
        content = _decode_base64_embeddings(content)
    mock_resp = MockResponse(content, status_code=response.status_code,
                             headers=dict(response.headers),
                             content_type=response.headers.get("content-type", "").split(";")[0])
    errors = list(api.iter_response_errors(mock_req, mock_resp))
    assert not errors, f"response {label}: {[_explain(e) for e in errors]}"
    return label


def _check_multipart_upload(request) -> None:
    """openapi-core cannot check a binary part against `type: string, format: binary` (it sees
    bytes), so check CreateFileRequest by hand: required `file` and `purpose`, purpose in the enum."""
    from email.parser import BytesParser

    schema = openapi().spec / "components" / "schemas" / "CreateFileRequest"
    contents = schema.read_value() if hasattr(schema, "read_value") else schema.contents()
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser().parsebytes(head + request.content)
    fields = {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}
    assert set(contents["required"]) <= set(fields), fields.keys()
    purpose = fields["purpose"].get_payload(decode=True).decode()
    assert purpose in contents["properties"]["purpose"]["enum"], purpose
    assert set(fields) <= set(contents["properties"]), fields.keys()


def _decode_base64_embeddings(content: bytes) -> bytes:
    """With encoding_format=base64 (the SDK's default) the API returns each vector as a base64
    string of float32s, which the spec's schema (array of numbers) does not describe. Decode
    before validating, so the rest of the response is still checked."""
    import base64
    import struct

    body = json.loads(content)
    for item in body.get("data", []):
        if isinstance(item.get("embedding"), str):
            raw = base64.b64decode(item["embedding"])
            item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return json.dumps(body).encode()


def _explain(exc: Exception) -> str:
    parts = [repr(exc)]
    cause = exc.__cause__
    while cause is not None:
        parts.append(repr(cause)[:800])
        for sub in getattr(cause, "schema_errors", []) or []:
            parts.append(f"  {getattr(sub, 'message', sub)} at {list(getattr(sub, 'path', []))}")
        cause = cause.__cause__
    return "\n".join(parts)
