"""`trajectories`: list, export and import trajectories."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade_studio.cli.common import CliError, open_ws, print_json, tier_or_teacher


def register(sub: argparse._SubParsersAction) -> None:
    traj = sub.add_parser("trajectories", help="list and export trajectories")
    traj.set_defaults(handler=run)
    actions = traj.add_subparsers(dest="traj_cmd", metavar="ACTION", required=True)
    tr_list = actions.add_parser("list", help="one line (or JSON object) per trajectory")
    tr_list.add_argument("--tier", type=int)
    tr_list.add_argument("--json", action="store_true")
    tr_show = actions.add_parser("show", help="one trajectory in full (an episode: every step and tool result)")
    tr_show.add_argument("id", type=int)
    tr_show.add_argument("--json", action="store_true")
    tr_exp = actions.add_parser(
        "export", help="write trajectories (native, csv) or the tasks as a Batch API input (batch)")
    tr_exp.add_argument("file")
    tr_exp.add_argument("--tier", type=int)
    tr_exp.add_argument("--format", choices=["native", "batch", "csv"], default="native")
    tr_imp = actions.add_parser(
        "import", help="import trajectories of a tier (native JSONL, a Batch API output file, or agent "
                       "transcripts: OpenAI chat conversations with tool calls, one a line)")
    tr_imp.add_argument("file")
    tr_imp.add_argument("--tier", type=int, required=True)
    tr_imp.add_argument("--format", choices=["native", "batch", "transcripts"], default="native")
    tr_imp.add_argument("--env", metavar="NAME", help="transcripts: the environment their tasks run in")
    tr_imp.add_argument("--on-conflict", choices=["keep", "replace", "new-id"], default="keep",
                        help="transcripts: a task id already stored with another prompt: keep the stored task (the "
                             "episode keeps its own prompt; default), replace it, or store the line's under a new id")
    tr_imp.add_argument("--json", action="store_true")
    tr_rate = actions.add_parser("rate", help="a person's rating of trajectories (what judges are calibrated "
                                 "against): good, bad, a score on a judge's scale, or clear")
    tr_rate.add_argument("ids", type=int, nargs="+", metavar="ID")
    tr_rate.add_argument("rating", metavar="good|bad|SCORE|clear")
    tr_cur = actions.add_parser("curate", help="accept or reject trajectories (curation labels, also read by "
                                "`judge calibrate`)")
    tr_cur.add_argument("ids", type=int, nargs="+", metavar="ID")
    how = tr_cur.add_mutually_exclusive_group(required=True)
    how.add_argument("--accept", dest="curation", action="store_const", const="accepted")
    how.add_argument("--reject", dest="curation", action="store_const", const="rejected")
    how.add_argument("--clear", dest="curation", action="store_const", const="clear")


def run(args: argparse.Namespace) -> int:
    from cascade_studio.store.tiers import TierRepository

    with open_ws(args) as ws:
        if args.traj_cmd in ("rate", "curate"):
            return _label(args, ws)
        if args.traj_cmd == "import" or (args.traj_cmd == "export" and args.format == "batch"):
            tier = tier_or_teacher(TierRepository(ws).list(), args.tier)
            if tier is None:
                raise CliError(f"no tier {args.tier or ''}; see `cascade-studio tiers list`")
            if args.traj_cmd == "export":
                return _export_batch_input(args, ws, tier)
            return _import(args, ws, tier)
        if args.traj_cmd == "list":
            return _list(args, ws)
        if args.traj_cmd == "show":
            return _show(args, ws)
        return _export(args, ws)


def _export_batch_input(args: argparse.Namespace, ws, tier) -> int:
    from cascade_studio.services import trajectory_io as tio
    from cascade_studio.services.collector import select_task_ids

    count = tio.export_batch_input(ws, Path(args.file), tier, select_task_ids(ws))
    print(f"Wrote a Batch API input file with {count} requests for tier {tier.tier} to {args.file}")
    return 0


def _import(args: argparse.Namespace, ws, tier) -> int:
    from cascade_studio.services import trajectory_io as tio

    if args.format == "transcripts":
        from cascade_studio.services.transcript_import import import_transcripts

        try:
            found = import_transcripts(ws, Path(args.file), tier, environment=args.env or "",
                                       on_conflict=args.on_conflict)
        except tio.TrajectoryImportError as exc:
            raise CliError(f"{exc}. Nothing was imported.") from None
        if args.json:
            print_json(found.to_json())
        else:
            print(import_sentence(found, tier.tier))
        return 0
    try:
        importer = tio.import_batch_output if args.format == "batch" else tio.import_native
        result = importer(ws, Path(args.file), tier)
    except tio.TrajectoryImportError as exc:
        raise CliError(f"{exc}. Nothing was imported.") from None
    if args.json:
        print_json({**result.to_json(), "file": args.file})
    else:
        print(f"Imported {args.file} into tier {tier.tier}: added {result.added}, updated {result.updated}, "
              f"unchanged {result.unchanged}")
    return 0


def import_sentence(found, tier: int) -> str:
    """What a transcript import did, in words (tasks that differ are always said)."""
    parts = [f"Imported {found.episodes} episode(s) ({found.steps} steps"
             + (f", {found.user_turns} user turns" if found.user_turns else "")
             + (f", {found.trials} trials" if found.trials > 1 else "") + f") into tier {tier}",
             f"{found.tasks_added} new task(s)"]
    if found.tasks_updated:
        parts.append(f"{found.tasks_updated} task(s) updated to this file's prompt")
    if found.tasks_different:
        parts.append(f"{found.tasks_different} task(s) differ from a line's prompt and were kept (each episode keeps "
                     "its own; --on-conflict replace or new-id to change that)")
    if found.tasks_renamed:
        parts.append(f"{found.tasks_renamed} task(s) stored under a new id")
    if found.outcomes:
        parts.append(f"{found.outcomes} with a recorded outcome")
    if found.unknown:
        parts.append("unknown: " + ", ".join(f"{w} of {n}" for w, n in found.unknown.items()))
    if found.other_models:
        parts.append(f"{found.other_models} by another model than the tier's (kept as history)")
    return "; ".join(parts)


def _list(args: argparse.Namespace, ws) -> int:
    from cascade_studio.services.trajectory_io import list_rows

    rows = list_rows(ws, args.tier)
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            conf = "" if r["confidence"] is None else f"{r['confidence']:.3f}"
            steps = f" {r['steps']} steps, {r['end_reason']}" if r["end_reason"] else ""
            steps += f", trial {r['trial']}" if r.get("trial") else ""
            steps += f", {_outcome(r['outcome'])}" if r.get("outcome") else ""
            print(f"{r['id']:<6} {r['task_id']:<24} tier {r['tier']} {r['model']:<14} {r['status']:<6} "
                  f"{r['tool'] or '-':<28} conf {conf:<6} {_usd(r['cost_usd']):<11} {_ms(r['latency_ms'])}{steps}")
        print(f"{len(rows)} trajectories")
    return 0


def _show(args: argparse.Namespace, ws) -> int:
    from cascade_studio.services.trajectory_io import show

    data = show(ws, args.id)
    if args.json:
        print_json(data)
        return 0
    print(f"Trajectory {data['id']}: task {data['task_id']}, tier {data['tier']} ({data['model']}), {data['status']}, "
          f"{_usd(data['cost_usd'])}, {_ms(data['latency_ms'])}" + (f"; error: {data['error']}" if data["error"] else ""))
    for step in data.get("steps_detail") or []:
        print(f"-- step {step['step'] + 1} ({_ms(step['latency_ms'])})")
        if step["content"]:
            print(f"   {step['content']}")
        for r in step["tool_results"]:
            outcome = f"error: {r['error']}" if r["error"] else ("tool error: " if r["is_error"] else "") + r["content"]
            print(f"   {r['name']}({r['arguments']}) -> {outcome[:300]}  [{r['duration_ms']:.0f} ms]")
        for turn in step.get("user_turns") or []:
            print(f"   user: {str(turn.get('content'))[:300]}")
    if data.get("end_reason"):
        print(f"Ended: {data['end_reason']} after {data['steps']} step(s)"
              + (f" (trial {data['trial']})" if data.get("trial") else "")
              + (f"; recorded outcome: {_outcome(data['outcome'])}" if data.get("outcome") else ""))
    if data["final_answer"]:
        print(f"Answer: {data['final_answer']}")
    return 0


def _outcome(outcome: dict) -> str:
    word = "success" if outcome.get("success") else "failure"
    return word + (f" (reward {outcome['reward']:g})" if outcome.get("reward") is not None else "")


def _usd(value) -> str:
    return "$unknown" if value is None else f"${value}"


def _ms(value) -> str:
    return "unknown ms" if value is None else f"{value:.0f} ms"


def _export(args: argparse.Namespace, ws) -> int:
    from cascade_studio.services.trajectory_io import export_csv, export_native

    target = Path(args.file)
    try:
        count = export_csv(ws, target, args.tier) if args.format == "csv" else export_native(ws, target, args.tier)
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror}") from None
    print(f"Exported {count} trajectories to {target}")
    return 0


def _label(args: argparse.Namespace, ws) -> int:
    """`rate` and `curate`: people's labels on stored trajectories (issue 30)."""
    from cascade_studio.store.judges import RatingRepository
    from cascade_studio.store.trajectories import TrajectoryRepository

    ratings = RatingRepository(ws)
    ids = list(dict.fromkeys(args.ids))
    missing = sorted(set(ids) - ratings.existing_ids(ids))
    if missing:
        raise CliError(f"no trajectory {', '.join(map(str, missing))}; see `cascade-studio trajectories list`")
    if args.traj_cmd == "curate":
        value = None if args.curation == "clear" else args.curation
        TrajectoryRepository(ws).set_curation(ids, value)
        print(f"{'Cleared the curation of' if value is None else value.capitalize()} {len(ids)} trajectories")
    else:
        rating = args.rating.strip().lower()
        if rating not in ("good", "bad", "clear") and not _is_score(ws, rating):
            raise CliError(f"{args.rating!r} is not a rating: give good, bad, a score (e.g. 4), a value of a "
                           "judge's scale, or clear", code=2)
        ratings.rate(ids, None if rating == "clear" else rating)
        print(f"{'Cleared the rating of' if rating == 'clear' else f'Rated {rating}:'} {len(ids)} trajectories")
    from cascade_studio.services import events

    events.publish(events.TRAJECTORIES, ws)
    return 0


def _is_score(ws, text: str) -> bool:
    """A number, or a value of a judge's scale ("partial" on a "fail,partial,pass" rubric)."""
    from cascade_studio.store.judges import JudgeRepository

    try:
        float(text)
    except ValueError:
        return any(text in [v.lower() for v in j.scale_values] for j in JudgeRepository(ws).list())
    return True
