"""`catalog`: the price catalog (bundled LiteLLM prices, or a newer one imported per workspace)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from cascade_studio.cli.common import CliError, open_ws, print_json, workspace_exists, workspace_path


def register(sub: argparse._SubParsersAction) -> None:
    cat = sub.add_parser("catalog", help="the price catalog")
    cat.set_defaults(handler=run)
    actions = cat.add_subparsers(dest="catalog_cmd", metavar="ACTION", required=True)
    c_show = actions.add_parser("show", help="source, date and one model's prices")
    c_show.add_argument("model", nargs="?")
    c_show.add_argument("--json", action="store_true")
    c_imp = actions.add_parser("import", help="import a newer LiteLLM model_prices_and_context_window.json")
    c_imp.add_argument("file")


def run(args: argparse.Namespace) -> int:
    from cascade_studio.services import catalog as catalog_svc

    if args.catalog_cmd == "import":
        with open_ws(args) as ws:
            cat = catalog_svc.import_litellm_file(Path(args.file), ws.path)
        print(f"Imported {len(cat)} models into {ws.path}")
        return 0
    cat = catalog_svc.load_for_workspace(workspace_path(args) if workspace_exists(args) else None)
    out: dict[str, Any] = {"source": cat.source, "date": cat.date, "models": len(cat)}
    if args.model:
        price = cat.lookup(args.model)
        if price is None:
            raise CliError(f"{args.model!r} is not in the catalog")
        out["model"] = {
            "id": price.model, "provider": price.provider, "input_per_m": str(price.input_per_m),
            "output_per_m": str(price.output_per_m),
            "cached_input_per_m": None if price.cached_input_per_m is None else str(price.cached_input_per_m),
            "deprecation_date": price.deprecation_date.isoformat() if price.deprecation_date else None,
            "deprecation": price.deprecation_notice(dt.date.today()),
        }
    if args.json:
        print_json(out)
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0
