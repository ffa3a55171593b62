"""A token bucket per channel: every request takes a token before it is sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Starts full with `burst` tokens and refills at `rate_per_s`.

    Each acquire reserves its token at once, letting the balance go negative, and
    then sleeps until that debt is repaid. The reservation is made under the lock,
    the sleep outside it, so concurrent callers queue in order without holding
    the lock while they wait."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def acquire(self) -> None:
        """Take one token, sleeping until one is there. Thread-safe."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self._burst), self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= 1
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
