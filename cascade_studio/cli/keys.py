"""`keys`: API keys in the OS keyring, and where each tier's key comes from."""

from __future__ import annotations

import argparse
import sys

from cascade_studio.cli.common import CliError, open_ws, print_json, workspace_exists


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys in the OS keyring")
    keys.set_defaults(handler=run)
    actions = keys.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True)
    k_set = actions.add_parser("set", help="store the key for ENDPOINT (base URL), read from stdin")
    k_set.add_argument("endpoint")
    k_del = actions.add_parser("delete", help="delete the stored key for ENDPOINT")
    k_del.add_argument("endpoint")
    k_status = actions.add_parser("status", help="keyring backend and where each tier's key comes from")
    k_status.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from cascade_studio.services.secrets import SecretStore

    store = SecretStore()
    if args.keys_cmd in ("set", "delete"):
        return _set_or_delete(args, store)
    return _status(args, store)


def _set_or_delete(args: argparse.Namespace, store) -> int:
    from cascade_studio.core.tiers import validate_base_url
    from cascade_studio.services.secrets import endpoint_id

    problem = validate_base_url(args.endpoint)
    if problem:
        raise CliError(f"ENDPOINT {problem}", code=2)
    if args.keys_cmd == "delete":
        store.delete_key(args.endpoint)
        print(f"Deleted the key for {endpoint_id(args.endpoint)}")
        return 0
    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass(f"API key for {endpoint_id(args.endpoint)}: ")
    else:
        key = sys.stdin.readline()
    where = store.set_key(args.endpoint, key)
    print(f"Stored the key for {endpoint_id(args.endpoint)} in the {where}")
    return 0


def _status(args: argparse.Namespace, store) -> int:
    info = store.info()
    tiers = []
    if workspace_exists(args):
        from cascade_studio.store.tiers import TierRepository

        with open_ws(args) as ws:
            tiers = TierRepository(ws).list()
    rows = store.status(tiers)
    if args.json:
        print_json({"backend": info.name, "usable": info.usable, "secure": info.secure, "message": info.message,
                    "tiers": rows})
    else:
        print(info.message)
        for r in rows:
            if r["has_key"]:
                state = f"key from {r['source']}, sent to {r['sends_to']} over {r['transport']}"
            elif r["source"] == "refused":
                state = f"KEY WITHHELD: {r['hint']}"
            else:
                state = f"NO KEY ({r['hint']})"
            print(f"  tier {r['tier']}  {r['endpoint']}: {state}")
    return 0
