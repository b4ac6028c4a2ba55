"""Command line: the headless face of the same services the GUI uses.

`cascade-studio [--workspace DIR]` with no command opens the GUI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascade_studio import __version__


class CliError(Exception):
    """An error for stderr with exit code 2 (usage) or 1 (operation failed)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except Exception:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (USD per 1M tokens, e.g. 2.50)") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cascade-studio", description="Cascade Studio: distil and cascade LLM agents.")
    p.add_argument("--version", action="version", version=f"cascade-studio {__version__}")
    p.add_argument("--workspace", "-w", metavar="DIR", help="workspace folder (default: the user data folder)")
    p.add_argument("--self-check", action="store_true", help="check the installation and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("gui", help="open the GUI (the default)")

    tiers = sub.add_parser("tiers", help="list, edit, test, export and import tiers").add_subparsers(
        dest="tiers_cmd", metavar="ACTION", required=True)
    t_list = tiers.add_parser("list", help="list tiers")
    t_list.add_argument("--json", action="store_true")
    t_set = tiers.add_parser("set", help="create or update tier N (omitted options keep their values)")
    t_set.add_argument("n", type=int, metavar="N")
    t_set.add_argument("--name")
    t_set.add_argument("--model")
    t_set.add_argument("--base-url")
    t_set.add_argument("--provider", choices=["openai", "compatible", "sandbox"])
    t_set.add_argument("--input-price", type=_decimal, metavar="USD_PER_1M")
    t_set.add_argument("--output-price", type=_decimal, metavar="USD_PER_1M")
    t_set.add_argument("--cached-price", type=_decimal, metavar="USD_PER_1M")
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
    t_set.add_argument("--json", action="store_true")
    t_rm = tiers.add_parser("remove", help="remove the highest tier N")
    t_rm.add_argument("n", type=int, metavar="N")
    t_exp = tiers.add_parser("export", help="write tiers to a JSON file (never keys)")
    t_exp.add_argument("file")
    t_imp = tiers.add_parser("import", help="replace tiers from a JSON file")
    t_imp.add_argument("file")
    t_imp.add_argument("--trust-key-env", action="store_true",
                       help="keep the file's key variables (api_key_env) and plain-http permissions; "
                            "without it they are dropped")
    t_test = tiers.add_parser("test", help="test the connection of tier N")
    t_test.add_argument("n", type=int, metavar="N")
    t_test.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="API keys in the OS keyring").add_subparsers(
        dest="keys_cmd", metavar="ACTION", required=True)
    k_set = keys.add_parser("set", help="store the key for ENDPOINT (base URL), read from stdin")
    k_set.add_argument("endpoint")
    k_del = keys.add_parser("delete", help="delete the stored key for ENDPOINT")
    k_del.add_argument("endpoint")
    k_status = keys.add_parser("status", help="keyring backend and where each tier's key comes from")
    k_status.add_argument("--json", action="store_true")

    tasks = sub.add_parser("tasks", help="import and list tasks").add_subparsers(dest="tasks_cmd", metavar="ACTION",
                                                                              required=True)
    ta_imp = tasks.add_parser("import", help="import a task file (all or nothing; same ids are updated, not duplicated)")
    ta_imp.add_argument("file")
    ta_imp.add_argument("--format", choices=["native", "bfcl", "csv"], help="default: detected from the file")
    ta_imp.add_argument("--answers", metavar="FILE", help="BFCL possible_answer file (default: found next to FILE)")
    ta_imp.add_argument("--json", action="store_true")
    ta_list = tasks.add_parser("list", help="list tasks")
    ta_list.add_argument("--category")
    ta_list.add_argument("--limit", type=int)
    ta_list.add_argument("--json", action="store_true")

    col = sub.add_parser("collect", help="run a tier over tasks (resumes an unfinished run of the same tier and tasks)")
    col.add_argument("--tier", type=int, help="tier number (default: the teacher)")
    col.add_argument("--limit", type=int)
    col.add_argument("--category")
    col.add_argument("--concurrency", type=int)
    col.add_argument("--batch", action="store_true", help="through the Batch API (half price, results within 24 h)")
    col.add_argument("--json", action="store_true")

    traj = sub.add_parser("trajectories", help="list and export trajectories").add_subparsers(
        dest="traj_cmd", metavar="ACTION", required=True)
    tr_list = traj.add_parser("list", help="one line (or JSON object) per trajectory")
    tr_list.add_argument("--tier", type=int)
    tr_list.add_argument("--json", action="store_true")
    tr_exp = traj.add_parser("export", help="write trajectories (native, csv) or the tasks as a Batch API input (batch)")
    tr_exp.add_argument("file")
    tr_exp.add_argument("--tier", type=int)
    tr_exp.add_argument("--format", choices=["native", "batch", "csv"], default="native")
    tr_imp = traj.add_parser("import", help="import trajectories of a tier (native JSONL or a Batch API output file)")
    tr_imp.add_argument("file")
    tr_imp.add_argument("--tier", type=int, required=True)
    tr_imp.add_argument("--format", choices=["native", "batch"], default="native")
    tr_imp.add_argument("--json", action="store_true")

    ev = sub.add_parser("evaluate", help="compare a student tier with the teacher (agreement, accuracy, KL)")
    ev.add_argument("--teacher", type=int, help="default: the top tier")
    ev.add_argument("--student", type=int, required=True)
    ev.add_argument("--category")
    ev.add_argument("--limit", type=int)
    ev.add_argument("--dataset", type=int, metavar="ID",
                    help="evaluate on this dataset's validation split (default, when a dataset exists and neither "
                         "--category nor --limit is given: the newest dataset's split)")
    ev.add_argument("--all-tasks", action="store_true", help="ignore datasets: evaluate on all (or --category) tasks")
    ev.add_argument("--collect", action="store_true", help="collect missing trajectories first")
    ev.add_argument("--no-embeddings", action="store_true", help="use the offline similarity, not the embeddings endpoint")
    ev.add_argument("--temperature", type=float, default=2.0, help="temperature T of the KL divergence")
    ev.add_argument("--target-rate", type=float, help="suggest the threshold that escalates this share of tasks")
    ev.add_argument("--target-quality", type=float, help="suggest the lowest threshold that reaches this quality")
    ev.add_argument("--json", action="store_true")

    pol = sub.add_parser("policy", help="the cascade policy").add_subparsers(dest="policy_cmd", metavar="ACTION",
                                                                              required=True)
    pol_exp = pol.add_parser("export", help="write the policy JSON (no keys) and a Python snippet applying it")
    pol_exp.add_argument("file")

    wi = sub.add_parser("whatif", help="per-tier figures, the cascade at given thresholds, sweeps and monthly costs")
    wi.add_argument("--volume", type=float, default=1_000_000, help="requests per month (default 1,000,000)")
    wi.add_argument("--thresholds", help="T1[,T2]: escalation thresholds (default: the tiers' own)")
    wi.add_argument("--mode", choices=["cascade", "routing"], default="cascade")
    wi.add_argument("--sweep", action="store_true", help="add the cost-quality curve and router metrics")
    wi.add_argument("--category")
    wi.add_argument("--batch-discount", type=float, default=0.0, help="fraction off every price, e.g. 0.5")
    wi.add_argument("--training-cost", type=float, default=0.0, help="fine-tune training cost in USD")
    wi.add_argument("--amortize-months", type=int, default=12)
    wi.add_argument("--json", action="store_true")

    ds = sub.add_parser("dataset", help="fine-tuning datasets").add_subparsers(dest="dataset_cmd", metavar="ACTION",
                                                                                 required=True)
    ds_build = ds.add_parser("build", help="build a dataset from curated teacher trajectories")
    ds_build.add_argument("--out", required=True, metavar="FILE")
    ds_build.add_argument("--tier", type=int, help="default: the teacher")
    ds_build.add_argument("--accepted-only", action="store_true")
    ds_build.add_argument("--category")
    ds_build.add_argument("--tool")
    ds_build.add_argument("--min-confidence", type=float)
    ds_build.add_argument("--validation-share", type=float, default=0.1)
    ds_build.add_argument("--seed", type=int, default=0)
    ds_build.add_argument("--reasoning", choices=["final", "reasoning"], default="final",
                          help="final answer only, or keep the teacher's reasoning in the assistant message")
    ds_build.add_argument("--system-prompt", help="replace the examples' system prompt")
    ds_build.add_argument("--no-dedupe", action="store_true")
    ds_build.add_argument("--format", choices=["openai", "sharegpt"], default="openai")
    ds_build.add_argument("--json", action="store_true")
    ds_val = ds.add_parser("validate", help="check a chat fine-tuning JSONL file (exit 1 on errors)")
    ds_val.add_argument("file")
    ds_val.add_argument("--model", default="gpt-4o-mini")
    ds_val.add_argument("--json", action="store_true")

    ft = sub.add_parser("finetune", help="fine-tune jobs").add_subparsers(dest="ft_cmd", metavar="ACTION", required=True)
    ft_start = ft.add_parser("start", help="start a supervised fine-tune job (on a tier's endpoint, or locally)")
    ft_start.add_argument("--dataset", required=True, metavar="FILE")
    ft_start.add_argument("--base-model", required=True, metavar="M",
                          help="a model id (remote) or a local Hugging Face model folder (--backend local)")
    ft_start.add_argument("--backend", choices=["openai", "local"], default="openai",
                          help="openai: the fine-tuning API of a tier's endpoint; local: train on this machine "
                               "(needs `pip install 'cascade-studio[local]'`)")
    ft_start.add_argument("--tier-endpoint", type=int, metavar="N", help="send the job to tier N's endpoint (default: the teacher's)")
    ft_start.add_argument("--validation", metavar="FILE")
    ft_start.add_argument("--epochs", type=int)
    ft_start.add_argument("--batch-size", type=int)
    ft_start.add_argument("--learning-rate-multiplier", type=float)
    ft_start.add_argument("--suffix")
    ft_start.add_argument("--seed", type=int)
    local = ft_start.add_argument_group("local backend")
    local.add_argument("--method", choices=["lora", "full"], default="lora")
    local.add_argument("--alpha", type=float, default=0.5, metavar="A",
                       help="weight of the hard-label cross-entropy; 1 - A goes to the teacher's soft labels (default 0.5)")
    local.add_argument("--temperature", type=float, default=2.0, metavar="T", help="distillation temperature (default 2)")
    local.add_argument("--mass", choices=["drop", "spread"], default="drop",
                       help="the teacher's probability outside its recorded top-k: dropped (renormalise) or spread "
                            "evenly over the rest of the vocabulary")
    local.add_argument("--soft-labels", choices=["auto", "off"], default="auto",
                       help="auto: use the teacher's logprobs (DATASET.logprobs.jsonl) when the tokenizers agree")
    local.add_argument("--teacher-logprobs", metavar="FILE",
                       help="the teacher's logprobs, one JSON line per example (default: DATASET.logprobs.jsonl)")
    local.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, mps")
    local.add_argument("--lora-rank", type=int, default=16)
    local.add_argument("--learning-rate", type=float, help="absolute learning rate (default 2e-4 LoRA, 2e-5 full)")
    local.add_argument("--max-length", type=int, default=2048, help="tokens per example; longer ones are cut")
    local.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    local.add_argument("--no-merge", action="store_true", help="LoRA: write the adapter only, no merged model")
    ft_start.add_argument("--json", action="store_true")
    ft.add_parser("backends", help="fine-tune backends and whether each can be used here")
    ft_list = ft.add_parser("list", help="jobs in the workspace (refreshes unfinished ones first)")
    ft_list.add_argument("--json", action="store_true")
    ft_status = ft.add_parser("status", help="one job, refreshed")
    ft_status.add_argument("id")
    ft_status.add_argument("--json", action="store_true")
    for name in ("cancel", "pause", "resume"):
        p_ = ft.add_parser(name, help=f"{name} a job")
        p_.add_argument("id")
    ft_watch = ft.add_parser("watch", help="print events until the job ends (exit 0 only if it succeeded)")
    ft_watch.add_argument("id")
    ft_use = ft.add_parser("use", help="put a succeeded job's model in tier N")
    ft_use.add_argument("id")
    ft_use.add_argument("--tier", type=int, required=True)
    ft_use.add_argument("--base-url", help="the server the model is served by (a local job: default vLLM's "
                                          "http://localhost:8000/v1)")

    cat = sub.add_parser("catalog", help="the price catalog").add_subparsers(dest="catalog_cmd", metavar="ACTION",
                                                                           required=True)
    c_show = cat.add_parser("show", help="source, date and one model's prices")
    c_show.add_argument("model", nargs="?")
    c_show.add_argument("--json", action="store_true")
    c_imp = cat.add_parser("import", help="import a newer LiteLLM model_prices_and_context_window.json")
    c_imp.add_argument("file")

    sb = sub.add_parser("sandbox", help="serve the built-in OpenAI-compatible sandbox")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=0)
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--latency-scale", type=float, default=1.0)
    sb.add_argument("--faults", default="", metavar="SPEC", help="e.g. 429=0.1,500=0.02,503=0.02,slow=0.05,drop=0.01")
    sb.add_argument("--job-seconds", type=float, default=6.0)

    demo = sub.add_parser("demo", help="open the GUI on a demo workspace served by the built-in sandbox")
    demo.add_argument("--reset", action="store_true", help="recreate the demo workspace")
    demo.add_argument("--no-gui", action="store_true", help="prepare the demo workspace and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from cascade_studio.services.logging_setup import setup_logging

    setup_logging()
    try:
        if args.self_check:
            from cascade_studio.ui.selfcheck import run_self_check

            return run_self_check()
        if args.command in (None, "gui"):
            return _gui(args)
        handler = {"tiers": _tiers, "tasks": _tasks, "collect": _collect, "trajectories": _trajectories, "evaluate": _evaluate, "whatif": _whatif, "dataset": _dataset, "finetune": _finetune,
                   "policy": _policy, "keys": _keys, "catalog": _catalog, "sandbox": _sandbox, "demo": _demo}[args.command]
        return handler(args) or 0
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# -- helpers ---------------------------------------------------------------------------------
def _workspace_path(args: argparse.Namespace) -> Path:
    from cascade_studio.services.paths import default_workspace

    return Path(args.workspace).expanduser() if args.workspace else default_workspace()


def _open_ws(args: argparse.Namespace, *, create: bool = True):
    from cascade_studio.store.workspace import Workspace, WorkspaceError

    try:
        return Workspace.open(_workspace_path(args), create=create)
    except WorkspaceError as exc:
        raise CliError(str(exc)) from None


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _gui(args: argparse.Namespace) -> int:
    from cascade_studio.ui.app import run_gui

    return run_gui(workspace=Path(args.workspace).expanduser() if args.workspace else None)


# -- tiers -----------------------------------------------------------------------------------
def _tiers(args: argparse.Namespace) -> int:
    from cascade_studio.core.tiers import ConfidenceMethod, Provider
    from cascade_studio.services import catalog as catalog_svc
    from cascade_studio.services import tier_service as svc
    from cascade_studio.store.tiers import TierRepository

    with _open_ws(args) as ws:
        repo = TierRepository(ws)
        cmd = args.tiers_cmd
        if cmd == "list":
            tiers = repo.list()
            catalog = catalog_svc.load_for_workspace(ws.path)
            if args.json:
                rows = []
                for t in tiers:
                    row = t.to_json()
                    row["teacher"] = t.tier == max(x.tier for x in tiers)
                    price = catalog.lookup(t.model)
                    row["deprecation"] = price.deprecation_notice(dt.date.today()) if price else None
                    rows.append(row)
                _print_json(rows)
            elif not tiers:
                print("No tiers yet. Add one: cascade-studio tiers set 1 --model gpt-4o-mini --base-url https://api.openai.com/v1")
            else:
                top = max(t.tier for t in tiers)
                for t in tiers:
                    role = "teacher" if t.tier == top else "student"
                    sim = " [simulated]" if t.simulated else ""
                    print(f"{t.tier}  {t.display_name:<22} {t.model:<28} {t.base_url}  in ${t.input_price}/1M  "
                          f"out ${t.output_price}/1M  ({role}){sim}")
            return 0
        if cmd == "set":
            catalog = catalog_svc.load_for_workspace(ws.path)
            try:
                tier = svc.set_tier(
                    ws, catalog, args.n, name=args.name, model=args.model, base_url=args.base_url,
                    provider=Provider(args.provider) if args.provider else None,
                    input_price=args.input_price, output_price=args.output_price, cached_price=args.cached_price,
                    threshold=args.threshold, max_concurrency=args.concurrency, timeout_s=args.timeout,
                    rpm_limit=args.rpm, tpm_limit=args.tpm, temperature=args.temperature,
                    system_prompt=args.system_prompt,
                    confidence_method=ConfidenceMethod(args.confidence_method) if args.confidence_method else None,
                    api_key_env=args.key_env, allow_insecure=args.allow_insecure,
                )
            except svc.TierServiceError as exc:
                raise CliError(str(exc)) from None
            if args.json:
                _print_json(tier.to_json())
            else:
                print(f"Saved tier {tier.tier}: {tier.model} at {tier.base_url} "
                      f"(in ${tier.input_price}/1M, out ${tier.output_price}/1M)")
            price = catalog.lookup(tier.model)
            notice = price.deprecation_notice(dt.date.today()) if price else None
            if notice:
                print(f"warning: {notice}", file=sys.stderr)
            return 0
        if cmd == "remove":
            tiers = repo.list()
            if not tiers or args.n != max(t.tier for t in tiers):
                raise CliError(f"only the highest tier ({max((t.tier for t in tiers), default=0)}) can be removed")
            repo.replace_all([t for t in tiers if t.tier != args.n])
            print(f"Removed tier {args.n}")
            return 0
        if cmd == "export":
            try:
                count = svc.export_tiers(ws, Path(args.file))
            except svc.TierServiceError as exc:
                raise CliError(str(exc)) from None
            print(f"Exported {count} tiers to {args.file} (no API keys)")
            return 0
        if cmd == "import":
            from cascade_studio.services.secrets import SecretStore

            try:
                report = svc.import_tiers(ws, Path(args.file), trust_key_settings=args.trust_key_env,
                                          secrets=SecretStore())
            except svc.TierServiceError as exc:
                raise CliError(str(exc)) from None
            first, *rest = report.summary(Path(args.file))
            print(first)
            for line in rest:
                print(f"note: {line}", file=sys.stderr)
            return 0
        if cmd == "test":
            from cascade_studio.services.connection import test_connection
            from cascade_studio.services.secrets import SecretStore

            tier = repo.get(args.n)
            if tier is None:
                raise CliError(f"no tier {args.n}; see `cascade-studio tiers list`")
            result = asyncio.run(test_connection(tier, SecretStore()))
            if args.json:
                _print_json(result.to_json())
            else:
                print(result.message, file=sys.stdout if result.ok else sys.stderr)
            return 0 if result.ok else 1
    return 2


# -- tasks -----------------------------------------------------------------------------------
def _tasks(args: argparse.Namespace) -> int:
    from cascade_studio.core.tasks import TaskImportError
    from cascade_studio.services.task_import import import_tasks
    from cascade_studio.store.tasks import TaskRepository

    with _open_ws(args) as ws:
        if args.tasks_cmd == "import":
            try:
                result = import_tasks(ws, Path(args.file), args.format, Path(args.answers) if args.answers else None)
            except TaskImportError as exc:
                raise CliError(f"{exc}. Nothing was imported.") from None
            if args.json:
                _print_json({"file": args.file, **result.to_json()})
            else:
                print(f"Imported {args.file}: {result.added} added, {result.updated} updated, "
                      f"{result.unchanged} unchanged")
            return 0
        repo = TaskRepository(ws)
        tasks = repo.list(args.category, args.limit)
        if args.json:
            _print_json([{"id": t.id, "category": t.category, "tools": t.tool_names, "prompt": t.prompt,
                          "has_expected": t.expected is not None} for t in tasks])
        else:
            for t in tasks:
                print(f"{t.id:<24} {t.category:<16} {','.join(t.tool_names)[:40]:<40} {t.prompt[:60]}")
            print(f"{len(tasks)} tasks" + (f" in {args.category}" if args.category else ""))
        return 0


# -- collect ---------------------------------------------------------------------------------
def _collect(args: argparse.Namespace) -> int:
    from cascade_studio.core.money import micro_to_usd
    from cascade_studio.core.tiers import teacher_of
    from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.tiers import TierRepository

    with _open_ws(args) as ws:
        tiers = TierRepository(ws).list()
        tier = next((t for t in tiers if t.tier == args.tier), None) if args.tier else teacher_of(tiers)
        if tier is None:
            raise CliError(f"no tier {args.tier or ''}; define one with `cascade-studio tiers set`".replace("  ", " "))
        task_ids = select_task_ids(ws, args.category, args.limit)
        if not task_ids:
            raise CliError("no tasks to run; import some with `cascade-studio tasks import FILE`")
        run, resumed = start_or_resume(ws, tier, task_ids, {"category": args.category, "limit": args.limit,
                                                            "concurrency": args.concurrency, "batch": args.batch},
                                       batch=args.batch)
        last = [0.0]

        def progress(p) -> None:
            import time as _t

            if _t.monotonic() - last[0] < 1.0 and p.status == "running":
                return
            last[0] = _t.monotonic()
            eta = f", ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
            print(f"[run {p.run_id}] {p.done}/{p.total} done, {p.failed} failed, {p.rate:.1f}/s{eta}, "
                  f"{p.tokens:,} tokens, ${p.cost_usd:.4f}", file=sys.stderr, flush=True)

        if resumed:
            print(f"Resuming run {run.id} of tier {tier.tier} ({tier.model})", file=sys.stderr)
        if args.batch:
            from cascade_studio.services.batch_runner import BatchCollection

            runner = BatchCollection(ws, tier, SecretStore(), run, on_progress=progress)
        else:
            runner = CollectionRun(ws, tier, SecretStore(), run, concurrency=args.concurrency, on_progress=progress)
        try:
            result = asyncio.run(runner.run())
        except KeyboardInterrupt:
            print(f"Interrupted; run `collect` again to resume run {run.id}.", file=sys.stderr)
            return 130
        summary = {"run_id": run.id, "tier": tier.tier, "model": tier.model, "resumed": resumed,
                   "done": result.done, "failed": result.failed, "skipped": result.skipped, "tokens": result.tokens,
                   "cost_usd": str(micro_to_usd(result.cost_micro)),
                   "status": result.status, "message": result.message}
        if args.json:
            _print_json(summary)
        else:
            print(f"Run {run.id}: {result.done}/{result.total} done, {result.failed} failed, "
                  f"{result.skipped} already done before, {result.tokens:,} tokens, ${summary['cost_usd']}")
        if result.status == "failed" and result.message:
            print(f"error: {result.message}", file=sys.stderr)
        return 0 if result.status == "done" else 1


def _trajectories(args: argparse.Namespace) -> int:
    from cascade_studio.core.tiers import teacher_of
    from cascade_studio.services import trajectory_io as tio
    from cascade_studio.services.collector import select_task_ids
    from cascade_studio.services.trajectory_io import export_csv, export_native, list_rows
    from cascade_studio.store.tiers import TierRepository

    with _open_ws(args) as ws:
        tiers = TierRepository(ws).list()
        if args.traj_cmd == "import" or (args.traj_cmd == "export" and args.format == "batch"):
            tier = next((t for t in tiers if t.tier == args.tier), None) if args.tier else teacher_of(tiers)
            if tier is None:
                raise CliError(f"no tier {args.tier or ''}; see `cascade-studio tiers list`")
            if args.traj_cmd == "export":
                count = tio.export_batch_input(ws, Path(args.file), tier, select_task_ids(ws))
                print(f"Wrote a Batch API input file with {count} requests for tier {tier.tier} to {args.file}")
                return 0
            try:
                importer = tio.import_batch_output if args.format == "batch" else tio.import_native
                count = importer(ws, Path(args.file), tier)
            except tio.TrajectoryImportError as exc:
                raise CliError(f"{exc}. Nothing was imported.") from None
            if args.json:
                _print_json({"file": args.file, "tier": tier.tier, "imported": count})
            else:
                print(f"Imported {count} trajectories into tier {tier.tier} from {args.file}")
            return 0
        if args.traj_cmd == "list":
            rows = list_rows(ws, args.tier)
            if args.json:
                _print_json(rows)
            else:
                for r in rows:
                    conf = "" if r["confidence"] is None else f"{r['confidence']:.3f}"
                    print(f"{r['task_id']:<24} tier {r['tier']} {r['model']:<14} {r['status']:<6} "
                          f"{r['tool'] or '-':<28} conf {conf:<6} ${r['cost_usd']:<10} {r['latency_ms']:.0f} ms")
                print(f"{len(rows)} trajectories")
            return 0
        target = Path(args.file)
        try:
            count = export_csv(ws, target, args.tier) if args.format == "csv" else export_native(ws, target, args.tier)
        except OSError as exc:
            raise CliError(f"cannot write {target}: {exc.strerror}") from None
        print(f"Exported {count} trajectories to {target}")
        return 0


# -- evaluation ------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    from cascade_studio.core.evaluation import threshold_for_quality, threshold_for_rate
    from cascade_studio.core.tiers import teacher_of
    from cascade_studio.services.collector import select_task_ids
    from cascade_studio.services.evaluation import evaluate
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.tiers import TierRepository

    with _open_ws(args) as ws:
        tiers = {t.tier: t for t in TierRepository(ws).list()}
        teacher = tiers.get(args.teacher) if args.teacher else teacher_of(list(tiers.values()))
        student = tiers.get(args.student)
        if teacher is None or student is None:
            raise CliError(f"no such tier (teacher {args.teacher or 'top'}, student {args.student}); see `tiers list`")
        if teacher.tier == student.tier:
            raise CliError("the student must be another tier than the teacher", code=2)
        from cascade_studio.services.datasets import validation_task_ids

        split = None
        if args.dataset is not None or not (args.all_tasks or args.category or args.limit):
            split = validation_task_ids(ws, args.dataset)
            if split is None and args.dataset is not None:
                raise CliError(f"dataset {args.dataset} does not exist or has no validation split")
        task_ids = split[1] if split else select_task_ids(ws, args.category, args.limit)
        if not task_ids:
            raise CliError("no tasks; import some with `cascade-studio tasks import FILE`")
        if split:
            print(f"Evaluating on the validation split of dataset {split[0]} ({len(task_ids)} tasks)", file=sys.stderr)
        report = asyncio.run(evaluate(ws, teacher, student, task_ids, SecretStore(), collect=args.collect,
                                      use_embeddings=not args.no_embeddings, temperature=args.temperature,
                                      category=args.category))
        if not report.results:
            raise CliError(f"no task has trajectories of both tier {teacher.tier} and tier {student.tier}; "
                           "add --collect to collect them")
        out = report.to_json()
        method = student.confidence_method.value
        confs = [r.student_confidence.get(method) for r in report.results]
        student_ok = [r.agrees for r in report.results]
        teacher_ok = [True] * len(student_ok)
        if args.target_rate is not None:
            out["calibration"] = threshold_for_rate(confs, student_ok, teacher_ok, args.target_rate).to_json()
        elif args.target_quality is not None:
            out["calibration"] = threshold_for_quality(confs, student_ok, teacher_ok, args.target_quality).to_json()
        if args.json:
            _print_json(out)
        else:
            o = out["overall"]
            print(f"Tier {student.tier} ({student.model}) vs teacher tier {teacher.tier} ({teacher.model}) on "
                  f"{o['tasks']} tasks ({report.missing} without both trajectories)")
            for name, block in [("overall", o), *out["categories"].items()]:
                acc = block["accuracy"]
                acc_text = f"  accuracy teacher {acc['teacher']:.0%} student {acc['student']:.0%}" if acc else ""
                print(f"  {name:<16} tasks {block['tasks']:>4}  tool {_pct(block['tool_agreement'])}  args "
                      f"{_pct(block['args_agreement'])}  answer {_pct(block['answer_agreement'])}{acc_text}")
            if "calibration" in out:
                c = out["calibration"]
                print(f"Suggested threshold {c['threshold']:.3f}: escalates {c['escalation_rate']:.0%}, expected "
                      f"quality {c['expected_quality']:.0%}")
        return 0


def _whatif(args: argparse.Namespace) -> int:
    import numpy as np

    from cascade_studio.core.tradeoffs import (
        WhatIf,
        pareto_front,
        router_metrics,
        simulate,
        sweep,
        tier_figures,
        what_if,
    )
    from cascade_studio.services.tradeoffs import load_outcomes
    from cascade_studio.store.tiers import TierRepository

    with _open_ws(args) as ws:
        tiers = TierRepository(ws).list()
        if len(tiers) < 2:
            raise CliError("what-if needs at least two tiers (a student and the teacher)")
        outcomes = load_outcomes(ws, tiers, args.category)
        if outcomes.n == 0:
            raise CliError("no task has trajectories of every tier; run `cascade-studio collect --tier N` for each tier")
        if args.thresholds:
            try:
                thresholds = [float(x) for x in args.thresholds.split(",")]
            except ValueError:
                raise CliError("--thresholds takes numbers, e.g. 0.6 or 0.6,0.8", code=2) from None
        else:
            thresholds = [t.threshold for t in sorted(tiers, key=lambda t: t.tier)[:-1]]
        if len(thresholds) != len(tiers) - 1:
            raise CliError(f"{len(tiers)} tiers need {len(tiers) - 1} thresholds", code=2)
        scenario = WhatIf(monthly_volume=args.volume, batch_discount=args.batch_discount,
                          training_cost_usd=args.training_cost, amortize_months=args.amortize_months)
        out: dict[str, Any] = {
            "tasks": outcomes.n, "excluded": outcomes.excluded, "quality_basis": outcomes.quality_basis,
            "tiers": tier_figures(outcomes),
            "cascade": simulate(outcomes, thresholds, args.mode).to_json(),
            "whatif": what_if(outcomes, thresholds, scenario, args.mode),
        }
        if args.sweep:
            sw = sweep(outcomes, np.linspace(0, 1, 101), args.mode)
            front = pareto_front(sw.cost, sw.quality)
            cost, quality = np.ravel(sw.cost), np.ravel(sw.quality)
            out["sweep"] = {"grid": sw.grid.tolist(), "points": [
                {"thresholds": [float(x) for x in np.atleast_1d(np.unravel_index(i, sw.cost.shape)) / 100],
                 "cost_per_request_usd": float(cost[i]), "quality": float(quality[i])} for i in front]}
            if len(tiers) == 2:
                figs = out["tiers"]
                out["metrics"] = router_metrics(sw, (figs[0]["cost_per_request_usd"], figs[0]["quality"]),
                                                (figs[1]["cost_per_request_usd"], figs[1]["quality"]))
            else:
                figs = out["tiers"]
                two = load_outcomes(ws, [sorted(tiers, key=lambda t: t.tier)[0], sorted(tiers, key=lambda t: t.tier)[-1]],
                                    args.category)
                sw2 = sweep(two, np.linspace(0, 1, 101), args.mode)
                out["metrics"] = router_metrics(sw2, (figs[0]["cost_per_request_usd"], figs[0]["quality"]),
                                                (figs[-1]["cost_per_request_usd"], figs[-1]["quality"]))
                out["metrics"]["note"] = "APGR/CPT/AIQ for the cheapest tier vs the teacher (two-tier definitions)"
        if args.json:
            _print_json(out)
        else:
            print(f"{outcomes.n} tasks with every tier ({outcomes.excluded} excluded); quality = {outcomes.quality_basis}")
            for f in out["tiers"]:
                print(f"  tier {f['tier']}: ${f['cost_per_request_usd']:.6f}/request, p50 {f['latency_p50_ms']:.0f} ms, "
                      f"p95 {f['latency_p95_ms']:.0f} ms, quality {f['quality']:.0%}")
            c, w = out["cascade"], out["whatif"]
            print(f"{args.mode} at {thresholds}: ${c['cost_per_request_usd']:.6f}/request, quality {c['quality']:.0%}, "
                  f"p95 {c['latency_p95_ms']:.0f} ms, escalation {', '.join(f'{e:.0%}' for e in c['escalation_rate'])}")
            be = "never" if w["break_even_month"] is None else f"month {w['break_even_month']}"
            print(f"At {args.volume:,.0f} requests/month: ${w['monthly_cost_usd']:,.2f}/month vs teacher-only "
                  f"${w['teacher_only_monthly_usd']:,.2f} -> saves ${w['monthly_savings_usd']:,.2f}/month; break-even {be}")
            if "metrics" in out:
                m = out["metrics"]
                print("  " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
        return 0


def _dataset(args: argparse.Namespace) -> int:
    from cascade_studio.services import datasets as dsvc

    if args.dataset_cmd == "validate":
        ws_dir = _workspace_path(args) if args.workspace else None
        try:
            report = dsvc.validate_file(Path(args.file), args.model, ws_dir)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if args.json:
            _print_json(report.to_json())
        else:
            print(f"{args.file}: {report.examples} examples, {len(report.errors)} errors, "
                  f"{len(report.warnings)} warnings")
            for e in report.errors[:50]:
                print(f"  line {e['line']}: {e['kind']}{' (' + e['detail'] + ')' if e.get('detail') else ''}")
            for w in report.warnings:
                print(f"  warning: {w['kind']}: {w.get('examples', '')} {w.get('detail', '')}".rstrip())
            t = report.tokens_per_example
            if t:
                print(f"  tokens per example: min {t['min']}, mean {t['mean']:.0f}, max {t['max']}; "
                      f"{report.over_limit} over the {report.token_limit:,}-token limit")
            cost = "" if report.estimated_cost_usd is None else f", about ${report.estimated_cost_usd:,.2f}"
            print(f"  {report.n_epochs} epochs by default -> {report.billed_tokens:,} billed training tokens{cost}")
        return 0 if report.ok else 1
    with _open_ws(args) as ws:
        f = dsvc.DatasetFilters(tier=args.tier, accepted_only=args.accepted_only, category=args.category,
                                min_confidence=args.min_confidence, tool=args.tool, strategy=args.reasoning,
                                system_prompt=args.system_prompt, dedupe=not args.no_dedupe,
                                validation_share=args.validation_share, seed=args.seed)
        if f.tier is not None or f.min_confidence is not None:
            from cascade_studio.store.tiers import TierRepository

            tiers = {t.tier: t for t in TierRepository(ws).list()}
            tier = tiers.get(f.tier) if f.tier is not None else (tiers[max(tiers)] if tiers else None)
            if tier is not None:
                f.confidence_method = tier.confidence_method.value
        try:
            built = dsvc.build_dataset(ws, Path(args.out), f, args.format)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    if args.json:
        _print_json(built.to_json())
    else:
        print(f"Dataset {built.id}: {built.examples} training examples -> {built.path}"
              + (f", {built.validation_examples} validation -> {built.validation_path}" if built.validation_path else "")
              + (f" ({built.duplicates_dropped} duplicates dropped)" if built.duplicates_dropped else ""))
        if built.teacher_logprobs:
            print(f"The teacher's logprobs (soft labels for `finetune start --backend local`) -> {built.teacher_logprobs}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from cascade_studio.services.finetune import tracker
    from cascade_studio.services.finetune.backend import JobSpec
    from cascade_studio.services.secrets import SecretStore

    secrets = SecretStore()
    with _open_ws(args) as ws:
        store = tracker.JobStore(ws)
        try:
            if args.ft_cmd == "start":
                dataset = Path(args.dataset)
                if not dataset.exists():
                    raise CliError(f"{dataset} does not exist; build one with `cascade-studio dataset build`")
                row = ws.conn.execute("SELECT id, validation_path FROM datasets WHERE path = ?",
                                      (str(dataset.resolve()),)).fetchone()
                validation = args.validation or (row[1] if row and args.backend == "local" else None)
                options = {}
                if args.backend == "local":
                    options = {"method": args.method, "alpha": args.alpha, "temperature": args.temperature,
                               "mass": args.mass, "soft_labels": args.soft_labels, "device": args.device,
                               "lora_rank": args.lora_rank, "max_length": args.max_length, "merge": not args.no_merge}
                    if not 0 <= args.alpha <= 1 or args.temperature <= 0:
                        raise CliError("--alpha is between 0 and 1, --temperature above 0")
                    if args.teacher_logprobs:
                        if not Path(args.teacher_logprobs).is_file():
                            raise CliError(f"{args.teacher_logprobs} does not exist")
                        options["teacher_logprobs"] = str(Path(args.teacher_logprobs).resolve())
                    for key in ("learning_rate", "max_steps"):
                        if getattr(args, key) is not None:
                            options[key] = getattr(args, key)
                spec = JobSpec(base_model=args.base_model, training_file=dataset,
                               validation_file=Path(validation) if validation else None, options=options,
                               n_epochs=args.epochs or "auto", batch_size=args.batch_size or "auto",
                               learning_rate_multiplier=args.learning_rate_multiplier or "auto", suffix=args.suffix,
                               seed=args.seed, metadata={"cascade_studio_dataset": str(row[0]) if row else ""})
                state, warning = asyncio.run(tracker.start_job(ws, spec, args.tier_endpoint, secrets,
                                                               dataset_id=row[0] if row else None,
                                                               backend_name=args.backend))
                if warning:
                    print(f"warning: {warning}", file=sys.stderr)
                if args.json:
                    _print_json(state.to_json())
                else:
                    print(f"Started fine-tune job {state.id} ({state.status}) on {state.base_model}; follow it with "
                          f"`cascade-studio finetune watch {state.id}`")
                return 0
            if args.ft_cmd == "backends":
                for b in tracker.backends():
                    print(f"{b['name']:<8} {'available' if b['available'] else 'unavailable':<12} {b['message']}")
                return 0
            if args.ft_cmd == "list":
                for job in store.unfinished():
                    asyncio.run(tracker.refresh(ws, job["id"], secrets))
                jobs = store.list()
                if args.json:
                    _print_json(jobs)
                else:
                    for j in jobs:
                        print(f"{j['id']}  {j['status']:<16} {j['base_model']:<14} {j['fine_tuned_model'] or ''}")
                    print(f"{len(jobs)} jobs")
                return 0
            if args.ft_cmd == "status":
                state, _ = asyncio.run(tracker.refresh(ws, args.id, secrets))
                out = {**state.to_json(), "metrics": store.metrics(args.id)[-1:] or None}
                if args.json:
                    _print_json(out)
                else:
                    print(_job_line(state))
                    last = next((m for m in reversed(store.metrics(args.id)) if "train_loss" in m), None)
                    if last and state.status == "running" and last.get("total_steps"):
                        print(f"step {last['step']}/{last['total_steps']}, training loss {last.get('train_loss')}")
                    _print_model_folder(state)
                return 0
            if args.ft_cmd in ("cancel", "pause", "resume"):
                state = asyncio.run(tracker.control(ws, args.id, args.ft_cmd, secrets))
                print(f"{state.id}: {state.status}")
                return 0
            if args.ft_cmd == "watch":
                def show(e) -> None:
                    print(f"[{e.level}] {e.message}", flush=True)

                state = asyncio.run(tracker.watch(ws, args.id, secrets, on_event=show))
                print(_job_line(state))
                _print_model_folder(state)
                return 0 if state.status == "succeeded" else 1
            if args.ft_cmd == "use":
                return _use_model(ws, args.id, args.tier, args.base_url)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        except Exception as exc:  # API errors: in words, not a traceback
            import openai

            if isinstance(exc, openai.OpenAIError):
                from cascade_studio.services.clients import describe_error

                raise CliError(describe_error(exc)[1]) from None
            raise
    return 2


def _job_line(state) -> str:
    return (f"{state.id}: {state.status}" + (f" -> {state.fine_tuned_model}" if state.fine_tuned_model else "")
            + (f" ({state.error['code']}: {state.error['message']})" if state.error else ""))


def _print_model_folder(state) -> None:
    """A local job's result: where the model is and where the serving commands are."""
    output = (state.hyperparameters or {}).get("output")
    if output:
        print(f"Model folder: {output.get('merged') or output.get('adapter')}\n"
              f"How to serve it and register it as a tier: {output.get('serve')}")


def _use_model(ws, job_id: str, tier_no: int, base_url: str | None = None) -> int:
    from cascade_studio.services.finetune.tracker import use_as_tier
    from cascade_studio.services.tier_service import TierServiceError

    try:
        tier = use_as_tier(ws, job_id, tier_no, base_url)
    except TierServiceError as exc:
        raise CliError(str(exc)) from None
    print(f"Tier {tier.tier} now uses {tier.model} at {tier.base_url} (in ${tier.input_price}/1M, "
          f"out ${tier.output_price}/1M)")
    return 0


def _pct(value) -> str:
    return "  —  " if value is None else f"{value:5.0%}"


def _policy(args: argparse.Namespace) -> int:
    from cascade_studio.services.policy import export_policy
    from cascade_studio.store.tiers import TierRepository

    with _open_ws(args) as ws:
        tiers = TierRepository(ws).list()
        if not tiers:
            raise CliError("no tiers to export; define them with `cascade-studio tiers set`")
        try:
            snippet = export_policy(tiers, Path(args.file))
        except OSError as exc:
            raise CliError(f"cannot write {args.file}: {exc.strerror}") from None
    print(f"Wrote the policy to {args.file} (no keys) and a snippet that applies it to {snippet}")
    return 0


# -- keys ------------------------------------------------------------------------------------
def _keys(args: argparse.Namespace) -> int:
    from cascade_studio.core.tiers import validate_base_url
    from cascade_studio.services.secrets import SecretStore, SecretStoreError, endpoint_id

    store = SecretStore()
    if args.keys_cmd in ("set", "delete"):
        problem = validate_base_url(args.endpoint)
        if problem:
            raise CliError(f"ENDPOINT {problem}", code=2)
        if args.keys_cmd == "delete":
            try:
                store.delete_key(args.endpoint)
            except SecretStoreError as exc:
                raise CliError(str(exc)) from None
            print(f"Deleted the key for {endpoint_id(args.endpoint)}")
            return 0
        if sys.stdin.isatty():
            import getpass

            key = getpass.getpass(f"API key for {endpoint_id(args.endpoint)}: ")
        else:
            key = sys.stdin.readline()
        try:
            where = store.set_key(args.endpoint, key)
        except SecretStoreError as exc:
            raise CliError(str(exc)) from None
        print(f"Stored the key for {endpoint_id(args.endpoint)} in the {where}")
        return 0
    # status
    info = store.info()
    tiers = []
    if args.workspace or _workspace_path(args).exists():
        from cascade_studio.store.tiers import TierRepository

        with _open_ws(args) as ws:
            tiers = TierRepository(ws).list()
    rows = store.status(tiers)
    if args.json:
        _print_json({"backend": info.name, "usable": info.usable, "secure": info.secure, "message": info.message,
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


# -- catalog ---------------------------------------------------------------------------------
def _catalog(args: argparse.Namespace) -> int:
    from cascade_studio.services import catalog as catalog_svc

    ws_dir = _workspace_path(args) if (args.workspace or _workspace_path(args).exists()) else None
    if args.catalog_cmd == "import":
        with _open_ws(args) as ws:
            try:
                cat = catalog_svc.import_litellm_file(Path(args.file), ws.path)
            except catalog_svc.CatalogError as exc:
                raise CliError(str(exc)) from None
        print(f"Imported {len(cat)} models into {ws.path}")
        return 0
    cat = catalog_svc.load_for_workspace(ws_dir)
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
        _print_json(out)
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from cascade_studio.sandbox.server import serve_forever

    return serve_forever(host=args.host, port=args.port, seed=args.seed, latency_scale=args.latency_scale,
                         faults=args.faults, job_seconds=args.job_seconds)


def _demo(args: argparse.Namespace) -> int:
    from cascade_studio.ui.app import run_demo

    return run_demo(workspace=Path(args.workspace).expanduser() if args.workspace else None, reset=args.reset,
                    show_gui=not args.no_gui)
