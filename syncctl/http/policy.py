"""One table from an HTTP outcome (a status or an exception) to what the client
does next, and how long it waits before trying again. No I/O here."""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from types import MappingProxyType

import httpx


class Action(Enum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH = "refresh"
    REJECT = "reject"
    FAIL_AUTH = "fail_auth"


SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""Methods whose repetition does no harm, so they are retried by default."""

# Statuses that differ from their class (below). 500/502/503/504 follow the 5xx rule.
_BY_STATUS: Mapping[int, Action] = MappingProxyType(
    {
        401: Action.REFRESH,
        403: Action.FAIL_AUTH,
        408: Action.RETRY,
        423: Action.RETRY,
        425: Action.RETRY,
        429: Action.RATE_LIMITED,
    }
)
# 3xx: redirects are not followed, so one means a wrong URL for this item.
_BY_CLASS: Mapping[int, Action] = MappingProxyType(
    {2: Action.OK, 3: Action.REJECT, 4: Action.REJECT, 5: Action.RETRY}
)

# First match wins. Any other httpx.RequestError (bad URL, unsupported scheme,
# a request httpx cannot encode) will not get better by waiting.
_BY_EXCEPTION: tuple[tuple[type[BaseException], Action], ...] = (
    (httpx.TimeoutException, Action.RETRY),
    (httpx.NetworkError, Action.RETRY),
    (httpx.RemoteProtocolError, Action.RETRY),
    (httpx.ProxyError, Action.RETRY),
    (httpx.DecodingError, Action.RETRY),
)

# Failures raised before any byte of the request left: even a POST may be repeated.
_NOTHING_SENT: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 64.0
_MAX_EXPONENT = 62  # beyond it the cap always wins; bounds 2**attempt


def classify_status(status: int, can_refresh: bool) -> Action:
    action = _BY_STATUS.get(status, _BY_CLASS.get(status // 100, Action.REJECT))
    if action is Action.REFRESH and not can_refresh:
        return Action.FAIL_AUTH
    return action


def classify_exception(exc: BaseException) -> Action:
    """For the httpx.RequestError a send raised; REJECT when waiting cannot help."""
    for kind, action in _BY_EXCEPTION:
        if isinstance(exc, kind):
            return action
    return Action.REJECT


def nothing_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached the server."""
    return isinstance(exc, _NOTHING_SENT)


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Seconds the server asks us to wait, or None without a usable Retry-After.

    An HTTP-date is measured against the response's own Date header when it has
    one (immune to our clock's skew), else against `now` (aware)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    seconds = _delta_seconds(value)
    if seconds is not None:
        return seconds
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(response.headers.get("Date", "")) or now
    return max(0.0, (when - reference).total_seconds())


def backoff(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter; `attempt` counts retries from 0."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)


def _delta_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _http_date(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
