"""The HTTP client every channel and carrier uses."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from syncctl.http.ratelimit import TokenBucket


@dataclass(frozen=True)
class Limits:
    """A channel type's defaults; the config's `http` block overrides them."""

    rate_per_s: float
    burst: int
    concurrency: int


class HttpClient:
    """One per channel (or carrier) per run.

    `request` sends through the channel's token bucket and classifies the outcome
    with one table (see `policy.py`):
      2xx, or a status in `allow`        -> the response is returned
      401 with `refresh` given           -> refresh() once, then retry
      401/403                            -> AuthError
      429                                -> wait Retry-After (or backoff), retry; RateLimited when exhausted
                                            or when Retry-After exceeds max_retry_after_s
      408/423/425/5xx, timeouts, resets  -> backoff with jitter and retry when `safe_to_retry`;
                                            TransientError when exhausted; for unsafe writes
                                            UncertainWrite at once (the caller reads back first)
      other 4xx                          -> RecordRejected("HTTP 400 from VTEX: <message>")
    Every raised error has `.attempts` and a message passed through `redact`.
    """

    def __init__(
        self,
        label: str,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30,
        max_retries: int = 5,
        max_retry_after_s: float = 120,
        bucket: TokenBucket | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        refresh: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        raise NotImplementedError

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: Collection[int] = (),
        safe_to_retry: bool | None = None,
    ) -> httpx.Response:
        """`url` is absolute or relative to base_url. `json` may hold Decimal.
        `safe_to_retry` defaults to True for GET/HEAD/PUT/DELETE, False otherwise."""
        raise NotImplementedError

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """`request`, then the body parsed with Decimal for non-integers
        (None for an empty body). A malformed body on a safe request is retried."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
