"""Issue 30 on the sandbox, end to end through the CLI: judges as workspace entries, judged answer
agreement and episode success, verdicts never paid twice, pairwise in both orders, unparseable never
a pass, and calibration against people's labels (kappa checked by hand and by scikit-learn)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade_studio.cli import main
from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier
from cascade_studio.sandbox.app import SandboxConfig
from cascade_studio.sandbox.server import SandboxThread
from cascade_studio.services.demo import DEMO_ENVIRONMENT, DEMO_TIERS, add_demo_environment
from cascade_studio.services.paths import resources_dir
from cascade_studio.store.environments import EnvironmentRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
PLAIN = ["Explain how compound interest differs from simple interest for a savings account.",
         "Summarise why unit tests help when refactoring a large codebase.",
         "Describe the water cycle in a few sentences for a school project."]


def cli(capsys, ws, *args) -> tuple[int, str, str]:
    code = main(["-w", str(ws), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_json(capsys, ws, *args) -> dict:
    code, out, err = cli(capsys, ws, *args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """A workspace on the sandbox: the travel desk's 16 episode tasks, copies of the hotel tasks
    without their state check and expected answer, and three plain questions (free-text answers)."""
    thread = SandboxThread(SandboxConfig(latency_scale=0, judge_error_rate=0.0))
    thread.start()
    sandbox = thread.server
    desk_url, desk_proc = _http_desk()
    ws = tmp_path_factory.mktemp("judges") / "ws"
    with Workspace.open(ws) as w:
        TierRepository(w).replace_all([
            Tier(tier=n, name=name, provider=Provider.SANDBOX, base_url=sandbox.base_url, model=model,
                 max_concurrency=16, threshold=threshold, confidence_method=ConfidenceMethod.TOOL_NAME_PROB)
            for n, name, model, threshold in DEMO_TIERS])
        add_demo_environment(w)  # the tasks; the desk itself is served once over HTTP (a desk per session)
        EnvironmentRepository(w).put(DEMO_ENVIRONMENT, "http", {"url": desk_url, "header_keys": [],
                                                                 "allow_insecure": False})
    rows = [json.loads(line) for line in (resources_dir() / "demo" / "travel_desk_tasks.jsonl").read_text().splitlines()]
    copies = [{**r, "id": r["id"] + "-nocheck", "category": "hotels-nocheck", "expected": None}
              for r in rows if r["category"] == "travel-hotels"][:2]
    plain = [{"id": f"plain-{i}", "category": "plain", "messages": [{"role": "user", "content": p}], "tools": []}
             for i, p in enumerate(PLAIN)]
    extra = ws.parent / "extra.jsonl"
    extra.write_text("".join(json.dumps(r) + "\n" for r in [*copies, *plain]))
    assert main(["-w", str(ws), "tasks", "import", str(extra)]) == 0
    for name, kind, model in (("ep", "rubric", "judge-sim-0"), ("ref", "reference", "judge-sim-0"),
                              ("pair", "pairwise", "judge-sim-0"), ("babble", "reference", "judge-sim-babble"),
                              ("noisy", "rubric", "judge-sim-20")):
        assert main(["-w", str(ws), "judge", "add", name, "--tier", "3", "--model", model, "--kind", kind,
                     "--input-price", "2.5", "--output-price", "10"]) == 0
    yield ws, sandbox
    thread.stop()
    desk_proc.terminate()
    desk_proc.wait(timeout=10)


def _http_desk() -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cascade_studio.sandbox.travel_desk", "--http", "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"http://127.0.0.1:{port}/mcp", proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    pytest.fail("the travel desk did not start listening")


def _episodes(capsys, ws, category: str, judge: str = "ep", *extra: str) -> dict:
    return cli_json(capsys, ws, "evaluate", "--student", "1", "--all-tasks", "--category", category,
                    "--no-embeddings", "--mode", "episodes", "--judge", judge, *extra)


def test_episode_success_by_judge_equals_the_state_checks(desk, capsys):
    ws, sandbox = desk
    for category in ("travel-hotels", "hotels-nocheck"):
        assert cli(capsys, ws, "evaluate", "--student", "1", "--all-tasks", "--category", category,
                   "--no-embeddings", "--mode", "episodes", "--collect")[0] == 0
    checked = _episodes(capsys, ws, "travel-hotels", "ep", "--judge-checked")["episodes"]
    against = checked["judge"]["against_state_checks"]
    assert against["episodes"] == 8 and against["agreement"] == 1.0  # error rate 0: the judge equals the checks
    assert against["judged_success"] == against["check_success"]
    assert checked["teacher"]["judged_by"] == {"check": 4}  # a state check outranks the judge
    # the same requests without a check or an expected answer: the judge is the basis
    copies = _episodes(capsys, ws, "hotels-nocheck")["episodes"]
    for side in ("teacher", "student"):
        assert copies[side]["judged_by"] == {"judge": 2} and copies[side]["success_rate"] is not None
    judge = copies["judge"]
    assert judge["judge"] == "ep" and judge["template_version"] and judge["unparseable"] == 0
    assert judge["basis"].startswith("judge ep (judge-sim-0, template ")
    # a second run sends no request: every verdict is stored
    logged, sent = len(sandbox.sandbox.judge_log), sandbox.sandbox.request_count
    again = _episodes(capsys, ws, "hotels-nocheck")
    assert len(sandbox.sandbox.judge_log) == logged and sandbox.sandbox.request_count == sent
    assert again["judge_totals"]["requests"] == 0 and again["judge_totals"]["reused"] == 4
    assert again["episodes"]["student"]["success_rate"] == copies["student"]["success_rate"]


def test_every_trial_of_an_episode_is_judged(desk, capsys):
    """With several trials each episode gets its own verdict (not only each side's latest), and the
    verdicts already stored are not asked for again."""
    ws, sandbox = desk
    for tier in ("1", "3"):
        code, _, err = cli(capsys, ws, "collect", "--tier", tier, "--category", "hotels-nocheck", "--trials", "2")
        assert code == 0, err
    first = _episodes(capsys, ws, "hotels-nocheck")
    episodes = first["episodes"]
    for side in ("teacher", "student"):
        assert episodes[side]["episodes"] == 4 and episodes[side]["judged_by"] == {"judge": 4}
        assert set(episodes[side]["success_by_trial"]) == {"0", "1"}
    assert episodes["judge"]["episodes_judged"] == 8
    logged = len(sandbox.sandbox.judge_log)
    again = _episodes(capsys, ws, "hotels-nocheck")
    assert len(sandbox.sandbox.judge_log) == logged and again["judge_totals"]["reused"] == 8
    assert again["episodes"]["student"]["trials"] == episodes["student"]["trials"]


def test_answer_agreement_pairwise_unparseable_and_cost(desk, capsys):
    ws, sandbox = desk
    base = ["evaluate", "--student", "1", "--all-tasks", "--category", "plain", "--no-embeddings"]
    assert cli(capsys, ws, *base, "--collect")[0] == 0
    # --dry-run: an estimate, nothing sent
    logged = len(sandbox.sandbox.judge_log)
    dry = cli_json(capsys, ws, *base, "--judge", "ref", "--dry-run")
    assert len(sandbox.sandbox.judge_log) == logged
    assert dry["judge_totals"]["estimate"] is True and dry["judge_totals"]["requests"] == 3
    assert float(dry["judge_totals"]["cost_usd"]) > 0
    # the reference judge: the student's shorter answers say what the teacher's say; text match does not see it
    out = cli_json(capsys, ws, *base, "--judge", "ref", "--per-task")
    judged = out["judged"]
    assert judged["text_tasks"] == 3 and judged["judged_tasks"] == 3 and judged["answer_agreement"] == 1.0
    assert judged["text_match_on_judged_tasks"] == 0.0 and out["overall"]["answer_agreement"] == 0.0
    assert judged["requests"] == 3 and judged["structured_outputs"] is True
    assert float(out["judge_totals"]["cost_usd"]) > 0 and out["judge_totals"]["cost_unknown_requests"] == 0
    assert judged["agreement_mixed"] == {"value": 1.0, "judged": 3, "matched": 0,
                                         "note": "text answers judged, tool calls matched exactly"}
    assert len(sandbox.sandbox.judge_log) == logged + 3
    # pairwise: every pair asked in both orders
    logged = len(sandbox.sandbox.judge_log)
    pair = cli_json(capsys, ws, *base, "--judge", "pair")["judged"]
    asked = sandbox.sandbox.judge_log[logged:]
    assert pair["requests"] == 6 and len(asked) == 6
    firsts = {e["prompt"] for e in asked}
    assert len(firsts) == 6  # three pairs, each in two orders
    assert pair["answer_agreement"] is not None
    # an answer without a verdict is unparseable: counted, named, never a pass
    babble = cli_json(capsys, ws, *base, "--judge", "babble")["judged"]
    assert babble["unparseable"] == 3 and babble["judged_tasks"] == 0 and babble["answer_agreement"] is None
    assert babble["agreement_mixed"]["judged"] == 0
    # trade-offs with quality = judged: the students' text answers graded against the teacher's
    assert cli(capsys, ws, "collect", "--tier", "2", "--category", "plain")[0] == 0
    matched = cli_json(capsys, ws, "whatif", "--category", "plain")
    judged_whatif = cli_json(capsys, ws, "whatif", "--category", "plain", "--judge", "ref")
    assert matched["quality_basis"] == "agreement" and judged_whatif["quality_basis"] == "judged"
    assert {t["tier"]: t["quality"] for t in judged_whatif["tiers"]}[1] == 1.0
    qj = judged_whatif["quality_judge"]
    assert qj["judge"] == "ref" and qj["tiers"]["1"] == {"text_tasks": 3, "judged": 3, "matched": 0}
    # tier 1's verdicts were stored by `evaluate --judge ref`, and tier 2 answered word for word as tier 1:
    # the same inputs, the same stored verdicts
    assert qj["reused"] == 6 and qj["requests"] == 0
    # the text report names the judge, its template version and the unparseable count
    code, text, _ = cli(capsys, ws, *base, "--judge", "babble")
    assert code == 0 and "judge babble (judge-sim-babble, template " in text and "3 unparseable" in text
    assert "3 verdicts reused" in text


def _label_episodes(capsys, ws) -> dict[int, bool]:
    """People's labels: each travel episode rated (or curated) as its state check found."""
    with Workspace.open(ws) as w:
        truth = {tid: bool(ok) for tid, ok in w.conn.execute(
            "SELECT id, check_passed FROM trajectories WHERE status = 'ok' AND check_passed IS NOT NULL")}
    good = [i for i, ok in truth.items() if ok]
    bad = [i for i, ok in truth.items() if not ok]
    half = len(good) // 2
    assert cli(capsys, ws, "trajectories", "rate", *map(str, good[:half]), "good")[0] == 0
    assert cli(capsys, ws, "trajectories", "curate", *map(str, good[half:]), "--accept")[0] == 0
    assert cli(capsys, ws, "trajectories", "rate", *map(str, bad), "bad")[0] == 0
    return truth


def test_strategies_judge_quality_as_whatif_does(desk, capsys):
    """`strategies --judge`: the cascade's quality on the tasks every tier answered is the judged
    figure `whatif --judge` gives on them, from the verdicts already stored (nothing paid again)."""
    ws, sandbox = desk
    matched = cli_json(capsys, ws, "strategies")
    logged = len(sandbox.sandbox.judge_log)
    judged = cli_json(capsys, ws, "strategies", "--judge", "ref")
    assert len(sandbox.sandbox.judge_log) == logged  # every verdict was stored by the runs before
    rows = {r["strategy"]: r for r in judged["rows"]}
    plain = {r["strategy"]: r for r in matched["rows"]}
    assert rows["cascade"]["quality_basis"] == "judged" and plain["cascade"]["quality_basis"] == "agreement"
    whatif = cli_json(capsys, ws, "whatif", "--judge", "ref")
    assert whatif["quality_basis"] == "judged" and rows["cascade"]["tasks"] == whatif["tasks"]
    assert rows["cascade"]["quality"] == whatif["cascade"]["quality"]
    qj = judged["quality_judge"]
    assert qj["applied"] and qj["judge"] == "ref" and qj["requests"] == 0 and qj["reused"] > 0
    code, text, _ = cli(capsys, ws, "strategies", "--judge", "ref")
    assert code == 0 and "quality judged by judge ref" in text
    assert cli(capsys, ws, "strategies", "--dry-run")[0] == 2
    assert cli(capsys, ws, "strategies", "--judge", "nobody")[0] != 0


def test_calibration_against_people(desk, capsys):
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    ws, _ = desk
    for category in ("travel-flights", "travel-trips"):  # with travel-hotels: 24 episodes with a state check
        assert cli(capsys, ws, "evaluate", "--student", "1", "--all-tasks", "--category", category,
                   "--no-embeddings", "--mode", "episodes", "--collect")[0] == 0
    proposed = cli_json(capsys, ws, "judge", "sample", "--n", "5", "--category", "travel-flights")
    assert len(proposed["ids"]) == 5 and proposed["unlabelled"] == 8  # 4 tasks, 2 tiers
    truth = _label_episodes(capsys, ws)
    assert len(truth) == 24
    assert cli_json(capsys, ws, "judge", "sample", "--category", "travel-flights")["unlabelled"] == 0 and 0 < sum(truth.values()) < len(truth)
    exact = cli_json(capsys, ws, "judge", "calibrate", "ep")
    assert exact["judged"] == len(truth) and exact["accuracy"] == 1.0 and exact["kappa"] == 1.0
    assert exact["disagreements"] == [] and not exact["trusted"]
    assert exact["warnings"] == ["only 24 labels were judged; at least 30 are needed before the judge is trusted"]
    noisy = cli_json(capsys, ws, "judge", "calibrate", "noisy")
    rows = [r for r in noisy["per_label"] if r["verdict_passes"] is not None]
    people = [r["label_passes"] for r in rows]
    judge = [r["verdict_passes"] for r in rows]
    assert people == [truth[r["trajectory_id"]] for r in rows]
    # by hand: observed agreement against the agreement two raters with these margins reach by chance
    n = len(rows)
    tp = sum(p and j for p, j in zip(people, judge, strict=True))
    tn = sum(not p and not j for p, j in zip(people, judge, strict=True))
    observed = (tp + tn) / n
    chance = (sum(people) * sum(judge) + (n - sum(people)) * (n - sum(judge))) / n ** 2
    assert 0 < n - tp - tn < n  # the 20% judge got some wrong
    assert noisy["kappa"] == pytest.approx((observed - chance) / (1 - chance), abs=1e-12)
    assert noisy["accuracy"] == pytest.approx(observed)
    assert len(noisy["disagreements"]) == n - tp - tn
    # and scikit-learn agrees
    assert noisy["kappa"] == pytest.approx(cohen_kappa_score(people, judge), abs=1e-12)
    assert noisy["confusion_matrix"]["matrix"] == confusion_matrix(people, judge, labels=[False, True]).tolist()
    code, text, err = cli(capsys, ws, "judge", "calibrate", "noisy", "--min-kappa", "0.99")
    assert code == 0 and "kappa" in text and "below 0.99" in err


def test_judge_entries_on_the_cli(tmp_path, capsys, monkeypatch):
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "judge", "add", "gpt-ref", "--model", "gpt-4o", "--base-url",
               "https://api.openai.com/v1", "--input-price", "2.5", "--output-price", "10")[0] == 0
    code, _, err = cli(capsys, ws, "judge", "add", "gpt-ref", "--model", "gpt-4o-mini")
    assert code == 2 and "exists" in err
    code, _, err = cli(capsys, ws, "judge", "add", "rub", "--model", "m", "--kind", "rubric", "--scale", "only")
    assert code == 2 and "scale:" in err
    listed = cli_json(capsys, ws, "judge", "list")
    assert [j["name"] for j in listed] == ["gpt-ref"] and listed[0]["provider"] == "openai"
    assert listed[0]["api_key_env"] == "CASCADE_STUDIO_JUDGE_GPT_REF_API_KEY" and "key" not in listed[0]
    shown = cli_json(capsys, ws, "judge", "show", "gpt-ref")
    assert "{candidate}" in shown["template"] and not shown["template_edited"]
    assert shown["key"] == {"has_key": False, "source": "none", "sends_to": "https://api.openai.com:443",
                            "transport": "https"}
    monkeypatch.setenv("CASCADE_STUDIO_JUDGE_GPT_REF_API_KEY", "sk-judge-test-key")
    assert cli_json(capsys, ws, "judge", "show", "gpt-ref")["key"]["source"] == \
        "env:CASCADE_STUDIO_JUDGE_GPT_REF_API_KEY"
    assert "sk-judge-test-key" not in cli(capsys, ws, "judge", "show", "gpt-ref")[1]
    template = tmp_path / "t.txt"
    template.write_text("Same as {reference}? {candidate}\nVERDICT: pass or fail")
    code, out, _ = cli(capsys, ws, "judge", "template", "gpt-ref", "--file", str(template))
    assert code == 0 and f"-> {cli_json(capsys, ws, 'judge', 'show', 'gpt-ref')['template_version']}" in out
    assert cli(capsys, ws, "judge", "template", "gpt-ref")[1].startswith("Same as {reference}?")
    template.write_text("no inputs named")
    assert cli(capsys, ws, "judge", "template", "gpt-ref", "--file", str(template))[0] == 2
    assert cli(capsys, ws, "judge", "template", "gpt-ref", "--reset")[0] == 0
    assert cli_json(capsys, ws, "judge", "show", "gpt-ref")["template_version"] == shown["template_version"]
    assert cli(capsys, ws, "judge", "set", "gpt-ref", "--kind", "rubric", "--scale", "1-5")[0] == 0
    assert cli_json(capsys, ws, "judge", "show", "gpt-ref")["pass_at"] == "4"
    # people's labels: unknown trajectories and ratings are refused
    code, _, err = cli(capsys, ws, "trajectories", "rate", "99", "good")
    assert code == 1 and "no trajectory 99" in err
    assert cli(capsys, ws, "judge", "remove", "gpt-ref")[0] == 0 and cli_json(capsys, ws, "judge", "list") == []


async def test_a_judges_key_follows_the_tiers_rules(tmp_path, sandbox, monkeypatch):
    """Plain http to another machine is refused before anything is sent; the judge's own variable
    (or the keyring entry of its endpoint) supplies the key."""
    from cascade_studio.core.judges import Judge, JudgeKind
    from cascade_studio.services.judging import Judging
    from cascade_studio.services.secrets import SecretStore

    with Workspace.open(tmp_path / "ws") as w:
        remote = Judge("far", JudgeKind.REFERENCE, Provider.COMPATIBLE, "http://judge.example.com/v1", "m")
        with pytest.raises(Exception, match="clear text"):
            await Judging(w, remote, SecretStore()).verdicts([{"candidate": "a", "reference": "b"}])
        local = Judge("near", JudgeKind.REFERENCE, Provider.COMPATIBLE, sandbox.base_url, "judge-sim-0")
        with pytest.raises(Exception, match="CASCADE_STUDIO_JUDGE_NEAR_API_KEY"):
            await Judging(w, local, SecretStore()).verdicts([{"candidate": "a", "reference": "b"}])
        monkeypatch.setenv("CASCADE_STUDIO_JUDGE_NEAR_API_KEY", "sk-judge-test-key")
        session = Judging(w, local, SecretStore())
        assert await session.verdicts([{"candidate": "a b", "reference": "a b"}]) == ["pass"]
        assert session.totals.asked == 1


async def test_structured_outputs_or_a_parsed_answer(tmp_path, sandbox, monkeypatch):
    """A server that refuses `response_format` (400) gets plain prompts for the rest of the run and
    the verdict is read from the answer's `VERDICT:` line; `--structured off` never asks."""
    from cascade_studio.core.judges import Judge, JudgeKind, Structured
    from cascade_studio.sandbox.routes.common import ApiError
    from cascade_studio.services.judging import Judging
    from cascade_studio.services.secrets import SecretStore

    routes = sandbox.sandbox.chat_routes
    plain_validate = routes.validate_chat

    def refuse_response_format(body):
        if "response_format" in body:
            raise ApiError(400, "Invalid parameter: 'response_format' is not supported by this model.",
                           param="response_format", code="unsupported_parameter")
        plain_validate(body)

    monkeypatch.setattr(routes, "validate_chat", refuse_response_format)
    inputs = [{"question": "q", "reference": f"Booked BK-100{i} for Ana Silva.", "candidate": f"BK-100{i}, Ana Silva"}
              for i in range(3)]
    with Workspace.open(tmp_path / "ws") as w:
        judge = Judge("old", JudgeKind.REFERENCE, Provider.SANDBOX, sandbox.base_url, "judge-sim-0")
        session = Judging(w, judge, SecretStore())
        assert await session.verdicts(inputs) == ["pass"] * 3
        assert session.totals.structured is False and session.totals.failed == 0
        assert all(not e["structured"] for e in sandbox.sandbox.judge_log)  # refused requests never reached it
        strict = Judging(w, judge.replace(name="strict", structured=Structured.ON, model="judge-sim-1"), SecretStore())
        assert await strict.verdicts(inputs[:1]) == [None]  # "on": the refusal is a failure, not a fallback
        assert strict.totals.failed == 1 and "response_format" in strict.totals.last_error
        off = Judging(w, judge.replace(name="off", structured=Structured.OFF, model="judge-sim-2"), SecretStore())
        assert await off.verdicts(inputs[:1]) == ["pass"] and off.totals.structured is False


async def test_judging_through_the_batch_api(tmp_path, sandbox):
    """One batch for every judgement not stored yet, at half price; the verdicts are stored, so a
    second run creates no batch."""
    from decimal import Decimal

    from cascade_studio.core.judges import Judge, JudgeKind
    from cascade_studio.services.judging import Judging
    from cascade_studio.services.secrets import SecretStore

    inputs = [{"question": "q", "reference": f"Booked BK-100{i} for Ana Silva.", "candidate": c}
              for i, c in enumerate(["BK-1000 for Ana Silva", "BK-1001, Ana Silva", "Sorry, no booking."])]
    judge = Judge("b", JudgeKind.REFERENCE, Provider.SANDBOX, sandbox.base_url, "judge-sim-0",
                  input_price=Decimal("2.5"), output_price=Decimal("10"))
    with Workspace.open(tmp_path / "ws") as w:
        batched = Judging(w, judge, SecretStore(), batch=True, poll_s=0.2)
        assert await batched.verdicts(inputs) == ["pass", "pass", "fail"]
        assert len(sandbox.sandbox.batches) == 1 and batched.totals.asked == 3 and batched.totals.failed == 0
        assert not w.get_meta(f"judge_batch:{judge.generation}:{judge.template_version}")
        direct = Judging(w, judge.replace(model="judge-sim-1"), SecretStore())
        assert await direct.verdicts(inputs) == ["pass", "pass", "fail"]
        assert batched.totals.cost_micro * 2 == pytest.approx(direct.totals.cost_micro, abs=3)  # half price
        again = Judging(w, judge, SecretStore(), batch=True, poll_s=0.2)
        assert await again.verdicts(inputs) == ["pass", "pass", "fail"]
        assert len(sandbox.sandbox.batches) == 1 and again.totals.reused == 3


async def test_a_batch_left_behind_is_read_not_paid_again(tmp_path, sandbox, monkeypatch):
    """A run that stopped while its batch ran: the next run reads that batch's results (stored, even
    those it did not ask for) and sends a new batch only for what the old one did not hold."""
    import cascade_studio.services.judging as judging
    from cascade_studio.core.judges import Judge, JudgeKind
    from cascade_studio.services.secrets import SecretStore

    inputs = [{"question": "q", "reference": f"BK-100{i} for Ana Silva", "candidate": f"BK-100{i}, Ana Silva"}
              for i in range(3)]
    judge = Judge("b", JudgeKind.REFERENCE, Provider.SANDBOX, sandbox.base_url, "judge-sim-0")
    key = f"judge_batch:{judge.generation}:{judge.template_version}"
    make_client = judging.judge_client

    class Stopped(Exception):
        pass

    def dies_while_waiting(j, secrets):  # the first run stops once its batch is created
        client = make_client(j, secrets)

        async def stop(*args, **kwargs):
            raise Stopped

        client.batches.retrieve = stop
        return client

    with Workspace.open(tmp_path / "ws") as w:
        monkeypatch.setattr(judging, "judge_client", dies_while_waiting)
        with pytest.raises(Stopped):
            await judging.Judging(w, judge, SecretStore(), batch=True).verdicts(inputs[:2])
        monkeypatch.setattr(judging, "judge_client", make_client)
        assert w.get_meta(key) and len(sandbox.sandbox.batches) == 1
        second = judging.Judging(w, judge, SecretStore(), batch=True, poll_s=0.2)
        assert await second.verdicts(inputs[1:]) == ["pass", "pass"]
        assert len(sandbox.sandbox.batches) == 2  # the old one read, a new one for inputs[2] only
        assert not w.get_meta(key)
        third = judging.Judging(w, judge, SecretStore(), batch=True)
        assert await third.verdicts(inputs) == ["pass"] * 3 and third.totals.reused == 3  # inputs[0] too


def test_the_demo_has_simulated_judges(tmp_path):
    from cascade_studio.services.demo import prepare_demo
    from cascade_studio.store.judges import JudgeRepository

    prepare_demo(tmp_path, "http://127.0.0.1:1111/v1")
    with Workspace.open(tmp_path) as w:
        first = {j.name: j for j in JudgeRepository(w).list()}
    prepare_demo(tmp_path, "http://127.0.0.1:2222/v1")  # the next start's sandbox listens elsewhere
    with Workspace.open(tmp_path) as w:
        judges = {j.name: j for j in JudgeRepository(w).list()}
    assert set(judges) == {"sandbox-reference", "sandbox-episodes"}
    assert all(j.base_url == "http://127.0.0.1:2222/v1" and j.simulated for j in judges.values())
    assert all(judges[n].generation == first[n].generation for n in judges)  # its verdicts stay valid
