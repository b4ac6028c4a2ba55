"""Load the price catalog (workspace override, else bundled) and import a newer LiteLLM file."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path

from cascade_studio.core.errors import UserError
from cascade_studio.core.jsonl import JsonProblem
from cascade_studio.core.jsonl import loads as safe_loads
from cascade_studio.core.prices import PriceCatalog, build_catalog
from cascade_studio.services.input_files import read_text
from cascade_studio.services.paths import resources_dir

CATALOG_FILE = "price_catalog.json"


class CatalogError(UserError):
    pass


def bundled_catalog_path() -> Path:
    return resources_dir() / "prices" / "catalog.json"


_bundled_doc: dict | None = None


def _bundled_doc_json() -> dict:
    global _bundled_doc
    if _bundled_doc is None:
        _bundled_doc = _read_doc(bundled_catalog_path())  # its shape checked once, here
    return _bundled_doc


def load_bundled() -> PriceCatalog:
    doc = _bundled_doc_json()
    return PriceCatalog(source=str(doc.get("source", "")), date=str(doc.get("date", "")), raw=dict(doc["models"]))


def load_for_workspace(workspace_dir: Path | None) -> PriceCatalog:
    """The bundled catalog with the workspace's imported one over it, model by model: an imported
    model replaces the bundled entry of the same id; every other bundled model stays."""
    if workspace_dir is not None:
        override = Path(workspace_dir) / CATALOG_FILE
        if override.exists():
            doc = _read_doc(override)
            imported = PriceCatalog.from_json(doc)
            bundled = _bundled_doc_json()
            return PriceCatalog(source=f"{imported.source}, over {bundled.get('source', 'the bundled catalog')}",
                                date=imported.date, raw={**bundled["models"], **doc["models"]})
    return load_bundled()


def _read_doc(path: Path) -> dict:
    def error(problem: str, line: int | None) -> CatalogError:
        return CatalogError(f"Cannot read the price catalog {path}{f':{line}' if line else ''}: {problem}")

    try:
        doc = safe_loads(read_text(path, error))
        PriceCatalog.from_json(doc)
    except (JsonProblem, ValueError) as exc:
        if isinstance(exc, CatalogError):
            raise
        raise error(str(exc), None) from None
    return doc


def import_litellm_file(source_file: Path, workspace_dir: Path) -> PriceCatalog:
    """Convert a LiteLLM `model_prices_and_context_window.json` and store it in the workspace."""
    source_file = Path(source_file)

    def error(problem: str, line: int | None) -> CatalogError:
        hint = " Choose LiteLLM's model_prices_and_context_window.json." if "does not exist" in problem else ""
        return CatalogError(f"{source_file}{f':{line}' if line else ''}: {problem}.{hint}")

    text = read_text(source_file, error)
    try:
        raw = safe_loads(text)
    except JsonProblem as exc:
        raise CatalogError(f"{source_file}: {exc.message}. Download the catalog file again.") from None
    try:
        catalog = build_catalog(
            raw,
            source=f"LiteLLM catalog imported from {source_file.name}",
            date=dt.date.today().isoformat(),
        )
    except ValueError as exc:
        raise CatalogError(f"{source_file}: {exc}") from exc
    target = Path(workspace_dir) / CATALOG_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with open(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(catalog.to_json(), indent=0))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise CatalogError(f"Cannot write {target}: {exc.strerror}. Free disk space or check permissions; "
                           "the previous catalog is unchanged.") from exc
    return catalog
