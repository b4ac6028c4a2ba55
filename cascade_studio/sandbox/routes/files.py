"""/v1/files: multipart uploads held in memory, their metadata and content."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cascade_studio.sandbox.routes.common import ApiError, Handler, id_page, paginate
from cascade_studio.sandbox.state import StoredFile, new_id

if TYPE_CHECKING:
    from cascade_studio.sandbox.app import Sandbox

PURPOSES = ("fine-tune", "batch", "assistants", "vision", "user_data", "evals")


class FileRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("/v1/files", "POST", self.upload_file),
            ("/v1/files", "GET", self.list_files),
            ("/v1/files/{file_id}", "GET", self.get_file),
            ("/v1/files/{file_id}", "DELETE", self.delete_file),
            ("/v1/files/{file_id}/content", "GET", self.file_content),
        ]

    def add_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        f = StoredFile(new_id("file"), filename, purpose, content, int(time.time()))
        self.sandbox.files[f.id] = f
        return f

    def file(self, file_id: str) -> StoredFile:
        f = self.sandbox.files.get(file_id)
        if f is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id", code=None)
        return f

    async def upload_file(self, request: Request) -> Any:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "Files must be uploaded as multipart/form-data with fields 'file' and 'purpose'.")
        try:
            form = await request.form()
        except HTTPException as exc:  # a malformed multipart body
            raise ApiError(400, f"Could not parse the multipart form: {exc.detail}", param="file") from None
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose not in PURPOSES:
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}. Use 'fine-tune' or 'batch'.",
                           param="purpose", code="invalid_value")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        content = await upload.read()
        filename = upload.filename or "upload"
        if purpose in ("fine-tune", "batch") and not filename.endswith(".jsonl"):
            raise ApiError(400, f"Invalid file format for {purpose}: expected a .jsonl file, got {filename!r}.",
                           param="file", code="invalid_file_format")
        return self.add_file(filename, purpose, content).to_json()

    async def get_file(self, request: Request) -> Any:
        return self.file(request.path_params["file_id"]).to_json()

    async def file_content(self, request: Request) -> Any:
        f = self.file(request.path_params["file_id"])
        return Response(f.content, media_type="application/octet-stream")

    async def delete_file(self, request: Request) -> Any:
        f = self.file(request.path_params["file_id"])
        del self.sandbox.files[f.id]
        return {"id": f.id, "object": "file", "deleted": True}

    async def list_files(self, request: Request) -> Any:
        q = request.query_params
        items = sorted(self.sandbox.files.values(), key=lambda f: (f.created_at, f.id),
                       reverse=q.get("order", "desc") != "asc")
        if q.get("purpose"):
            items = [f for f in items if f.purpose == q["purpose"]]
        page, has_more = paginate(items, q.get("after"), q.get("limit"), 10000, key=lambda f: f.id)
        return id_page([f.to_json() for f in page], has_more)
