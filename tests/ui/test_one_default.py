"""Issue 19: one confidence-method default across Tiers, Trajectories and Evaluation; the Student list
does not offer the teacher; a file-level dataset error is not reported as 'line 0'."""

import json

from cascade_studio.core.datasets import MIN_EXAMPLES
from cascade_studio.core.tiers import ConfidenceMethod, Provider, Tier
from cascade_studio.services.demo import prepare_demo
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.page import DEFAULT_CONFIDENCE
from tests.ui.test_tiers_page import make_window, two_tiers


def test_demo_pages_start_with_the_tiers_confidence_method(qtbot, tmp_path):
    prepare_demo(tmp_path, "http://127.0.0.1:9/v1")
    window = make_window(qtbot, tmp_path)
    tier1 = window.tiers_page.tiers[0]
    shown = tier1.confidence_method.value  # what the Tiers page shows for the students
    window.nav.setCurrentRow(2)
    assert window.trajectories_page.f_method.currentData() == shown
    window.nav.setCurrentRow(4)
    ev = window.evaluation_page
    assert ev.method_combo.currentData() == shown
    students = [ev.student_combo.itemData(i) for i in range(ev.student_combo.count())]
    assert 3 not in students and students == [-1, 1, 2]  # "All student tiers", then the students


def test_without_a_shared_choice_the_core_default_is_used(qtbot, tmp_path):
    assert DEFAULT_CONFIDENCE == Tier(tier=1, model="m", base_url="https://x").confidence_method
    tiers = two_tiers("http://127.0.0.1:9/v1", Provider.SANDBOX)
    tiers += [tiers[1].replace(tier=3, model="gpt-4.1")]
    tiers[1] = tiers[1].replace(confidence_method=ConfidenceMethod.MIN_PROB)  # students differ
    window = make_window(qtbot, tmp_path, tiers)
    window.nav.setCurrentRow(2)
    page = window.trajectories_page
    assert page.f_method.currentData() == DEFAULT_CONFIDENCE.value
    page.f_tier.addItem("tier 2", 2)  # no trajectories yet: offer tier 2 by hand
    page.f_tier.setCurrentIndex(page.f_tier.findData(2))
    assert page.f_method.currentData() == "min_token_prob"


def test_file_level_validation_error_has_no_line_0(qtbot, tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        TierRepository(ws).replace_all(two_tiers())
    window = make_window(qtbot, tmp_path / "ws")
    window.nav.setCurrentRow(3)
    example = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(json.dumps(example) for _ in range(MIN_EXAMPLES - 1)) + "\n")
    window.finetune_page.validate(path)
    text = window.finetune_page.dataset.ds_report.toPlainText()
    assert "too_few_examples" in text and "line 0" not in text and "file: too_few_examples" in text
