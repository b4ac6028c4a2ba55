import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from cascade_studio.core.money import (
    clean,
    cost_micro_usd,
    format_price,
    micro_to_usd,
    per_token_to_per_million,
)
from cascade_studio.core.prices import PriceCatalog, build_catalog

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "prices" / "model_prices_and_context_window.json"
BUNDLED = Path(__file__).resolve().parents[2] / "resources" / "prices" / "catalog.json"


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.from_json(json.loads(BUNDLED.read_text()))


def test_bundled_catalog_has_source_and_prices(catalog):
    assert "LiteLLM" in catalog.source and catalog.date
    gpt4o = catalog.lookup("gpt-4o")
    assert (gpt4o.input_per_m, gpt4o.output_per_m, gpt4o.cached_input_per_m) == (Decimal("2.5"), Decimal("10"),
                                                                                 Decimal("1.25"))
    assert gpt4o.deprecation_date == dt.date(2027, 1, 14)


def test_deprecation_notice_wording(catalog):
    notice = catalog.lookup("gpt-4o-mini").deprecation_notice(dt.date(2026, 11, 27))
    assert "retires on 2027-01-14" in notice and "48 days" in notice
    retired = catalog.lookup("gpt-4.1-nano").deprecation_notice(dt.date(2026, 11, 27))
    assert "was retired" in retired
    assert catalog.lookup("gpt-5.2").deprecation_notice(dt.date(2026, 11, 27)) is None


def test_lookup_tolerates_prefixes_and_fine_tunes(catalog):
    assert catalog.lookup("openai/gpt-4o-mini").model == "gpt-4o-mini"
    assert catalog.lookup("ft:gpt-4o-mini:org:suffix:abc123").model == "ft:gpt-4o-mini-2024-07-18"  # fine-tuned prices
    assert catalog.lookup("ft:gpt-5.2:org::x").model == "gpt-5.2"  # no fine-tuned price: the base model
    assert catalog.lookup("GPT-4O") is not None
    assert catalog.lookup("no-such-model") is None
    assert catalog.lookup("") is None


@pytest.mark.skipif(not SHARED.exists(), reason="shared LiteLLM file is only in the dev checkout")
def test_build_from_litellm_matches_bundled(catalog):
    rebuilt = build_catalog(json.loads(SHARED.read_text()), source="x", date="y")
    assert rebuilt.lookup("gpt-4o") == catalog.lookup("gpt-4o")
    assert len(rebuilt.models) == len(catalog.models)


def test_build_rejects_non_catalog():
    with pytest.raises(ValueError):
        build_catalog({"foo": {"mode": "chat"}}, source="s", date="d")
    with pytest.raises(ValueError):
        build_catalog([], source="s", date="d")  # type: ignore[arg-type]


def test_catalog_json_round_trip(catalog):
    again = PriceCatalog.from_json(catalog.to_json())
    assert again.models["gpt-4o"] == catalog.models["gpt-4o"]


def test_money_is_exact():
    assert per_token_to_per_million(1e-05) == Decimal("10")
    assert per_token_to_per_million(1.5e-07) == Decimal("0.15")
    assert str(clean(Decimal("10.000"))) == "10"
    # 1,234,567 tokens at $0.15 / 1M = $0.18518505 -> 185185 micro-dollars (half-even)
    assert cost_micro_usd(1_234_567, Decimal("0.15")) == 185185
    assert micro_to_usd(185185) == Decimal("0.185185")
    assert format_price(Decimal("2.5")) == "2.50" and format_price(Decimal("0.075")) == "0.075"
