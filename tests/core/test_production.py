"""Production figures and the drift warning, from request rows alone."""

from cascade_studio.core.policy import keeps
from cascade_studio.core.production import production_report
from cascade_studio.core.tiers import Tier, WithoutLogprobs


def _row(hour, tier, agree=None, latency=100.0, cost=10, teacher=100):
    return (f"2026-03-01T{hour:02d}:15:00.000Z", "production", tier, int(tier != 1), latency, cost, teacher, agree)


def test_figures_and_drift():
    rows = [_row(9, 1, agree=i % 3 != 0) for i in range(12)] + [_row(10, 2), _row(10, 3, teacher=None)]
    rows.append(("2026-03-01T10:20:00Z", "production", None, 1, 50.0, 0, None, None))  # every tier failed
    out = production_report(rows, alert_level=0.8, evaluated={1: 0.93})
    assert out["requests"] == 15 and out["failed"] == 1 and out["escalated"] == 3
    assert out["answered_share"] == {1: 12 / 15, 2: 1 / 15, 3: 1 / 15}
    assert out["series"] == [("2026-03-01T09:00:00Z", 12), ("2026-03-01T10:00:00Z", 3)]
    assert out["live_agreement"] == {1: {"samples": 12, "agreement": 8 / 12}}
    (warning,) = out["drift_warnings"]
    assert "Tier 1 agrees with the teacher on 67% of 12" in warning and "measured 93%" in warning
    assert out["cost_usd"] == "0.00014" and out["teacher_only_usd"] == "0.0013"
    assert production_report(rows, alert_level=0.5)["drift_warnings"] == []
    assert production_report(rows[:5], alert_level=0.99)["drift_warnings"] == []  # too few samples to say
    assert production_report([])["requests"] == 0


def test_keeps_is_the_escalation_rule():
    student = Tier(tier=1, threshold=0.6)
    assert keeps(student, 0.6, is_teacher=False) and not keeps(student, 0.59, is_teacher=False)
    assert not keeps(student, None, is_teacher=False)
    assert keeps(student.replace(without_logprobs=WithoutLogprobs.ANSWER), None, is_teacher=False)
    assert keeps(student, 0.0, is_teacher=True)
