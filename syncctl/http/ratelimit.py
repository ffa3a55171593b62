"""A token bucket per channel: every request takes a token before it is sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        raise NotImplementedError

    def acquire(self) -> None:
        """Take one token, sleeping until one is there. Thread-safe."""
        raise NotImplementedError
