"""Build resources/prices/catalog.json from LiteLLM's catalog (run by developers, not at run time).

    python tools/build_catalog.py ../shared/data/prices/model_prices_and_context_window.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cascade_studio.core.prices import build_catalog  # noqa: E402

src = Path(sys.argv[1])
catalog = build_catalog(
    json.loads(src.read_text()),
    source="LiteLLM model_prices_and_context_window.json (litellm 1.110.2, MIT)",
    date="2026-11-27",
)
out = Path(__file__).resolve().parents[1] / "resources" / "prices" / "catalog.json"
out.write_text(json.dumps(catalog.to_json(), separators=(",", ":")))
print(f"{len(catalog.models)} models -> {out} ({out.stat().st_size // 1024} KiB)")
