"""Validate recorded HTTP exchanges against Together AI's published OpenAPI description (openapi-core),
as tests/spec_check.py does for OpenAI's."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.spec_check import _drop_unmapped_discriminators, _explain

# ../shared/together-openapi/openapi.yaml beside the checkout when it is there, else the copy in
# tests/data (the same file, commit 090263aa of togethercomputer/openapi, MIT: together-openapi.LICENSE)
_SHARED = [p / "shared" / "together-openapi" / "openapi.yaml" for p in Path(__file__).resolve().parents]
SPEC_PATH = next((p for p in _SHARED if p.exists()), Path(__file__).resolve().parent / "data" / "together-openapi.yaml")
SERVER = "https://api.together.ai"  # the spec's server is https://api.together.ai/v1
# Spec quirks, relaxed here and nowhere else:
# - FinetuneResponse.id is `format: uuid`, but Together's ids (and the spec's own examples) are
#   "ft-<uuid>"; the format is not checked (the type still is).
# - The 404 of /fine-tunes/models/limits is `{"message": ...}`, not ErrorData.


def available() -> bool:
    return SPEC_PATH.exists()


def _relax(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") == "uuid":
            del node["format"]
        for value in node.values():
            _relax(value)
    elif isinstance(node, list):
        for value in node:
            _relax(value)


@lru_cache(maxsize=1)
def openapi() -> OpenAPI:
    with open(SPEC_PATH, "rb") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    _drop_unmapped_discriminators(spec)
    _relax(spec)
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _schema(name: str) -> dict[str, Any]:
    node = openapi().spec / "components" / "schemas" / name
    return node.read_value() if hasattr(node, "read_value") else node.contents()


def _mock_request(request) -> MockRequest:
    try:
        request.content  # noqa: B018
    except Exception:
        request.read()
    ctype = request.headers.get("content-type", "application/json")
    if not ctype.startswith("multipart/"):
        ctype = ctype.split(";")[0]
    return MockRequest(SERVER, request.method.lower(), request.url.path, args=dict(request.url.params),
                       headers=dict(request.headers), data=request.content or None, content_type=ctype)


def _check_upload(request) -> None:
    """openapi-core cannot read a binary part, so the multipart body of POST /files/upload is checked
    against its schema by hand: the required fields, the enums, nothing else."""
    from email.parser import BytesParser

    path = openapi().spec / "paths" / "/files/upload" / "post" / "requestBody" / "content" / "multipart/form-data" \
        / "schema"
    schema = path.read_value() if hasattr(path, "read_value") else path.contents()
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser().parsebytes(head + request.content)
    fields = {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}
    assert set(schema["required"]) <= set(fields), fields.keys()
    assert set(fields) <= set(schema["properties"]), fields.keys()
    assert fields["purpose"].get_payload(decode=True).decode() in _schema("FilePurpose")["enum"]
    if "file_type" in fields:
        assert fields["file_type"].get_payload(decode=True).decode() in _schema("FileType")["enum"]
    assert fields["file_name"].get_payload(decode=True).decode()


def check_error_envelope(body: Any) -> None:
    """Together's ErrorData: {"error": {"message", "type", "param"?, "code"?}}."""
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("message"), str) and isinstance(body["error"].get("type"), str)


def validate_exchange(request, response) -> str:
    """Raise AssertionError if the request or its answer breaks Together's spec. Returns a label."""
    api = openapi()
    mock_req = _mock_request(request)
    label = f"{request.method} {request.url.path} -> {response.status_code}"
    if mock_req.content_type.startswith("multipart/"):
        assert request.url.path.endswith("/files/upload"), label
        assert request.headers.get("authorization", "").startswith("Bearer "), label
        _check_upload(request)
    else:
        errors = list(api.iter_request_errors(mock_req))  # a request without its bearer key fails here too
        assert not errors, f"request {label}: {[_explain(e) for e in errors]}"
    if response.status_code >= 400:
        if request.url.path.endswith("/models/limits") and response.status_code == 404:
            assert isinstance(json.loads(response.content).get("message"), str)
        else:
            check_error_envelope(json.loads(response.content))
        return label
    mock_resp = MockResponse(response.content, status_code=response.status_code, headers=dict(response.headers),
                             content_type=response.headers.get("content-type", "").split(";")[0])
    errors = list(api.iter_response_errors(mock_req, mock_resp))
    assert not errors, f"response {label}: {[_explain(e) for e in errors]}"
    return label


class Recorder:
    """Every (request, response) a backend's HTTP client exchanged: install with `install(monkeypatch)`."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[Any, Any]] = []

    async def hook(self, response) -> None:
        await response.aread()
        self.exchanges.append((response.request, response))

    def install(self, monkeypatch) -> Recorder:
        from cascade_studio.services import clients

        original = clients.http_client

        def recording(base_url: str, **kwargs):
            client = original(base_url, **kwargs)
            client.event_hooks["response"].append(self.hook)
            return client

        monkeypatch.setattr(clients, "http_client", recording)
        return self

    def validate_all(self) -> list[str]:
        return [validate_exchange(req, resp) for req, resp in self.exchanges]
