"""core.judges: verdict parsing (unparseable is never a pass), pairwise combination, templates and
their versions, scales, and the calibration figures against scikit-learn."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from cascade_studio.core.judges import (
    TIE,
    UNPARSEABLE,
    Judge,
    JudgeKind,
    cohen_kappa,
    combine_pairwise,
    confusion,
    inputs_hash,
    judge_from_spec,
    judge_to_spec,
    label_passes,
    parse_verdict,
    render,
    response_format,
    scale_values,
    validate_judge,
)
from cascade_studio.core.tiers import Provider

REF = Judge("ref", JudgeKind.REFERENCE, model="gpt-4o")
RUBRIC = Judge("rub", JudgeKind.RUBRIC, model="gpt-4o", scale="1-5")
PAIR = Judge("pair", JudgeKind.PAIRWISE, model="gpt-4o")


@pytest.mark.parametrize("text, value", [
    ('{"verdict": "pass", "reason": "same facts"}', "pass"),
    ('Sure! {"verdict": "FAIL", "reason": "wrong id"} hope that helps', "fail"),
    ("The ids match.\nVERDICT: pass", "pass"),
    ("verdict: pass\n...on reflection\nVerdict: **fail**", "fail"),
    ("It looks fine to me.", UNPARSEABLE),
    ("", UNPARSEABLE),
    (None, UNPARSEABLE),
    ('{"verdict": "maybe"}', UNPARSEABLE),
    ("VERDICT: passable", UNPARSEABLE),
])
def test_reference_verdicts_and_unparseable_is_never_a_pass(text, value):
    verdict = parse_verdict(REF, text)
    assert verdict.value == value
    assert REF.passes(verdict.value) is ({"pass": True, "fail": False}.get(value))


def test_rubric_scale_and_pass_value():
    assert scale_values("1-5") == ["1", "2", "3", "4", "5"] and scale_values(" bad, ok ,good ") == ["bad", "ok", "good"]
    assert RUBRIC.pass_value == "4" and RUBRIC.passes("4") and not RUBRIC.passes("3")
    assert RUBRIC.passes(UNPARSEABLE) is None and RUBRIC.passes("6") is None
    assert parse_verdict(RUBRIC, "VERDICT: 5").value == "5" and parse_verdict(RUBRIC, "VERDICT: 7").value == UNPARSEABLE
    assert Judge("r", JudgeKind.RUBRIC, model="m").pass_value == "pass"
    assert RUBRIC.replace(pass_at="3").passes("3")
    assert response_format(RUBRIC)["json_schema"]["schema"]["properties"]["verdict"]["enum"] == list("12345")


def test_pairwise_counts_only_when_both_orders_agree():
    assert combine_pairwise("A", "B") == "A"  # A first; swapped, the same answer is B
    assert combine_pairwise("B", "A") == "B"
    assert combine_pairwise("A", "A") == TIE  # position bias: "the first one" both times
    assert combine_pairwise("tie", "tie") == TIE and combine_pairwise("A", "tie") == TIE
    assert combine_pairwise("A", UNPARSEABLE) == TIE
    assert combine_pairwise(UNPARSEABLE, UNPARSEABLE) == UNPARSEABLE
    assert PAIR.passes("A") is None


def test_templates_markers_and_versions():
    prompt = render(REF.prompt_template, {"question": "Q?", "reference": "R", "candidate": "C {reference}"})
    assert "<<<CANDIDATE>>>\nC {reference}\n<<<END>>>" in prompt and "<<<REFERENCE>>>\nR\n<<<END>>>" in prompt
    edited = REF.replace(template="Is {candidate} like {reference}? VERDICT: pass or fail")
    assert edited.template_version != REF.template_version and edited.generation == REF.generation
    assert REF.replace(model="gpt-4o-mini").generation != REF.generation
    assert inputs_hash(JudgeKind.REFERENCE, {"candidate": "a", "reference": "b"}) != \
        inputs_hash(JudgeKind.REFERENCE, {"candidate": "b", "reference": "a"})
    assert validate_judge(REF) == []
    assert any(i.startswith("template:") for i in validate_judge(REF.replace(template="no fields")))
    assert any(i.startswith("scale:") for i in validate_judge(RUBRIC.replace(scale="only")))
    assert any(i.startswith("name:") for i in validate_judge(REF.replace(name="a b")))
    assert any(i.startswith("no_key:") for i in validate_judge(REF.replace(
        provider=Provider.COMPATIBLE, base_url="https://example.com/v1", no_key=True)))


def test_spec_round_trip_never_holds_a_key():
    judge = RUBRIC.replace(input_price=Decimal("2.5"), api_key_env="MY_JUDGE_KEY", template="{scale} {candidate}")
    assert judge_from_spec(judge_to_spec(judge)) == judge
    assert "key" not in {k for k in judge_to_spec(judge) if k != "api_key_env"}
    assert judge.to_json()["api_key_env"] == "MY_JUDGE_KEY"
    assert REF.to_json()["api_key_env"] == "CASCADE_STUDIO_JUDGE_REF_API_KEY"
    assert REF.connection_tier().api_key_env == "CASCADE_STUDIO_JUDGE_REF_API_KEY"


def test_labels():
    assert label_passes("good", REF) and label_passes("accepted", REF)
    assert label_passes("bad", REF) is False and label_passes("rejected", REF) is False
    assert label_passes("4", RUBRIC) and label_passes("2", RUBRIC) is False
    assert label_passes("4", REF) and label_passes("meh", REF) is None


@pytest.mark.parametrize("seed", range(8))
def test_kappa_and_confusion_equal_scikit_learn(seed):
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    rng = random.Random(seed)
    n = rng.randint(5, 200)
    truth = [rng.random() < rng.uniform(0.2, 0.8) for _ in range(n)]
    predicted = [t if rng.random() > rng.uniform(0, 0.5) else not t for t in truth]
    assert confusion(truth, predicted) == confusion_matrix(truth, predicted, labels=[False, True]).tolist()
    expected = cohen_kappa_score(truth, predicted)
    if expected != expected:  # nan: one class only
        assert cohen_kappa(truth, predicted) is None
    else:
        assert cohen_kappa(truth, predicted) == pytest.approx(expected, abs=1e-12)


def test_kappa_edge_cases():
    assert cohen_kappa([], []) is None
    assert cohen_kappa([True, True], [True, True]) is None  # undefined, not 1 and not 0
    assert cohen_kappa([True, False], [True, False]) == 1.0
    assert cohen_kappa([True, False], [False, True]) == -1.0
