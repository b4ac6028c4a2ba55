"""`evaluate`: compare a student tier with the teacher (agreement, accuracy, KL, threshold)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cascade_studio.cli.common import CliError, add_task_selection, open_ws, print_json, tier_or_teacher


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="compare a student tier with the teacher (agreement, accuracy, KL)")
    ev.add_argument("--teacher", type=int, help="default: the top tier")
    ev.add_argument("--student", type=int, help="the student tier (required but with --history)")
    add_task_selection(ev)
    ev.add_argument("--dataset", type=int, metavar="ID",
                    help="evaluate on this dataset's validation split (default, when a dataset exists and neither "
                         "--category nor --limit is given: the newest dataset's split)")
    ev.add_argument("--all-tasks", action="store_true", help="ignore datasets: evaluate on all (or --category) tasks")
    ev.add_argument("--collect", action="store_true", help="collect missing trajectories first")
    ev.add_argument("--no-embeddings", action="store_true",
                    help="use the offline similarity, not the embeddings endpoint")
    ev.add_argument("--temperature", type=float, default=2.0, help="temperature T of the KL divergence")
    ev.add_argument("--target-rate", type=float, help="suggest the threshold that escalates this share of tasks")
    ev.add_argument("--target-quality", type=float, help="suggest the lowest threshold that reaches this quality")
    ev.add_argument("--per-task", action="store_true",
                    help="with --json: add per_task verdicts (task_id, category, teacher_correct, student_correct, "
                         "tool_agreement, args_agreement)")
    ev.add_argument("--min-agreement", type=float, metavar="X",
                    help="promotion gate: exit 3 when the student's agreement with the teacher is below X (0-1)")
    ev.add_argument("--min-accuracy", type=float, metavar="Y",
                    help="promotion gate: exit 3 when the student's accuracy (tasks with expected answers) is below Y")
    ev.add_argument("--mode", choices=["steps", "episodes", "both"],
                    help="agent episodes: step agreement (teacher-forced), episode success (free-running), or both "
                         "(default: both when the tasks include episodes)")
    ev.add_argument("--compare-generations", action="store_true",
                    help="compare the student's current generation (model, endpoint, prompt, temperature) with its "
                         "previous one, both against the teacher, on the tasks both answered (recorded answers; "
                         "--dataset, --category or --limit narrow the tasks)")
    ev.add_argument("--previous", metavar="GENERATION", help="with --compare-generations: this generation id "
                    "instead of the one before the current")
    ev.add_argument("--history", action="store_true",
                    help="list past evaluations (of --student, when given) with the generations they measured")
    ev.add_argument("--judge", metavar="NAME",
                    help="grade answers that are not tool calls, and episodes without a state check or expected "
                         "answer, with this judge (see `judge list`); verdicts are stored and never paid twice")
    ev.add_argument("--judge-checked", action="store_true",
                    help="with --judge: also judge episodes that have a state check, and report the judge's "
                         "agreement with the checks")
    ev.add_argument("--judge-batch", action="store_true",
                    help="with --judge: send the judge's requests through the Batch API (half price; waits for it)")
    ev.add_argument("--dry-run", action="store_true",
                    help="with --judge: estimate what judging would cost and send nothing (no embeddings either)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cascade_studio.core.evaluation import threshold_for_quality, threshold_for_rate
    from cascade_studio.services.collector import select_task_ids
    from cascade_studio.services.datasets import validation_task_ids
    from cascade_studio.services.evaluation import evaluate
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.tiers import TierRepository

    with open_ws(args) as ws:
        if args.history:
            return _history(ws, args)
        if args.student is None:
            raise CliError("give --student N (the tier to compare with the teacher), or --history", code=2)
        tiers = TierRepository(ws).list()
        teacher = tier_or_teacher(tiers, args.teacher)
        student = next((t for t in tiers if t.tier == args.student), None)
        if teacher is None or student is None:
            raise CliError(f"no such tier (teacher {args.teacher or 'top'}, student {args.student}); see `tiers list`")
        if teacher.tier == student.tier:
            raise CliError("the student must be another tier than the teacher", code=2)
        judge = _judge(ws, args)
        if args.compare_generations:
            return _compare_generations(ws, args, teacher, student)
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
                                      use_embeddings=not (args.no_embeddings or args.dry_run),
                                      temperature=args.temperature, category=args.category,
                                      record=not args.dry_run))
        if not report.results:
            raise CliError(f"no task has trajectories of both tier {teacher.tier} and tier {student.tier}; "
                           "add --collect to collect them")
        out = report.to_json()
        from cascade_studio.services.agent.evaluation import evaluate_agents

        calibrate = (("rate", args.target_rate) if args.target_rate is not None else
                     ("quality", args.target_quality) if args.target_quality is not None else None)
        if judge is not None:
            from cascade_studio.services.judged_evaluation import judged_answer_agreement

            out["judged"] = asyncio.run(judged_answer_agreement(ws, judge, teacher, student, report.results,
                                                                SecretStore(), dry_run=args.dry_run,
                                                                batch=args.judge_batch))
            if not args.per_task:
                out["judged"].pop("per_task")
        agents = asyncio.run(evaluate_agents(ws, teacher, student, task_ids, SecretStore(), mode=args.mode or "both",
                                             collect=args.collect, calibrate=calibrate, judge=judge,
                                             judge_checked=args.judge_checked, dry_run=args.dry_run,
                                             judge_batch=args.judge_batch))
        if agents["episode_tasks"]:
            out.update(agents)
        elif args.mode:
            print("No agent episodes among these tasks: --mode has nothing to measure.", file=sys.stderr)
        if judge is not None:
            from cascade_studio.services.judged_evaluation import judge_totals

            out["judge_totals"] = judge_totals(out)
        method = student.confidence_method.value
        confs = [r.student_confidence.get(method) for r in report.results]
        student_ok = [r.agrees for r in report.results]
        teacher_ok = [True] * len(student_ok)
        if args.target_rate is not None:
            out["calibration"] = threshold_for_rate(confs, student_ok, teacher_ok, args.target_rate).to_json()
        elif args.target_quality is not None:
            out["calibration"] = threshold_for_quality(confs, student_ok, teacher_ok, args.target_quality).to_json()
        if args.per_task:
            out["per_task"] = [{"task_id": r.task_id, "category": r.category, "teacher_correct": r.teacher_correct,
                                "student_correct": r.student_correct, "tool_agreement": r.tool_agree,
                                "args_agreement": r.args_agree} for r in report.results]
        shortfalls = promotion_shortfalls(out["overall"], args.min_agreement, args.min_accuracy)
        if args.min_agreement is not None or args.min_accuracy is not None:
            out["gate"] = {"passed": not shortfalls, "reasons": shortfalls,
                           "min_agreement": args.min_agreement, "min_accuracy": args.min_accuracy}
        if args.json:
            print_json(out)
        else:
            _print_report(out, report, teacher, student)
            _print_agents(out)
            _print_judged(out)
        if shortfalls:
            print(f"Promotion gate: tier {student.tier} ({student.model}) falls short: " + "; ".join(shortfalls),
                  file=sys.stderr)
            return 3
        return 0


def _judge(ws, args: argparse.Namespace):
    if args.judge is None:
        if args.dry_run or args.judge_checked or args.judge_batch:
            raise CliError("--dry-run, --judge-checked and --judge-batch go with --judge NAME", code=2)
        return None
    if args.dry_run and args.collect:
        raise CliError("--dry-run estimates the judge's cost from recorded answers; run --collect without it first",
                       code=2)
    from cascade_studio.store.judges import JudgeRepository

    judge = JudgeRepository(ws).get(args.judge)
    if judge is None:
        raise CliError(f"no judge {args.judge!r}; see `cascade-studio judge list`")
    return judge


def _print_judged(out: dict) -> None:
    judged = out.get("judged")
    if judged is not None:
        if judged["text_tasks"]:
            print(f"Answer agreement by {judged['basis']}: {_pct(judged['answer_agreement'])} on "
                  f"{judged['judged_tasks']} of {judged['text_tasks']} text answers (text match on the same: "
                  f"{_pct(judged['text_match_on_judged_tasks'])}); {judged['failed']} failed")
        else:
            print("Answer agreement by judge: no task where both answered in text")
    episode_judge = (out.get("episodes") or {}).get("judge")
    if episode_judge is not None and "note" in episode_judge:
        print(f"Episodes: not judged ({episode_judge['note']})")
    elif episode_judge is not None:
        print(f"Episodes judged by {episode_judge['basis']}: {episode_judge['episodes_judged']}"
              + (f" ({episode_judge['failed']} failed: {episode_judge['last_error']})" if episode_judge["failed"]
                 else ""))
        check = episode_judge.get("against_state_checks")
        if check:
            print(f"  against the state checks on {check['episodes']} episodes: agreement {_pct(check['agreement'])}"
                  f", judged success {_pct(check['judged_success'])}, checked {_pct(check['check_success'])}")
    totals = out.get("judge_totals")
    if totals is not None:
        word = "would cost about" if totals["estimate"] else "cost"
        print(f"Judging {word} ${totals['cost_usd']}: {totals['requests']} requests"
              f"{' to send' if totals['estimate'] else ' sent'}, {totals['reused']} verdicts reused"
              + (f", {totals['cost_unknown_requests']} of unknown cost" if totals["cost_unknown_requests"] else ""))


def _print_agents(out: dict) -> None:
    steps = out.get("step_agreement")
    if steps is not None:
        overall, first = steps["overall"], steps["first_divergence"]
        if not overall["steps"]:
            print("Step agreement: no teacher-forced steps yet (add --collect to ask the student at every step of "
                  "the teacher's episodes)")
        else:
            print(f"Step agreement (teacher-forced, {overall['steps']} steps): {_pct(overall['agreement'])}; "
                  + ", ".join(f"step {int(k) + 1} {_pct(v['agreement'])}" for k, v in steps["by_step"].items()))
            if first["diverged"]:
                print(f"  {first['diverged']} of {first['episodes']} episodes diverge; most often first at step "
                      f"{first['most_common_step'] + 1}")
    episodes = out.get("episodes")
    if episodes is not None and episodes["tasks"]:
        from cascade_studio.core.episode_eval import episode_lines

        for line in episode_lines(episodes):
            print(line)
    elif episodes is not None:
        print("Episodes: the student has no episodes of these tasks yet (add --collect to run them)")


def promotion_shortfalls(overall: dict, min_agreement: float | None, min_accuracy: float | None) -> list[str]:
    """Why the student does not meet the bar (empty: it does)."""
    reasons = []
    agreement = overall.get("agreement")
    if min_agreement is not None and (agreement is None or agreement < min_agreement):
        reasons.append(f"agreement {_fmt(agreement)} < {min_agreement:.1%}")
    accuracy = (overall.get("accuracy") or {}).get("student")
    if min_accuracy is not None and (accuracy is None or accuracy < min_accuracy):
        reasons.append(f"accuracy {_fmt(accuracy)} < {min_accuracy:.1%}" if accuracy is not None
                       else "no accuracy (no task with an expected answer)")
    return reasons


def _fmt(value) -> str:
    return "unknown" if value is None else f"{value:.1%}"


def _print_report(out: dict, report, teacher, student) -> None:
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


def _pct(value) -> str:
    return "  —  " if value is None else f"{value:5.0%}"


def _history(ws, args: argparse.Namespace) -> int:
    from cascade_studio.services.evaluation import history

    rows = history(ws, args.student)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("No evaluations yet; run `cascade-studio evaluate --student N --collect`.")
    for r in rows:
        print(f"{r['id']:>4}  {r['created_at']}  tier {r['student_tier']} {r['student_model']} "
              f"[{r['student_generation'] or 'unknown'}] vs tier {r['teacher_tier']} {r['teacher_model']} "
              f"[{r['teacher_generation'] or 'unknown'}]  {r['tasks']} tasks  agreement {_fmt(r['agreement'])}")
    return 0


def _compare_generations(ws, args: argparse.Namespace, teacher, student) -> int:
    from cascade_studio.services.collector import select_task_ids
    from cascade_studio.services.datasets import validation_task_ids
    from cascade_studio.services.generation_compare import compare_generations
    from cascade_studio.services.secrets import SecretStore

    task_ids = None
    if args.dataset is not None:
        split = validation_task_ids(ws, args.dataset)
        if split is None:
            raise CliError(f"dataset {args.dataset} does not exist or has no validation split")
        task_ids = split[1]
    elif args.category or args.limit:
        task_ids = select_task_ids(ws, args.category, args.limit)
    comparison = asyncio.run(compare_generations(ws, teacher, student, SecretStore(), task_ids=task_ids,
                                                 previous=args.previous, use_embeddings=not args.no_embeddings,
                                                 temperature=args.temperature))
    if args.json:
        print_json(comparison.to_json())
        return 0
    print(comparison.sentence())
    for label, side in (("previous", comparison.previous), ("current", comparison.current)):
        o = side.summary["overall"]
        acc = o["accuracy"]
        print(f"  {label:<8} {side.generation}  {side.model:<32} agreement {_pct(o['agreement'])}  tool "
              f"{_pct(o['tool_agreement'])}  args {_pct(o['args_agreement'])}"
              + (f"  accuracy {_pct(acc['student'])}" if acc else ""))
    return 0
