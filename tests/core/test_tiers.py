from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascade_studio.core.tiers import (
    ConfidenceMethod,
    Provider,
    Tier,
    TierError,
    default_env_var,
    teacher_of,
    validate_base_url,
    validate_tier,
    validate_tier_set,
)


def good(**kw) -> Tier:
    base = dict(tier=1, name="t", model="gpt-4o-mini", input_price=Decimal("0.15"), output_price=Decimal("0.6"))
    base.update(kw)
    return Tier(**base)


def fields(issues):
    return {i.field for i in issues}


def test_valid_tier_has_no_issues():
    assert validate_tier(good()) == []


@pytest.mark.parametrize("url, fragment", [
    ("", "is empty"),
    ("api.openai.com/v1", "must start with http"),
    ("ftp://x/v1", "must start with http"),
    ("http:///v1", "no host"),
    ("http://localhost:99999/v1", "invalid port"),
    ("http://localhost:8000/v1/chat/completions", "API root"),
    ("http://localhost:8000/v1?x=1", "query"),
])
def test_bad_urls_are_named_with_a_fix(url, fragment):
    issues = validate_tier(good(base_url=url, provider=Provider.COMPATIBLE))
    assert "base_url" in fields(issues)
    message = next(i.message for i in issues if i.field == "base_url")
    assert fragment in message


def test_negative_price_names_field_and_unit():
    issues = validate_tier(good(output_price=Decimal("-1")))
    assert fields(issues) == {"output_price"}
    assert "negative" in issues[0].message and "per 1M" in issues[0].message


def test_per_token_price_mistake_is_caught():
    issues = validate_tier(good(input_price=Decimal("25000")))
    assert "per token" in issues[0].message


def test_empty_model_id():
    issues = validate_tier(good(model="  "))
    assert fields(issues) == {"model"}
    assert "e.g." in issues[0].message


def test_openai_provider_must_use_openai_url():
    issues = validate_tier(good(base_url="http://localhost:8000/v1"))
    assert fields(issues) == {"provider"}


@pytest.mark.parametrize("change, field", [
    ({"threshold": 1.5}, "threshold"), ({"temperature": 3.0}, "temperature"), ({"timeout_s": 0}, "timeout_s"),
    ({"max_concurrency": 0}, "max_concurrency"), ({"rpm_limit": 0}, "rpm_limit"), ({"api_key_env": "1BAD"}, "api_key_env"),
])
def test_range_checks(change, field):
    assert field in fields(validate_tier(good(**change)))


def test_tier_set_numbering_and_teacher():
    tiers = [good(tier=1), good(tier=3)]
    assert any("without gaps" in i.message for i in validate_tier_set(tiers))
    tiers = [good(tier=1), good(tier=2, model="gpt-4o")]
    assert validate_tier_set(tiers) == []
    assert teacher_of(tiers).model == "gpt-4o"
    assert any("at most" in i.message for i in validate_tier_set([good(tier=k) for k in (1, 2, 3, 4)]))


def test_json_round_trip_keeps_decimals_exact():
    t = good(cached_price=Decimal("0.075"), confidence_method=ConfidenceMethod.TOOL_NAME_PROB, rpm_limit=500)
    back = Tier.from_json(t.to_json())
    assert back == t
    assert t.to_json()["input_price"] == "0.15"


def test_from_json_errors_name_the_field():
    with pytest.raises(TierError) as err:
        Tier.from_json({"tier": 1, "input_price": "abc"})
    assert err.value.field == "input_price"
    with pytest.raises(TierError) as err:
        Tier.from_json({"tier": 1, "provider": "azure"})
    assert err.value.field == "provider"
    with pytest.raises(TierError):
        Tier.from_json({"name": "no number"})


def test_default_env_var_is_documented_name():
    assert default_env_var(2) == "CASCADE_STUDIO_TIER2_API_KEY"


@given(st.decimals(min_value=0, max_value=10000, places=6, allow_nan=False, allow_infinity=False))
def test_any_valid_price_round_trips(price):
    t = good(input_price=price)
    assert Tier.from_json(t.to_json()).input_price == price
    assert "input_price" not in fields(validate_tier(t))


def test_validate_base_url_accepts_common_servers():
    for url in ("https://api.openai.com/v1", "http://localhost:11434/v1", "http://127.0.0.1:8000/v1",
                "https://api.together.xyz/v1"):
        assert validate_base_url(url) is None
