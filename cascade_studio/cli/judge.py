"""`judge`: add, list, show and remove judges, read or edit their prompt template, and calibrate a
judge against people's labels (issue 30)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from cascade_studio.cli.common import CliError, decimal_arg, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    judge = sub.add_parser("judge", help="judges: models that grade free-text answers and episodes")
    judge.set_defaults(handler=run)
    actions = judge.add_subparsers(dest="judge_cmd", metavar="ACTION", required=True)
    j_list = actions.add_parser("list", help="list judges")
    j_list.add_argument("--json", action="store_true")
    _settings(actions.add_parser("add", help="create judge NAME (refuses a name in use)"))
    _settings(actions.add_parser("set", help="create or update judge NAME (omitted options keep their values)"))
    j_show = actions.add_parser("show", help="one judge: settings, template version, the template")
    j_show.add_argument("name")
    j_show.add_argument("--json", action="store_true")
    j_tpl = actions.add_parser("template", help="print a judge's prompt template, or set it from a file")
    j_tpl.add_argument("name")
    j_tpl.add_argument("--file", help="the new template (UTF-8 text); a new template version")
    j_tpl.add_argument("--reset", action="store_true", help="go back to the kind's default template")
    j_rm = actions.add_parser("remove", help="remove a judge (its stored verdicts are kept)")
    j_rm.add_argument("name")
    j_sample = actions.add_parser("sample", help="propose trajectories for a person to rate (unlabelled ones, "
                                  "drawn at random), to calibrate judges on")
    j_sample.add_argument("--n", type=int, default=30, help="how many (default 30, the least calibration trusts)")
    j_sample.add_argument("--tier", type=int)
    j_sample.add_argument("--category")
    j_sample.add_argument("--seed", type=int, default=0)
    j_sample.add_argument("--json", action="store_true")
    j_cal = actions.add_parser("calibrate", help="the judge's agreement with people's labels (trajectories rate "
                               "and curate): accuracy, Cohen's kappa, confusion matrix, disagreements")
    j_cal.add_argument("name")
    j_cal.add_argument("--min-kappa", type=float, default=0.6, help="warn below this kappa (default 0.6)")
    j_cal.add_argument("--dry-run", action="store_true", help="estimate the cost; send nothing")
    j_cal.add_argument("--batch", action="store_true", help="send through the Batch API (half price; waits for it)")
    j_cal.add_argument("--json", action="store_true")


def _settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    p.add_argument("--kind", choices=["reference", "pairwise", "rubric"])
    p.add_argument("--model")
    p.add_argument("--base-url")
    p.add_argument("--provider", choices=["openai", "compatible", "sandbox"])
    p.add_argument("--tier", type=int, metavar="N", help="use tier N's endpoint, provider and key rules")
    p.add_argument("--input-price", type=decimal_arg, metavar="USD_PER_1M")
    p.add_argument("--output-price", type=decimal_arg, metavar="USD_PER_1M")
    p.add_argument("--key-env", metavar="VAR", help="environment variable holding the judge's key "
                   "(default CASCADE_STUDIO_JUDGE_<NAME>_API_KEY)")
    p.add_argument("--allow-insecure", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--keyless", dest="no_key", action="store_true", default=None,
                   help="a server on this machine that needs no API key")
    p.add_argument("--scale", help="rubric: values worst to best, e.g. fail,pass or 1-5")
    p.add_argument("--pass-at", help="rubric: the lowest value that counts as a pass")
    p.add_argument("--structured", choices=["auto", "on", "off"],
                   help="JSON-schema structured outputs: auto (ask; fall back to a parsed answer), on, off")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from cascade_studio.store.judges import JudgeRepository

    action = {"list": _list, "set": _set, "add": _set, "show": _show, "template": _template, "remove": _remove,
              "calibrate": _calibrate, "sample": _sample}[args.judge_cmd]
    with open_ws(args) as ws:
        return action(args, ws, JudgeRepository(ws))


def _get(repo, name: str):
    judge = repo.get(name)
    if judge is None:
        names = ", ".join(j.name for j in repo.list()) or "none yet"
        raise CliError(f"no judge {name!r} (judges: {names}); add one with `cascade-studio judge add NAME --model M`")
    return judge


def _list(args: argparse.Namespace, ws, repo) -> int:
    judges = repo.list()
    if args.json:
        print_json([j.to_json() for j in judges])
        return 0
    if not judges:
        print("No judges; add one with `cascade-studio judge add NAME --model M --base-url URL`.")
    for j in judges:
        print(f"{j.name:<16} {j.kind.value:<9} {j.model:<24} {j.base_url}  template {j.template_version}"
              + ("" if j.kind.value != "rubric" else f"  scale {','.join(j.scale_values)}"))
    return 0


def _set(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.judges import Judge, JudgeKind, Structured, validate_judge
    from cascade_studio.core.tiers import Provider
    from cascade_studio.store.tiers import TierRepository

    existing = repo.get(args.name)
    if args.judge_cmd == "add" and existing is not None:
        raise CliError(f"judge {args.name!r} exists; change it with `judge set {args.name} ...`", code=2)
    judge = existing or Judge(args.name)
    changes = {}
    if args.tier is not None:
        tier = TierRepository(ws).get(args.tier)
        if tier is None:
            raise CliError(f"no tier {args.tier}; see `cascade-studio tiers list`")
        changes.update(provider=tier.provider, base_url=tier.base_url, allow_insecure=tier.allow_insecure,
                       no_key=tier.no_key, api_key_env=tier.api_key_env)
        if not args.model and existing is None:
            changes["model"] = tier.model
    for option, name, convert in (("kind", "kind", JudgeKind), ("model", "model", str),
                                  ("base_url", "base_url", str), ("provider", "provider", Provider),
                                  ("input_price", "input_price", None), ("output_price", "output_price", None),
                                  ("key_env", "api_key_env", str), ("allow_insecure", "allow_insecure", bool),
                                  ("no_key", "no_key", bool), ("scale", "scale", str), ("pass_at", "pass_at", str),
                                  ("structured", "structured", Structured), ("concurrency", "max_concurrency", int),
                                  ("timeout", "timeout_s", float)):
        value = getattr(args, option)
        if value is not None:
            changes[name] = convert(value) if convert else value
    if "provider" not in changes and existing is None and args.base_url and "base_url" in changes:
        from cascade_studio.core.tiers import is_openai_url

        changes["provider"] = Provider.OPENAI if is_openai_url(args.base_url) else Provider.COMPATIBLE
    judge = judge.replace(**changes)
    issues = validate_judge(judge)
    if issues:
        raise CliError("cannot save the judge: " + "; ".join(issues), code=2)
    repo.save(judge)
    if args.json:
        print_json(judge.to_json())
    else:
        print(f"Saved judge {judge.name}: {judge.kind.value} on {judge.model} at {judge.base_url} "
              f"(template {judge.template_version})")
    return 0


def _show(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.tiers import key_destination
    from cascade_studio.services.secrets import SecretStore, transport_label

    judge = _get(repo, args.name)
    tier = judge.connection_tier()
    source = SecretStore().resolve(tier)
    key = {"has_key": source.found, "source": source.source, "sends_to": key_destination(judge.base_url),
           "transport": transport_label(tier)}  # where the key comes from and goes; never the key
    if args.json:
        print_json({**judge.to_json(), "key": key, "template": judge.prompt_template})
        return 0
    for name, value in {**judge.to_json(), **{f"key_{k}": v for k, v in key.items()}}.items():
        print(f"{name:<18} {value}")
    print("\nTemplate:\n" + judge.prompt_template)
    return 0


def _template(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.core.judges import validate_judge

    judge = _get(repo, args.name)
    if not args.file and not args.reset:
        sys.stdout.write(judge.prompt_template + "\n")
        return 0
    text = "" if args.reset else Path(args.file).read_text(encoding="utf-8")
    changed = judge.replace(template=text)
    issues = validate_judge(changed)
    if issues:
        raise CliError("cannot use this template: " + "; ".join(issues), code=2)
    repo.save(changed)
    print(f"Judge {judge.name}: template {judge.template_version} -> {changed.template_version} "
          "(verdicts of the old version are kept, and not reused)")
    return 0


def _remove(args: argparse.Namespace, ws, repo) -> int:
    if not repo.remove(args.name):
        raise CliError(f"no judge {args.name!r}")
    print(f"Removed judge {args.name} (its stored verdicts are kept)")
    return 0


def _sample(args: argparse.Namespace, ws, repo) -> int:
    import random

    from cascade_studio.store.judges import RatingRepository

    pool = RatingRepository(ws).unlabelled(args.tier, args.category)
    ids = sorted(random.Random(args.seed).sample(pool, min(max(args.n, 0), len(pool))))
    if args.json:
        print_json({"ids": ids, "unlabelled": len(pool)})
        return 0
    if not ids:
        print("No unlabelled trajectories; collect some, or every one is rated or curated already.")
        return 0
    print(f"{len(ids)} of {len(pool)} unlabelled trajectories to rate (see each with `trajectories show ID`):")
    print(" ".join(map(str, ids)))
    print("Then: cascade-studio trajectories rate ID... good|bad|SCORE, and `judge calibrate NAME`.")
    return 0


def _calibrate(args: argparse.Namespace, ws, repo) -> int:
    from cascade_studio.services.judge_calibration import calibrate
    from cascade_studio.services.secrets import SecretStore

    judge = _get(repo, args.name)
    report = asyncio.run(calibrate(ws, judge, SecretStore(), dry_run=args.dry_run, min_kappa=args.min_kappa,
                                   batch=args.batch))
    if args.json:
        print_json(report)
        return 0
    if args.dry_run:
        print(f"Calibrating judge {judge.name} would send {report['requests']} requests "
              f"(~${report['cost_usd']}); {report['reused']} verdicts are stored already.")
        return 0
    print(f"Judge {judge.name} ({judge.model}, template {judge.template_version}) against {report['labels']} "
          f"labels: {report['judged']} judged, {report['unparseable']} unparseable, {report['failed']} failed"
          + (f", skipped {report['skipped']}" if report["skipped"] else ""))
    if report["judged"]:
        m = report["confusion_matrix"]["matrix"]
        print(f"  accuracy {report['accuracy']:.1%}  kappa "
              + ("undefined" if report["kappa"] is None else f"{report['kappa']:.3f}"))
        print(f"  people fail: judge fail {m[0][0]}, pass {m[0][1]}   people pass: judge fail {m[1][0]}, pass {m[1][1]}")
    for d in report["disagreements"][:20]:
        print(f"  disagreed: trajectory {d['trajectory_id']} ({d['task_id']}): label {d['label']}, verdict {d['verdict']}")
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"Cost ${report['cost_usd']} ({report['requests']} requests, {report['reused']} verdicts reused)")
    return 0
