"""Rate limits and retries of a collection run: token buckets, backoff, which errors to retry."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import openai

from cascade_studio.services.bounded_http import REFUSED_HEADER

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class RateLimiter:
    """Token buckets for requests/min and tokens/min (None: unlimited)."""

    def __init__(self, rpm: int | None, tpm: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self._req = float(rpm or 0)
        self._tok = float(tpm or 0)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        t = self.clock()
        dt_min = (t - self._stamp) / 60.0
        self._stamp = t
        if self.rpm:
            self._req = min(float(self.rpm), self._req + dt_min * self.rpm)
        if self.tpm:
            self._tok = min(float(self.tpm), self._tok + dt_min * self.tpm)

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self._lock:
            while True:
                self._refill()
                need_tokens = min(tokens, self.tpm) if self.tpm else 0
                ok_req = not self.rpm or self._req >= 1
                ok_tok = not self.tpm or self._tok >= need_tokens
                if ok_req and ok_tok:
                    if self.rpm:
                        self._req -= 1
                    if self.tpm:
                        self._tok -= need_tokens
                    return
                waits = []
                if not ok_req:
                    waits.append((1 - self._req) / self.rpm * 60)
                if not ok_tok:
                    waits.append((need_tokens - self._tok) / self.tpm * 60)
                await asyncio.sleep(max(0.005, max(waits)))

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tpm:
            self._tok = max(-float(self.tpm), self._tok + estimated - actual)


def backoff_delay(attempt: int, retry_after: float | None, *, base: float = 0.5, cap: float = 30.0,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter; a server's retry-after wins when it asks for longer."""
    rng = rng or random
    delay = rng.uniform(0, min(cap, base * (2 ** attempt)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def retry_after_seconds(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        # An answer refused for its size would be as large (and paid for) again.
        return exc.status_code in RETRYABLE_STATUS and not exc.response.headers.get(REFUSED_HEADER)
    return False


def is_fatal(exc: BaseException) -> bool:
    """Errors that every other request of the run would hit too: stop the run instead."""
    return isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError)
