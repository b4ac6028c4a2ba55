"""The price catalog: per-model prices and deprecation dates, built from LiteLLM's catalog.

The catalog is data, not code: a compact JSON document (see `build_catalog`) bundled in
`resources/prices/catalog.json` and re-importable from a newer LiteLLM file.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cascade_studio.core.money import per_token_to_per_million, to_decimal

CATALOG_FORMAT = 1
_KEPT_MODES = {"chat", "responses", "completion", "embedding"}


@dataclass(frozen=True)
class ModelPrice:
    model: str
    provider: str
    mode: str
    input_per_m: Decimal
    output_per_m: Decimal
    cached_input_per_m: Decimal | None = None
    batch_input_per_m: Decimal | None = None
    batch_output_per_m: Decimal | None = None
    max_input_tokens: int | None = None
    deprecation_date: dt.date | None = None
    successor: str | None = None

    def deprecation_notice(self, today: dt.date) -> str | None:
        """A plain sentence for the user, or None when the catalog gives no date."""
        if self.deprecation_date is None:
            return None
        days = (self.deprecation_date - today).days
        succ = f" Suggested successor: {self.successor}." if self.successor else ""
        when = self.deprecation_date.isoformat()
        if days < 0:
            return f"{self.model} was retired on {when} ({-days} days ago); requests will fail.{succ}"
        if days == 0:
            return f"{self.model} retires today ({when}).{succ}"
        return f"{self.model} is deprecated and retires on {when} (in {days} days).{succ}"


class PriceCatalog:
    """Model prices by id. Entries are parsed on first lookup: the catalog holds ~3,700 models and
    parsing them all would cost ~60 ms of every start."""

    def __init__(self, source: str, date: str, models: dict[str, ModelPrice] | None = None,
                 raw: dict[str, dict[str, Any]] | None = None) -> None:
        self.source = source
        self.date = date
        self._parsed: dict[str, ModelPrice] = dict(models or {})
        self._raw: dict[str, dict[str, Any]] = raw or {}
        self._lower: dict[str, str] | None = None

    @property
    def models(self) -> dict[str, ModelPrice]:
        for key in list(self._raw):
            self._get(key)
        return self._parsed

    def __len__(self) -> int:
        return len(self._parsed) + len(self._raw)

    def _get(self, key: str) -> ModelPrice | None:
        if key in self._parsed:
            return self._parsed[key]
        entry = self._raw.pop(key, None)
        if entry is None:
            return None
        price = _entry_to_price(key, entry)
        self._parsed[key] = price
        return price

    def _keys(self) -> list[str]:
        return [*self._parsed, *self._raw]

    def lookup(self, model: str) -> ModelPrice | None:
        """Find a model by id, tolerating provider prefixes and fine-tuned ids.

        `ft:gpt-4o-mini-2024-07-18:org:suffix:id` is priced as its base model, which is what
        OpenAI bills for inference of a fine-tune only approximately; callers may override.
        """
        name = model.strip()
        if not name:
            return None
        found = self._get(name)
        if found is not None:
            return found
        if name.startswith("ft:"):
            base = name.split(":")[1] if name.count(":") >= 1 else ""
            # fine-tuned inference prices (e.g. "ft:gpt-4o-mini-2024-07-18"), else the base model's
            tuned = sorted(k for k in self._keys() if k.startswith(f"ft:{base}"))
            if tuned:
                return self._get(tuned[0])
            return self.lookup(base)
        if "/" in name:
            found = self._get(name.split("/", 1)[1])
            if found is not None:
                return found
        if self._lower is None:
            self._lower = {k.lower(): k for k in self._keys()}
        key = self._lower.get(name.lower())
        return self._get(key) if key else None

    def model_ids(self, modes: set[str] | None = None) -> list[str]:
        if modes is None:
            return sorted(self._keys())
        out = [k for k, v in self._parsed.items() if v.mode in modes]
        out += [k for k, e in self._raw.items() if e.get("mode", "chat") in modes]
        return sorted(out)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": CATALOG_FORMAT, "source": self.source, "date": self.date, "models": {}}
        for key, m in sorted(self.models.items()):
            entry: dict[str, Any] = {
                "provider": m.provider,
                "mode": m.mode,
                "input_per_m": str(m.input_per_m),
                "output_per_m": str(m.output_per_m),
            }
            for attr in ("cached_input_per_m", "batch_input_per_m", "batch_output_per_m"):
                value = getattr(m, attr)
                if value is not None:
                    entry[attr] = str(value)
            if m.max_input_tokens:
                entry["max_input_tokens"] = m.max_input_tokens
            if m.deprecation_date:
                entry["deprecation_date"] = m.deprecation_date.isoformat()
            if m.successor:
                entry["successor"] = m.successor
            out["models"][key] = entry
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriceCatalog:
        if not isinstance(data, dict) or data.get("format") != CATALOG_FORMAT or not isinstance(data.get("models"), dict):
            raise ValueError("not a Cascade Studio price catalog (expected keys: format, source, date, models)")
        bad = next((k for k, v in data["models"].items() if not isinstance(v, dict) or not all(
            isinstance(v.get(f), str | int | float) and not isinstance(v.get(f), bool)
            for f in ("input_per_m", "output_per_m"))), None)
        if bad is not None:
            raise ValueError(f"models: {bad}: needs input_per_m and output_per_m")
        return cls(source=str(data.get("source", "")), date=str(data.get("date", "")), raw=dict(data["models"]))


def _entry_to_price(key: str, e: dict[str, Any]) -> ModelPrice:
    return ModelPrice(
        model=key,
        provider=e.get("provider", ""),
        mode=e.get("mode", "chat"),
        input_per_m=to_decimal(e["input_per_m"]),
        output_per_m=to_decimal(e["output_per_m"]),
        cached_input_per_m=_opt_dec(e.get("cached_input_per_m")),
        batch_input_per_m=_opt_dec(e.get("batch_input_per_m")),
        batch_output_per_m=_opt_dec(e.get("batch_output_per_m")),
        max_input_tokens=e.get("max_input_tokens"),
        deprecation_date=_parse_date(e.get("deprecation_date")),
        successor=e.get("successor"),
    )


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def _parse_date(value: Any) -> dt.date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def build_catalog(litellm: dict[str, Any], *, source: str, date: str) -> PriceCatalog:
    """Convert LiteLLM's `model_prices_and_context_window.json` into our compact catalog.

    Keeps text models (chat, responses, completion, embedding) that have both input and output
    token prices; skips LiteLLM's `sample_spec` documentation entry and models of other modes or
    without token prices. A malformed row (not an object, a mode that is not text, a price that is
    not a finite number of 0 or more) refuses the whole file: "model: field: problem".
    """
    if not isinstance(litellm, dict) or not litellm:
        raise ValueError("not a LiteLLM price catalog: expected a JSON object of model -> prices")
    models: dict[str, ModelPrice] = {}
    for key, row in litellm.items():
        if key == "sample_spec":
            continue
        _check_row(key, row)
        mode = row.get("mode") or "chat"
        if mode not in _KEPT_MODES:
            continue
        try:
            inp = row.get("input_cost_per_token")
            out = row.get("output_cost_per_token", 0 if mode == "embedding" else None)
            if inp is None or out is None:
                continue
            models[key] = ModelPrice(
                model=key,
                provider=str(row.get("litellm_provider", "")),
                mode=mode,
                input_per_m=per_token_to_per_million(inp),
                output_per_m=per_token_to_per_million(out),
                cached_input_per_m=_per_m_or_none(row.get("cache_read_input_token_cost")),
                batch_input_per_m=_per_m_or_none(row.get("input_cost_per_token_batches")),
                batch_output_per_m=_per_m_or_none(row.get("output_cost_per_token_batches")),
                max_input_tokens=row.get("max_input_tokens") if isinstance(row.get("max_input_tokens"), int) else None,
                deprecation_date=_parse_date(row.get("deprecation_date")),
                successor=row.get("successor_model") if isinstance(row.get("successor_model"), str) else None,
            )
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if not models:
        raise ValueError("the file holds no model with input and output token prices; is it LiteLLM's catalog?")
    return PriceCatalog(source=source, date=date, models=models)


_PRICE_FIELDS = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                 "input_cost_per_token_batches", "output_cost_per_token_batches")


def _check_row(key: str, row: Any) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{key}: must be an object of prices, not {type(row).__name__}")
    mode = row.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise ValueError(f"{key}: mode: must be text such as \"chat\", not {str(mode)[:40]}")
    for name in _PRICE_FIELDS:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{key}: {name}: must be a number of 0 or more (USD per token), not {str(value)[:40]}")


def _per_m_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    return per_token_to_per_million(value)
