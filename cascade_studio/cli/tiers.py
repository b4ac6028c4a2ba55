"""`tiers`: list, edit, test, export and import tiers."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from cascade_studio.cli.common import CliError, decimal_arg, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    tiers = sub.add_parser("tiers", help="list, edit, test, export and import tiers")
    tiers.set_defaults(handler=run)
    actions = tiers.add_subparsers(dest="tiers_cmd", metavar="ACTION", required=True)
    t_list = actions.add_parser("list", help="list tiers")
    t_list.add_argument("--json", action="store_true")
    t_set = actions.add_parser("set", help="create or update tier N (omitted options keep their values)")
    t_set.add_argument("n", type=int, metavar="N")
    t_set.add_argument("--name")
    t_set.add_argument("--model")
    t_set.add_argument("--base-url")
    t_set.add_argument("--provider", choices=["openai", "compatible", "sandbox"])
    t_set.add_argument("--input-price", type=decimal_arg, metavar="USD_PER_1M")
    t_set.add_argument("--output-price", type=decimal_arg, metavar="USD_PER_1M")
    t_set.add_argument("--cached-price", type=decimal_arg, metavar="USD_PER_1M")
    t_set.add_argument("--threshold", type=float)
    t_set.add_argument("--concurrency", type=int)
    t_set.add_argument("--timeout", type=float, metavar="SECONDS")
    t_set.add_argument("--rpm", type=int)
    t_set.add_argument("--tpm", type=int)
    t_set.add_argument("--temperature", type=float)
    t_set.add_argument("--system-prompt")
    t_set.add_argument("--confidence-method", choices=["mean_token_prob", "min_token_prob", "tool_name_prob"])
    t_set.add_argument("--key-env", metavar="VAR", help="environment variable holding this tier's key")
    t_set.add_argument("--allow-insecure", action=argparse.BooleanOptionalAction, default=None,
                       help="allow sending the key over plain http to another machine (insecure; "
                            "http to this machine is always allowed)")
    t_set.add_argument("--logprobs", choices=["auto", "on", "off"],
                       help="ask for logprobs: auto (ask; if the server fails on them, retry without and remember), "
                            "on, off")
    t_set.add_argument("--top-logprobs", type=int, metavar="K", help="alternatives per token, 0-20 (default 5)")
    t_set.add_argument("--without-logprobs", choices=["escalate", "answer"],
                       help="a student without confidence (no logprobs): escalate every request, or keep every answer")
    t_set.add_argument("--keyless", dest="no_key", action="store_true", default=None,
                       help="a server on this machine that needs no API key (a placeholder is sent)")
    t_set.add_argument("--key-required", dest="no_key", action="store_false",
                       help="undo --keyless: the tier needs a key again")
    t_set.add_argument("--json", action="store_true")
    t_rm = actions.add_parser("remove", help="remove the highest tier N")
    t_rm.add_argument("n", type=int, metavar="N")
    t_exp = actions.add_parser("export", help="write tiers to a JSON file (never keys)")
    t_exp.add_argument("file")
    t_imp = actions.add_parser("import", help="replace tiers from a JSON file")
    t_imp.add_argument("file")
    t_imp.add_argument("--trust-key-env", action="store_true",
                       help="keep the file's key variables (api_key_env) and plain-http permissions; "
                            "without it they are dropped")
    t_imp.add_argument("--allow-new-origin", action="store_true",
                       help="send the key variables of tiers the file moves to another host there too; without it "
                            "they are withheld until `tiers confirm-origin N`")
    t_conf = actions.add_parser("confirm-origin",
                                help="let tier N's key variables go to the host an import moved it to")
    t_conf.add_argument("n", type=int, metavar="N")
    t_hist = actions.add_parser("history", help="the changes of the tier set, newest first (each can be undone)")
    t_hist.add_argument("--json", action="store_true")
    actions.add_parser("undo", help="put the tiers back as they were before the newest change not undone yet")
    t_rev = actions.add_parser("revert", help="put the tiers back as they were before change ID (`tiers history`)")
    t_rev.add_argument("id", type=int, metavar="ID")
    t_test = actions.add_parser("test", help="test the connection of tier N")
    t_test.add_argument("n", type=int, metavar="N")
    t_test.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from cascade_studio.store.tiers import TierRepository

    action = {"list": _list, "set": _set, "remove": _remove, "export": _export, "import": _import,
              "test": _test, "confirm-origin": _confirm_origin, "history": _history, "undo": _undo,
              "revert": _undo}[args.tiers_cmd]
    with open_ws(args) as ws:
        return action(args, ws, TierRepository(ws))


def _list(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.tiers import teacher_of
    from cascade_studio.services import catalog as catalog_svc

    tiers = repo.list()
    teacher = teacher_of(tiers)
    if args.json:
        catalog = catalog_svc.load_for_workspace(ws.path)  # for the deprecation notices (~0.1 s to read)
        rows = []
        for t in tiers:
            row = t.to_json()
            row["teacher"] = t.tier == teacher.tier
            if t.demonstrations is not None:  # its summary (`tiers export` carries the whole program)
                p = t.demonstrations
                row["demonstrations"] = {"mode": p.mode, "k": p.k, "count": len(p.demonstrations),
                                         "instruction": bool(p.instruction), "fingerprint": p.fingerprint()}
            row["key_origin_pending"] = t.key_origin_pending  # moved by an import; `tiers confirm-origin N`
            price = catalog.lookup(t.model)
            row["deprecation"] = price.deprecation_notice(dt.date.today()) if price else None
            rows.append(row)
        print_json(rows)
    elif not tiers:
        print("No tiers yet. Add one: cascade-studio tiers set 1 --model gpt-4o-mini --base-url https://api.openai.com/v1")
    else:
        for t in tiers:
            role = "teacher" if t.tier == teacher.tier else "student"
            sim = " [simulated]" if t.simulated else ""
            sim += f" [prompt-distilled: {t.demonstrations.summary()}]" if t.demonstrations else ""
            sim += " [new host: keys withheld, see `tiers confirm-origin`]" if t.key_origin_pending else ""
            print(f"{t.tier}  {t.display_name:<22} {t.model:<28} {t.base_url}  in ${t.input_price}/1M  "
                  f"out ${t.output_price}/1M  ({role}){sim}")
    return 0


def _set(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.tiers import ConfidenceMethod, LogprobsMode, Provider, WithoutLogprobs
    from cascade_studio.services import catalog as catalog_svc
    from cascade_studio.services import tier_service as svc

    catalog = catalog_svc.load_for_workspace(ws.path)
    tier = svc.set_tier(
        ws, catalog, args.n, name=args.name, model=args.model, base_url=args.base_url,
        provider=Provider(args.provider) if args.provider else None,
        input_price=args.input_price, output_price=args.output_price, cached_price=args.cached_price,
        threshold=args.threshold, max_concurrency=args.concurrency, timeout_s=args.timeout,
        rpm_limit=args.rpm, tpm_limit=args.tpm, temperature=args.temperature,
        system_prompt=args.system_prompt,
        confidence_method=ConfidenceMethod(args.confidence_method) if args.confidence_method else None,
        api_key_env=args.key_env, allow_insecure=args.allow_insecure,
        logprobs=LogprobsMode(args.logprobs) if args.logprobs else None, top_logprobs=args.top_logprobs,
        without_logprobs=WithoutLogprobs(args.without_logprobs) if args.without_logprobs else None,
        no_key=args.no_key,
    )
    if args.json:
        print_json(tier.to_json())
    else:
        print(f"Saved tier {tier.tier}: {tier.model} at {tier.base_url} "
              f"(in ${tier.input_price}/1M, out ${tier.output_price}/1M)")
    price = catalog.lookup(tier.model)
    notice = price.deprecation_notice(dt.date.today()) if price else None
    if notice:
        print(f"warning: {notice}", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.tiers import teacher_of

    tiers = repo.list()
    teacher = teacher_of(tiers)
    if teacher is None or args.n != teacher.tier:
        raise CliError(f"only the highest tier ({teacher.tier if teacher else 0}) can be removed")
    from cascade_studio.services.tier_service import save_tiers

    save_tiers(ws, [t for t in tiers if t.tier != args.n])
    print(f"Removed tier {args.n} (`cascade-studio tiers undo` puts it back)")
    return 0


def _history(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.services.tier_service import tier_history

    rows = tier_history(ws)
    if args.json:
        print_json(rows)
    elif not rows:
        print("No tier changes recorded yet.")
    for r in [] if args.json else rows:
        note = f" (undoes {r['undoes']})" if r["undoes"] else f" (undone by {r['undone_by']})" if r["undone_by"] else ""
        print(f"{r['id']:>4}  {r['at']}  {r['change']}{note}")
    return 0


def _undo(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.services.tier_service import undo_tier_change

    entry, done = undo_tier_change(ws, getattr(args, "id", None))
    print(f"Tiers put back: {done} (change {entry}; `cascade-studio tiers revert {entry}` reverts this)")
    return 0


def _export(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.services import tier_service as svc

    count = svc.export_tiers(ws, Path(args.file))
    print(f"Exported {count} tiers to {args.file} (no API keys)")
    return 0


def _import(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.services import tier_service as svc
    from cascade_studio.services.secrets import SecretStore

    report = svc.import_tiers(ws, Path(args.file), trust_key_settings=args.trust_key_env,
                              allow_new_origin=args.allow_new_origin, secrets=SecretStore())
    first, *rest = report.summary(Path(args.file))
    print(first)
    for line in rest:
        print(f"note: {line}", file=sys.stderr)
    return 0


def _confirm_origin(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.tiers import key_destination
    from cascade_studio.services import tier_service as svc

    try:
        tier = svc.confirm_origin(ws, args.n)
    except svc.TierServiceError as exc:
        raise CliError(str(exc)) from None
    print(f"Tier {tier.tier}'s key variables may now be sent to {key_destination(tier.base_url)}")
    return 0


def _test(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.services.connection import test_connection
    from cascade_studio.services.secrets import SecretStore

    tier = repo.get(args.n)
    if tier is None:
        raise CliError(f"no tier {args.n}; see `cascade-studio tiers list`")
    result = asyncio.run(test_connection(tier, SecretStore()))
    if args.json:
        print_json(result.to_json())
    else:
        print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1

