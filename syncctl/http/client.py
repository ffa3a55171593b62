"""The HTTP client every channel and carrier uses."""

from __future__ import annotations

import json as jsonlib
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from syncctl import __version__
from syncctl.errors import AuthError, RateLimited, RecordRejected, SyncctlError, TransientError, UncertainWrite
from syncctl.http.policy import (
    SAFE_METHODS,
    Action,
    backoff,
    classify_exception,
    classify_status,
    nothing_sent,
    retry_after,
)
from syncctl.http.ratelimit import TokenBucket
from syncctl.redact import redact

log = logging.getLogger("syncctl.http")

_MESSAGE_LIMIT = 300
# Where APIs put the human message in an error body, most specific first:
# VTEX {"Message"} / {"error": {"message"}}, Mercado Livre {"message", "error"}, RFC 7807.
_MESSAGE_PATHS: tuple[tuple[str, ...], ...] = (
    ("Message",),
    ("message",),
    ("error", "message"),
    ("error",),
    ("detail",),
    ("title",),
)


@dataclass(frozen=True)
class Limits:
    """A channel type's defaults; the config's `http` block overrides them."""

    rate_per_s: float
    burst: int
    concurrency: int


@dataclass(frozen=True)
class _Call:
    """One logical request, sent once per attempt."""

    method: str
    url: str
    content: bytes | None
    params: Mapping[str, Any] | None
    headers: Mapping[str, str]
    allow: frozenset[int]
    safe: bool
    parse: Callable[[httpx.Response], Any] | None


@dataclass(frozen=True)
class _Outcome:
    """What one attempt produced, already classified."""

    action: Action
    what: str  # for messages and logs: "HTTP 503: busy", "ReadTimeout: timed out"
    sent: bool  # the server may have seen the request
    path: str
    response: httpx.Response | None = None
    parsed: Any = None


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

    `now` (aware UTC) measures a Retry-After given as an HTTP-date when the
    response has no Date header. Safe to share between threads.
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
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._label = label
        self._max_retries = max_retries
        self._max_retry_after_s = max_retry_after_s
        self._bucket = bucket
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._refresh = refresh
        self._now = now
        # refresh() rewrites the client's headers while other threads build requests.
        self._headers_lock = threading.Lock()
        self._client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": f"syncctl/{__version__}", "Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

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
        `safe_to_retry` defaults to True for GET/HEAD/PUT/DELETE/OPTIONS, False otherwise."""
        response, _ = self._exchange(
            self._call(
                method, url, json=json, params=params, headers=headers, allow=allow, safe_to_retry=safe_to_retry
            )
        )
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """`request`, then the body parsed with Decimal for non-integers
        (None for an empty body, or for a non-2xx status let through by `allow`).
        A malformed body on a safe request is retried; on an unsafe one it is an
        UncertainWrite."""
        _, parsed = self._exchange(self._call(method, url, parse=_parse_json, **kwargs))
        return parsed

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: Collection[int] = (),
        safe_to_retry: bool | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
    ) -> _Call:
        method = method.upper()
        extra = dict(headers or {})
        content = None
        if json is not None:
            content = encode_json(json)
            extra["Content-Type"] = "application/json"
        return _Call(
            method=method,
            url=url,
            content=content,
            params=params,
            headers=extra,
            allow=frozenset(allow),
            safe=method in SAFE_METHODS if safe_to_retry is None else safe_to_retry,
            parse=parse,
        )

    def _exchange(self, call: _Call) -> tuple[httpx.Response, Any]:
        attempts = retries = 0
        refreshed = False
        while True:
            attempts += 1
            outcome = self._attempt(call, can_refresh=self._refresh is not None and not refreshed)
            try:
                if outcome.action is Action.OK:
                    assert outcome.response is not None
                    return outcome.response, outcome.parsed
                if outcome.action is Action.REFRESH:
                    self._apply_refresh()
                    refreshed = True
                    log.info(
                        "%s %s: %s, credentials refreshed, retrying", call.method, outcome.path, redact(outcome.what)
                    )
                    continue
                wait = self._wait_or_raise(call, outcome, retries, attempts)
            except SyncctlError as error:
                error.attempts = attempts  # type: ignore[attr-defined]
                raise
            log.info(
                "%s %s: %s, retrying in %.1f s (retry %d of %d)",
                call.method, outcome.path, redact(outcome.what), wait, retries + 1, self._max_retries,
            )
            self._sleep(wait)
            retries += 1

    def _attempt(self, call: _Call, *, can_refresh: bool) -> _Outcome:
        if self._bucket is not None:
            self._bucket.acquire()
        with self._headers_lock:
            request = self._client.build_request(
                call.method, call.url, content=call.content, params=call.params, headers=call.headers
            )
        path = request.url.path  # never the query: it may carry tokens
        try:
            response = self._client.send(request)
        except httpx.RequestError as exc:
            return _Outcome(classify_exception(exc), _describe_exception(exc), not nothing_sent(exc), path)
        status = response.status_code
        action = Action.OK if status in call.allow else classify_status(status, can_refresh)
        if action is not Action.OK:
            return _Outcome(action, f"HTTP {status}: {error_message(response)}", True, path, response)
        if call.parse is None:
            return _Outcome(action, f"HTTP {status}", True, path, response)
        try:
            parsed = call.parse(response)
        except ValueError:
            return _Outcome(Action.RETRY, f"HTTP {status} with a malformed JSON body", True, path, response)
        return _Outcome(action, f"HTTP {status}", True, path, response, parsed)

    def _apply_refresh(self) -> None:
        assert self._refresh is not None
        new_headers = self._refresh()
        with self._headers_lock:
            self._client.headers.update(new_headers)

    def _wait_or_raise(self, call: _Call, outcome: _Outcome, retries: int, attempts: int) -> float:
        """Seconds to wait before the next attempt, or the error that ends the request."""
        action, label, where = outcome.action, self._label, f"{call.method} {outcome.path}"
        if action is Action.FAIL_AUTH:
            assert outcome.response is not None
            raise AuthError(redact(
                f"{label} refused the credentials (HTTP {outcome.response.status_code}): "
                "check the credentials and their permissions in the config "
                f"({label} said: {error_message(outcome.response)})"
            ))
        if action is Action.REJECT:
            if outcome.response is None:
                raise RecordRejected(redact(f"{where} to {label} could not be sent: {outcome.what}"))
            message = error_message(outcome.response)
            raise RecordRejected(redact(f"HTTP {outcome.response.status_code} from {label}: {message}"))
        hinted = None if outcome.response is None else retry_after(outcome.response, self._now())
        if action is Action.RATE_LIMITED:
            if hinted is not None and hinted > self._max_retry_after_s:
                raise RateLimited(redact(
                    f"{label} asks to wait {hinted:g} s (Retry-After), "
                    f"more than max_retry_after_s={self._max_retry_after_s:g}: try later"
                ))
        elif not call.safe and outcome.sent:
            raise UncertainWrite(redact(
                f"{where} to {label} may or may not have been applied ({outcome.what}): "
                "read the state back before trying again"
            ))
        if retries >= self._max_retries:
            if action is Action.RATE_LIMITED:
                raise RateLimited(redact(
                    f"{label} kept rate-limiting {where} through {attempts} attempts ({outcome.what}): try later"
                ))
            raise TransientError(redact(f"{where} to {label} still failing after {attempts} attempts: {outcome.what}"))
        if hinted is None:
            return backoff(retries, self._rng)
        return min(hinted, self._max_retry_after_s)


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON in which a Decimal becomes the number it is, exactly."""
    return jsonlib.dumps(
        value, default=_exact_number, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _exact_number(value: Any) -> float:
    if not isinstance(value, Decimal):
        raise TypeError(f"{type(value).__name__} is not JSON serializable: format it before sending")
    # json writes a float as repr(float): sound only if that repr means the same number.
    if not value.is_finite() or Decimal(repr(float(value))) != value:
        raise ValueError(f"Decimal {value} cannot be sent exactly as a JSON number")
    return float(value)


def _parse_json(response: httpx.Response) -> Any:
    text = response.text
    if not response.is_success or not text.strip():
        return None
    return jsonlib.loads(text, parse_float=Decimal)


def error_message(response: httpx.Response) -> str:
    """The human message in an error body, whatever shape the API gave it."""
    text = response.text.strip()
    try:
        body = jsonlib.loads(text)
    except ValueError:
        body = None
    message = body if isinstance(body, str) else _message_in(body)
    return (message or text or response.reason_phrase or "no message")[:_MESSAGE_LIMIT]


def _message_in(body: Any) -> str | None:
    for path in _MESSAGE_PATHS:
        node = body
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str) and node.strip():
            return node.strip()
    return None


def _describe_exception(exc: Exception) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
