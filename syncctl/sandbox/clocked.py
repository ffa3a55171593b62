"""What every fake shares: a clock tests move forward, and the request log its faults keep."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from syncctl.sandbox.faults import Faults, RequestRecord


class Clocked:
    """Mixin for the fakes; their __init__ sets `_clock`, `_offset`, `_lock` and `faults`."""

    _clock: Callable[[], datetime]
    _offset: timedelta
    _lock: threading.RLock
    faults: Faults

    def now(self) -> datetime:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward: token expiry, feed visibility and retention,
        promotions, rate-limit refill."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    @property
    def requests_log(self) -> list[RequestRecord]:
        return self.faults.requests_log
