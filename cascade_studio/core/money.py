"""Money helpers. Prices are USD per 1M tokens as Decimal; costs accumulate in integer micro-dollars."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MICRO = Decimal(1_000_000)
PER_MILLION = Decimal(1_000_000)


def to_decimal(value: object) -> Decimal:
    """Parse a price without going through float (which would add binary noise)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        value = repr(value)
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def per_token_to_per_million(per_token: object) -> Decimal:
    """LiteLLM stores USD per token; we show USD per 1M tokens."""
    return clean(to_decimal(per_token) * PER_MILLION)


def clean(value: Decimal) -> Decimal:
    """Drop trailing zeros without scientific notation (10.000 -> 10, not 1E+1)."""
    value = value.normalize()
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value


def cost_micro_usd(tokens: int, usd_per_million: Decimal) -> int:
    """Exact cost of `tokens` at a per-1M price, in micro-dollars (rounded half-even)."""
    # tokens * usd_per_million / 1e6 USD = tokens * usd_per_million micro-USD
    return int((Decimal(tokens) * usd_per_million).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def micro_to_usd(micro: int) -> Decimal:
    return Decimal(micro) / MICRO


def format_usd(value: Decimal | int, *, micro: bool = False, places: int = 4) -> str:
    amount = micro_to_usd(value) if micro else Decimal(value)
    return f"${amount:,.{places}f}"


def format_price(value: Decimal) -> str:
    """A per-1M price without trailing zeros noise: 2.5 -> '2.50', 0.075 -> '0.075'."""
    q = value.normalize()
    text = format(q, "f")
    if "." not in text:
        return text + ".00"
    whole, frac = text.split(".")
    return f"{whole}.{frac.ljust(2, '0')}"
