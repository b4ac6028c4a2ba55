"""`finetune`: start, follow and control fine-tune jobs (a tier's fine-tuning API, Together AI's, or local
training)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    ft = sub.add_parser("finetune", help="fine-tune jobs")
    ft.set_defaults(handler=run)
    actions = ft.add_subparsers(dest="ft_cmd", metavar="ACTION", required=True)
    _register_start(actions)
    ft_backends = actions.add_parser("backends", help="fine-tune backends: whether each can be used here and start "
                                                      "jobs today, and when OpenAI's closes")
    ft_backends.add_argument("--json", action="store_true")
    ft_models = actions.add_parser("models", help="the base models Together fine-tunes (GET /fine-tunes/models/supported)")
    ft_models.add_argument("--backend", choices=["together"], default="together")
    ft_models.add_argument("--base-url", metavar="URL", help="Together's API root (default https://api.together.xyz/v1)")
    ft_models.add_argument("--json", action="store_true")
    ft_list = actions.add_parser("list", help="jobs in the workspace (refreshes unfinished ones first)")
    ft_list.add_argument("--json", action="store_true")
    ft_status = actions.add_parser("status", help="one job, refreshed")
    ft_status.add_argument("id")
    ft_status.add_argument("--json", action="store_true")
    for name in ("cancel", "pause", "resume"):
        p_ = actions.add_parser(name, help=f"{name} a job")
        p_.add_argument("id")
    ft_watch = actions.add_parser("watch", help="print events until the job ends (exit 0 only if it succeeded)")
    ft_watch.add_argument("id")
    ft_use = actions.add_parser("use", help="put a succeeded job's model in tier N")
    ft_use.add_argument("id")
    ft_use.add_argument("--tier", type=int, required=True)
    ft_use.add_argument("--base-url", help="the server the model is served by (a local job: default vLLM's "
                                          "http://localhost:8000/v1)")
    ft_use.add_argument("--evaluate-first", action="store_true",
                        help="first evaluate the new model and the tier's current one against the teacher on a "
                             "dataset's validation tasks (collecting missing answers), print both, then switch")
    ft_use.add_argument("--dataset", type=int, metavar="ID",
                        help="with --evaluate-first: this dataset's validation split (default: the newest)")
    ft_use.add_argument("--replace-teacher", action="store_true",
                        help="allow the model into the teacher's tier (the highest) or a new tier above it; "
                             "refused without it")
    ft_use.add_argument("--min-agreement", type=float, metavar="X",
                        help="with --evaluate-first: switch only when the new model's agreement is at least X (0-1); "
                             "else exit 3 and leave the tier as it is")


def _register_start(actions: argparse._SubParsersAction) -> None:
    ft_start = actions.add_parser("start", help="start a fine-tune job (on a tier's endpoint, on Together AI, or locally)")
    ft_start.add_argument("--dataset", required=True, metavar="FILE")
    ft_start.add_argument("--base-model", required=True, metavar="M",
                          help="a model id (remote) or a local Hugging Face model folder (--backend local; or a "
                               "succeeded local job's id: its model, e.g. DPO after SFT)")
    ft_start.add_argument("--backend", choices=["openai", "together", "local"], default="openai",
                          help="openai: the fine-tuning API of a tier's endpoint (api.openai.com takes no new jobs "
                               "after 2027-01-06); together: Together AI's fine-tuning API; local: train on this "
                               "machine (needs `pip install 'cascade-studio[local]'`)")
    ft_start.add_argument("--tier-endpoint", type=int, metavar="N",
                          help="send the job to tier N's endpoint (default: the teacher's)")
    ft_start.add_argument("--validation", metavar="FILE")
    ft_start.add_argument("--epochs", type=int)
    ft_start.add_argument("--batch-size", type=int)
    ft_start.add_argument("--learning-rate-multiplier", type=float)
    ft_start.add_argument("--suffix")
    ft_start.add_argument("--seed", type=int)
    ft_start.add_argument("--method", choices=["lora", "full", "sft", "dpo", "dpo-full"],
                          help="lora (default) or full: what is trained; sft (default) or dpo: how (dpo: a preference "
                               "file from `dataset build --format preference`; dpo-full: DPO training every weight; "
                               "local: e.g. from an SFT job's model, --base-model JOB_ID)")
    kind = ft_start.add_mutually_exclusive_group()
    kind.add_argument("--lora", dest="training_type", action="store_const", const="lora", help="train a LoRA adapter")
    kind.add_argument("--full", dest="training_type", action="store_const", const="full", help="train all weights")
    together = ft_start.add_argument_group("together backend")
    together.add_argument("--base-url", metavar="URL", help="Together's API root (default https://api.together.xyz/v1; "
                                                            "a server on this machine for tests)")
    together.add_argument("--from-checkpoint", metavar="JOB[:STEP]",
                          help="continue from a Together job's checkpoint (e.g. DPO after SFT: the SFT job's id)")
    together.add_argument("--dpo-beta", type=float, metavar="B", help="DPO's beta (Together's default 0.1)")
    together.add_argument("--n-checkpoints", type=int, metavar="N", help="checkpoints to keep (Together's default 1)")
    together.add_argument("--max-price", type=str, metavar="USD",
                          help="start only if Together's estimate is at most this many dollars")
    local = ft_start.add_argument_group("local backend (--lora-rank and --learning-rate: Together too)")
    local.add_argument("--beta", type=float, metavar="B", help="DPO's beta (default 0.1)")
    local.add_argument("--devices", type=int, default=1, metavar="N",
                       help="train on N devices (GPUs; CPU processes with --device cpu) with torchrun, data-parallel; "
                            "the batch size is the global one")
    local.add_argument("--nodes", type=int, default=1, metavar="M",
                       help="machines taking part (this one is node 0; the others' command goes to the job's NODES.md)")
    local.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="with --nodes: this machine's address and a free port")
    local.add_argument("--checkpoint-every", type=int, metavar="K", help="write a resumable checkpoint every K steps")
    local.add_argument("--resume-from", metavar="JOB|FOLDER",
                       help="go on from a stopped local job's latest checkpoint (or a checkpoint folder), on any "
                            "number of devices; same dataset, batch size, epochs and method")
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


@contextmanager
def _service_errors() -> Iterator[None]:
    """The tracker and the backends word the user's mistakes (no such job or tier, a missing model
    folder, the local extra not installed) as ValueError; API errors are put in words."""
    try:
        yield
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        import openai

        if isinstance(exc, openai.OpenAIError):
            from cascade_studio.services.clients import describe_error

            raise CliError(describe_error(exc)[1]) from None
        raise


def run(args: argparse.Namespace) -> int:
    from cascade_studio.services.secrets import SecretStore

    action = {"start": _start, "backends": _backends, "models": _models, "list": _list, "status": _status, "cancel": _control,
              "pause": _control, "resume": _control, "watch": _watch, "use": _use}[args.ft_cmd]
    secrets = SecretStore()
    with open_ws(args) as ws:
        return action(args, ws, secrets)


def _training_type(args: argparse.Namespace) -> str:
    if args.training_type and args.method in ("lora", "full") and args.training_type != args.method:
        raise CliError(f"--{args.training_type} and --method {args.method} disagree")
    if args.method == "dpo-full":
        if args.training_type == "lora":
            raise CliError("--lora and --method dpo-full disagree")
        return "full"
    return args.training_type or (args.method if args.method in ("lora", "full") else "lora")


def _together_options(args: argparse.Namespace) -> dict:
    options: dict = {"training_type": _training_type(args), "training_method": "dpo" if args.method in ("dpo", "dpo-full") else "sft"}
    for key in ("from_checkpoint", "dpo_beta", "n_checkpoints", "learning_rate", "lora_rank"):
        value = getattr(args, key)
        if value is not None and not (key == "lora_rank" and options["training_type"] == "full"):
            options[key] = value
    return options


def _local_options(args: argparse.Namespace) -> dict:
    from cascade_studio.services.finetune.tracker import local_options

    try:
        return local_options(_training_type(args), "dpo" if (args.method or "").startswith("dpo") else "sft",
                             alpha=args.alpha, temperature=args.temperature, mass=args.mass,
                             soft_labels=args.soft_labels, device=args.device, lora_rank=args.lora_rank,
                             max_length=args.max_length, merge=not args.no_merge, teacher_logprobs=args.teacher_logprobs,
                             beta=args.beta, devices=args.devices, nodes=args.nodes,
                             **{k: getattr(args, k) for k in ("learning_rate", "max_steps", "checkpoint_every",
                                                              "resume_from", "rdzv_endpoint")})
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _start(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune import tracker
    from cascade_studio.services.finetune.backend import JobSpec
    from cascade_studio.store.datasets import DatasetRepository

    dataset = Path(args.dataset)
    if not dataset.exists():
        raise CliError(f"{dataset} does not exist; build one with `cascade-studio dataset build`")
    row = DatasetRepository(ws).find_by_path(dataset)  # (id, validation path) of a dataset built here
    validation = args.validation or (row[1] if row and args.backend in ("local", "together") else None)
    if args.backend != "together" and (args.base_url or args.from_checkpoint or args.max_price):
        raise CliError("--base-url, --from-checkpoint and --max-price are for --backend together")
    if args.backend == "openai" and (args.method in ("dpo", "dpo-full", "full") or args.training_type == "full"):
        raise CliError("the OpenAI backend starts supervised LoRA-style jobs only; --method dpo and --full are for "
                       "--backend together (or local)")
    if args.backend == "together" and args.learning_rate_multiplier is not None:
        raise CliError("Together takes an absolute learning rate: use --learning-rate")
    options = (_local_options(args) if args.backend == "local" else _together_options(args)
               if args.backend == "together" else {})
    max_price = None
    if args.max_price is not None:
        from decimal import Decimal, InvalidOperation

        try:
            max_price = Decimal(args.max_price)
        except InvalidOperation:
            raise CliError(f"--max-price {args.max_price!r} is not a number of dollars") from None
    spec = JobSpec(base_model=args.base_model, training_file=dataset,
                   validation_file=Path(validation) if validation else None, options=options,
                   n_epochs=args.epochs or "auto", batch_size=args.batch_size or "auto",
                   learning_rate_multiplier=args.learning_rate_multiplier or "auto", suffix=args.suffix,
                   seed=args.seed, metadata={"cascade_studio_dataset": str(row[0]) if row else ""})
    with _service_errors():
        state, warning = asyncio.run(tracker.start_job(
            ws, spec, args.tier_endpoint, secrets, dataset_id=row[0] if row else None, backend_name=args.backend,
            base_url=args.base_url, max_price=max_price,
            on_estimate=lambda e: print(e.sentence(), file=sys.stderr)))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print_json(state.to_json())
    else:
        print(f"Started fine-tune job {state.id} ({state.status}) on {state.base_model}; follow it with "
              f"`cascade-studio finetune watch {state.id}`")
    return 0


def _backends(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune import tracker
    from cascade_studio.services.finetune.backend import today

    rows = tracker.backends()
    if args.json:
        print_json({"today": today().isoformat(), "backends": rows})
        return 0
    for b in rows:
        when = "starts jobs today" if b["starts_jobs_today"] else "starts no jobs today"
        closes = f", closes {b['closes_on']}" if b["closes_on"] else ""
        print(f"{b['name']:<8} {'available' if b['available'] else 'unavailable':<12} {b['message']} [{when}{closes}]")
    return 0


def _models(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune.together_backend import TogetherFineTuneBackend

    async def supported() -> list[str]:
        backend = TogetherFineTuneBackend(args.base_url, secrets)
        try:
            return await backend.supported_models()
        finally:
            await backend.close()

    models = asyncio.run(supported())
    if args.json:
        print_json(models)
    else:
        print("\n".join(models))
    return 0


def _list(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune import tracker

    store = tracker.JobStore(ws)
    for job in store.unfinished():
        with _service_errors():
            asyncio.run(tracker.refresh(ws, job["id"], secrets))
    jobs = store.list()
    if args.json:
        print_json(jobs)
    else:
        for j in jobs:
            print(f"{j['id']}  {j['shown_status']:<16} {j['base_model']:<14} {j['fine_tuned_model'] or ''}")
        print(f"{len(jobs)} jobs")
    return 0


def _status(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune import tracker

    store = tracker.JobStore(ws)
    with _service_errors():
        state, _ = asyncio.run(tracker.refresh(ws, args.id, secrets))
    shown = (store.get(args.id) or {}).get("shown_status", state.status)
    out = {**state.to_json(), "shown_status": shown, "metrics": store.metrics(args.id)[-1:] or None}
    if args.json:
        print_json(out)
    else:
        print(_job_line(state, shown))
        last = next((m for m in reversed(store.metrics(args.id)) if "train_loss" in m), None)
        if last and state.status == "running" and last.get("total_steps"):
            print(f"step {last['step']}/{last['total_steps']}, training loss {last.get('train_loss')}")
        _print_model_folder(state)
    return 0


def _control(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune import tracker

    with _service_errors():
        state = asyncio.run(tracker.control(ws, args.id, args.ft_cmd, secrets))
    shown = "paused" if args.ft_cmd == "pause" and state.status in ("running", "queued") else state.status
    print(f"{state.id}: {shown}")
    return 0


def _watch(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune import tracker

    def show(e) -> None:
        print(f"[{e.level}] {e.message}", flush=True)

    with _service_errors():
        state = asyncio.run(tracker.watch(ws, args.id, secrets, on_event=show))
    print(_job_line(state))
    _print_model_folder(state)
    return 0 if state.status == "succeeded" else 1


def _use(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.finetune.tracker import use_as_tier
    from cascade_studio.services.promotion import evaluate_candidate, figures, switch_evidence
    from cascade_studio.store.tiers import TierRepository

    before = TierRepository(ws).get(args.tier)
    if args.evaluate_first:
        with _service_errors():
            comparison = asyncio.run(evaluate_candidate(ws, args.id, args.tier, secrets, dataset_id=args.dataset,
                                                        base_url=args.base_url))
        print(comparison.sentence())
        agreement = comparison.candidate.summary["overall"]["agreement"]
        if args.min_agreement is not None and (agreement is None or agreement < args.min_agreement):
            print(f"Tier {args.tier} left as it is: the new model's agreement is below {args.min_agreement:.0%}.",
                  file=sys.stderr)
            return 3
    with _service_errors():
        tier = use_as_tier(ws, args.id, args.tier, args.base_url, replace_teacher=args.replace_teacher)
    print(f"Tier {tier.tier} now uses {tier.model} at {tier.base_url} (in ${tier.input_price}/1M, "
          f"out ${tier.output_price}/1M)")
    job = tracker_job(ws, args.id)
    if job and job["backend"] == "together":
        from cascade_studio.services.finetune.together_backend import serving_note

        print(serving_note(job))
    # the evidence, when there is some: the latest evaluation of each model as a student
    for label, model, found in switch_evidence(ws, before.model if before else None, tier.model):
        if found:
            from cascade_studio.store.evaluations import metrics_of

            print(f"  {label}: {model}: {figures(metrics_of(ws, found['id']))} with the teacher on {found['tasks']} "
                  f"tasks (evaluation {found['id']}, {found['created_at']})")
        else:
            print(f"  {label}: {model}: not evaluated yet" + (
                f"; run `cascade-studio evaluate --student {tier.tier} --collect --min-agreement X`"
                if label == "now" else ""))
    return 0


def tracker_job(ws, job_id: str) -> dict | None:
    from cascade_studio.services.finetune.tracker import JobStore

    return JobStore(ws).get(job_id)


def _job_line(state, shown: str | None = None) -> str:
    return (f"{state.id}: {shown or state.status}" + (f" -> {state.fine_tuned_model}" if state.fine_tuned_model else "")
            + (f" ({state.error['code']}: {state.error['message']})" if state.error else ""))


def _print_model_folder(state) -> None:
    """A local job's result: where the model is and where the serving commands are."""
    output = (state.hyperparameters or {}).get("output")
    if output:
        print(f"Model folder: {output.get('merged') or output.get('adapter')}\n"
              f"How to serve it and register it as a tier: {output.get('serve')}")
