"""Fault injection: `429=0.1,500=0.02,503=0.02,slow=0.05,drop=0.01[,slow_s=3,retry_after=1]`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

_KINDS = ("429", "500", "503", "slow", "drop")


@dataclass
class FaultSpec:
    rates: dict[str, float] = field(default_factory=dict)
    slow_s: float = 3.0
    retry_after_s: float = 1.0

    @property
    def active(self) -> bool:
        return any(v > 0 for v in self.rates.values())

    def pick(self, rng: random.Random) -> str | None:
        """At most one fault per request; rates are independent slices of [0, 1)."""
        if not self.active:
            return None
        roll = rng.random()
        edge = 0.0
        for kind in _KINDS:
            edge += self.rates.get(kind, 0.0)
            if roll < edge:
                return kind
        return None


def parse_faults(spec: str | None) -> FaultSpec:
    result = FaultSpec()
    if not spec:
        return result
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"fault {part!r}: expected NAME=VALUE, e.g. 429=0.1")
        name, value = (x.strip() for x in part.split("=", 1))
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"fault {name}: {value!r} is not a number") from None
        if name == "slow_s":
            result.slow_s = number
        elif name == "retry_after":
            result.retry_after_s = number
        elif name in _KINDS:
            if not 0.0 <= number <= 1.0:
                raise ValueError(f"fault {name}: rate {number} must be between 0 and 1")
            result.rates[name] = number
        else:
            raise ValueError(f"unknown fault {name!r}; use one of {', '.join(_KINDS)}, slow_s, retry_after")
    if sum(result.rates.values()) > 1.0:
        raise ValueError("fault rates add up to more than 1")
    return result
