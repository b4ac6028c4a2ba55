"""Evaluation on recorded outputs of two models, checked against a computation written here,
independently of cascade_studio.core.agreement; plus history, drift, policy export and the CLI."""

import asyncio
import gzip
import json
import math
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services import trajectory_io as tio
from cascade_studio.services.evaluation import drift_warning, evaluate, history
from cascade_studio.services.policy import export_policy
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BFCL = ROOT / "resources" / "bfcl"


def tiers(url="http://127.0.0.1:9/v1"):
    return [Tier(tier=1, model="gpt-4.1-nano", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("0.1"),
                 output_price=Decimal("0.4")),
            Tier(tier=2, model="gpt-4o", base_url=url, provider=Provider.SANDBOX, input_price=Decimal("2.5"),
                 output_price=Decimal("10"))]


def recorded_workspace(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    TierRepository(ws).replace_all(tiers())
    for f in ("BFCL_v4_multiple.json", "BFCL_v4_irrelevance.json"):
        import_tasks(ws, BFCL / f)
    for tier, name in ((tiers()[0], "recorded_tier1_gpt-4.1-nano"), (tiers()[1], "recorded_tier2_gpt-4o")):
        plain = tmp_path / f"{name}.jsonl"
        plain.write_bytes(gzip.decompress((DATA / f"{name}.jsonl.gz").read_bytes()))
        assert tio.import_native(ws, plain, tier).added == 40
    return ws


def independent_figures(tmp_path):
    """Straight from the files: tool-name multisets, exact argument dicts, BFCL accuracy."""
    def load(name):
        rows = {}
        for line in gzip.decompress((DATA / f"{name}.jsonl.gz").read_bytes()).decode().splitlines():
            row = json.loads(line)
            message = row["response"]["choices"][0]["message"]
            calls = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                     for c in message.get("tool_calls") or []]
            rows[row["task_id"]] = (row["category"], calls, message.get("content"))
        return rows

    student, teacher = load("recorded_tier1_gpt-4.1-nano"), load("recorded_tier2_gpt-4o")
    answers = {}
    for line in (BFCL / "BFCL_v4_multiple.possible_answer.json").read_text().splitlines():
        row = json.loads(line)
        answers[row["id"]] = [{k.replace(".", "_"): v for k, v in call.items()} for call in row["ground_truth"]]

    def same_number(a, b):
        return isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
            and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)

    def bfcl_ok(calls, expected):
        if expected == []:
            return not calls
        if len(calls) != len(expected):
            return False
        (name, params), = expected[0].items()
        got_name, args = calls[0]
        if got_name != name or any(k not in params for k in args):
            return False
        for k, options in params.items():
            if k not in args:
                if "" not in options:
                    return False
            elif not any(o != "" and (args[k] == o or same_number(args[k], o)
                                      or (isinstance(o, str) and isinstance(args[k], str)
                                          and "".join(ch for ch in o.lower() if ch.isalnum())
                                          == "".join(ch for ch in args[k].lower() if ch.isalnum())))
                         for o in options):
                return False
        return True

    tool_agree = sum(Counter(n for n, _ in teacher[t][1]) == Counter(n for n, _ in student[t][1]) for t in teacher)
    multiple = [t for t in teacher if teacher[t][0] == "multiple"]
    acc_t = sum(bfcl_ok(teacher[t][1], answers[t]) for t in multiple)
    acc_s = sum(bfcl_ok(student[t][1], answers[t]) for t in multiple)
    irrelevance = [t for t in teacher if teacher[t][0] == "irrelevance"]
    acc_t += sum(not teacher[t][1] for t in irrelevance)
    acc_s += sum(not student[t][1] for t in irrelevance)
    return {"tasks": len(teacher), "tool_agreement": tool_agree / len(teacher),
            "accuracy_teacher": acc_t / len(teacher), "accuracy_student": acc_s / len(teacher)}


def test_figures_match_an_independent_computation(tmp_path):
    ws = recorded_workspace(tmp_path)
    expected = independent_figures(tmp_path)
    t1, t2 = tiers()
    task_ids = [r[0] for r in ws.conn.execute("SELECT DISTINCT task_id FROM trajectories ORDER BY task_id")]
    report = asyncio.run(evaluate(ws, t2, t1, task_ids, SecretStore(), use_embeddings=False))
    overall = report.summary["overall"]
    assert overall["tasks"] == expected["tasks"] == 40
    assert overall["tool_agreement"] == expected["tool_agreement"]
    assert overall["accuracy"]["teacher"] == expected["accuracy_teacher"]
    assert overall["accuracy"]["student"] == expected["accuracy_student"]
    assert set(report.summary["categories"]) == {"multiple", "irrelevance"}
    assert report.similarity_method.startswith("offline")
    assert overall["kl"] is not None and overall["kl"] >= 0
    ws.close()


def test_history_and_drift(tmp_path):
    ws = recorded_workspace(tmp_path)
    t1, t2 = tiers()
    ids = [r[0] for r in ws.conn.execute("SELECT DISTINCT task_id FROM trajectories")]
    first = asyncio.run(evaluate(ws, t2, t1, ids, SecretStore(), use_embeddings=False))
    # a teacher whose model changed has no answers of its own yet: the old model's are not used
    later = asyncio.run(evaluate(ws, t2.replace(model="gpt-5"), t1, ids, SecretStore(), use_embeddings=False))
    assert later.results == [] and later.missing == len(ids) and later.evaluation_id is None
    assert later.to_json()["teacher"]["generation"] != first.to_json()["teacher"]["generation"]
    from cascade_studio.store.evaluations import record

    record(ws, teacher_tier=2, teacher_model="gpt-5", student_tier=1, student_model=t1.model, category=None,
           tasks=len(first.results), agreement=first.summary["overall"]["agreement"], metrics=first.summary)
    rows = history(ws, 1)
    assert len(rows) == 2 and rows[0]["agreement"] == rows[1]["agreement"]
    warning = drift_warning(ws, 1, level=0.99)
    assert "below your alert level" in warning and "changed from gpt-4o to gpt-5" in warning
    assert drift_warning(ws, 1, level=0.01) is None
    ws.close()


async def test_embeddings_from_the_tier_endpoint(sandbox, tmp_path):
    ws = Workspace.open(tmp_path / "w")
    t1, t2 = (t.replace(base_url=sandbox.base_url) for t in tiers())
    TierRepository(ws).replace_all([t1, t2])
    import_tasks(ws, BFCL / "BFCL_v4_irrelevance.json")
    from cascade_studio.services.collector import select_task_ids

    ids = select_task_ids(ws, limit=8)
    report = await evaluate(ws, t2, t1, ids, SecretStore(), collect=True)
    assert report.similarity_method.startswith("embeddings") and report.missing == 0
    assert report.summary["overall"]["reasoning_similarity"] is not None or \
        report.summary["overall"]["answer_similarity"] is not None
    ws.close()


def test_policy_export_and_snippet_runs(tmp_path, sandbox_thread):
    t1, t2 = (t.replace(base_url=sandbox_thread.base_url) for t in tiers())
    target = tmp_path / "policy.json"
    snippet = export_policy([t1.replace(threshold=0.5), t2], target)
    doc = json.loads(target.read_text())
    assert [t["threshold"] for t in doc["tiers"]] == [0.5, None]
    assert doc["tiers"][1]["role"] == "teacher" and "sk-" not in target.read_text()
    proc = subprocess.run([sys.executable, str(snippet), "What is the weather in Paris?"], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "CASCADE_STUDIO_TIER1_API_KEY": "k",
                                                       "CASCADE_STUDIO_TIER2_API_KEY": "k"})
    assert proc.returncode == 0, proc.stderr
    assert "answered by tier" in proc.stdout


def test_cli_evaluate_and_policy(tmp_path, capsys, sandbox_thread):
    from cascade_studio.cli import main

    ws = tmp_path / "w"
    assert main(["-w", str(ws), "demo", "--no-gui", "--once"]) == 0
    for n in ("1", "2", "3"):
        assert main(["-w", str(ws), "tiers", "set", n, "--base-url", sandbox_thread.base_url]) == 0
    capsys.readouterr()
    assert main(["-w", str(ws), "evaluate", "--student", "1", "--category", "multiple", "--limit", "12", "--collect",
                 "--target-rate", "0.25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("tasks", "tool_agreement", "args_agreement", "answer_agreement", "accuracy"):
        assert key in out["overall"]
    assert out["overall"]["tasks"] == 12 and "multiple" in out["categories"]
    assert out["calibration"]["escalation_rate"] == 0.25
    assert main(["-w", str(ws), "evaluate", "--student", "3"]) == 2
    assert main(["-w", str(ws), "policy", "export", str(tmp_path / "p.json")]) == 0
    assert (tmp_path / "p_apply.py").exists()
