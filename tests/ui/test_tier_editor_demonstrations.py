"""Editing a prompt-distilled tier (its threshold, say) keeps its demonstrations and so its generation."""

from decimal import Decimal

from cascade_studio.core.demonstrations import FIXED, PromptProgram
from cascade_studio.core.tiers import Tier, generation_id
from cascade_studio.ui.tier_editor import TierEditor
from tests.core.test_demonstrations import demo


def test_the_tier_editor_keeps_a_generations_demonstrations(qtbot):
    program = PromptProgram(FIXED, 1, (demo(0, "area of a circle"),))
    tier = Tier(tier=1, model="gpt-4o-mini", input_price=Decimal(1), output_price=Decimal(2), demonstrations=program)
    editor = TierEditor()
    qtbot.addWidget(editor)
    editor.set_tier(tier, is_teacher=False)
    editor.threshold_spin.setValue(0.42)
    read, issues = editor.read()
    assert not issues and read.demonstrations == program and generation_id(read) == generation_id(tier)
