"""Load the price catalog (workspace override, else bundled) and import a newer LiteLLM file."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from cascade_studio.core.errors import UserError
from cascade_studio.core.prices import PriceCatalog, build_catalog
from cascade_studio.services.paths import resources_dir

CATALOG_FILE = "price_catalog.json"


class CatalogError(UserError):
    pass


def bundled_catalog_path() -> Path:
    return resources_dir() / "prices" / "catalog.json"


_bundled_cache: PriceCatalog | None = None


def load_bundled() -> PriceCatalog:
    global _bundled_cache
    if _bundled_cache is None:
        _bundled_cache = _load(bundled_catalog_path())
    return _bundled_cache


def load_for_workspace(workspace_dir: Path | None) -> PriceCatalog:
    """The workspace's imported catalog if it has one, else the bundled one."""
    if workspace_dir is not None:
        override = Path(workspace_dir) / CATALOG_FILE
        if override.exists():
            return _load(override)
    return load_bundled()


def _load(path: Path) -> PriceCatalog:
    try:
        return PriceCatalog.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"Cannot read the price catalog {path}: {exc}") from exc


def import_litellm_file(source_file: Path, workspace_dir: Path) -> PriceCatalog:
    """Convert a LiteLLM `model_prices_and_context_window.json` and store it in the workspace."""
    source_file = Path(source_file)
    try:
        raw = json.loads(source_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError(f"{source_file} does not exist. Choose LiteLLM's model_prices_and_context_window.json.") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source_file} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}. "
                           "Download the catalog file again.") from exc
    except OSError as exc:
        raise CatalogError(f"Cannot read {source_file}: {exc.strerror}") from exc
    try:
        catalog = build_catalog(
            raw,
            source=f"LiteLLM catalog imported from {source_file.name}",
            date=dt.date.today().isoformat(),
        )
    except ValueError as exc:
        raise CatalogError(f"{source_file}: {exc}") from exc
    target = Path(workspace_dir) / CATALOG_FILE
    tmp = target.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(catalog.to_json(), indent=0), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise CatalogError(f"Cannot write {target}: {exc.strerror}. Free disk space or check permissions; "
                           "the previous catalog is unchanged.") from exc
    return catalog
