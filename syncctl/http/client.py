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
from typing import Any, Protocol

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
from syncctl.http.lean import CookielessClient, PerThreadTransport, proxy_in_environment, shared_ssl_context
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


class Auth(Protocol):
    """Credentials that change while a run goes on (OAuth access tokens)."""

    def headers(self) -> Mapping[str, str]:
        """The headers that authenticate the next attempt; may renew a token about to expire."""
        ...

    def refresh(self, rejected: Mapping[str, str]) -> None:
        """The remote answered 401 to an attempt that carried `rejected`: renew the
        credentials (unless another caller already has)."""
        ...


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
    authenticated: bool = True


@dataclass(frozen=True)
class _Outcome:
    """What one attempt produced, already classified."""

    action: Action
    what: str  # for messages and logs: "HTTP 503: busy", "ReadTimeout: timed out"
    sent: bool  # the server may have seen the request
    path: str
    response: httpx.Response | None = None
    parsed: Any = None
    auth_headers: Mapping[str, str] | None = None  # what an Auth gave this attempt


class HttpClient:
    """One per channel (or carrier) per run.

    `request` sends through the channel's token bucket and classifies the outcome
    with one table (see `policy.py`):
      2xx, or a status in `allow`        -> the response is returned
      401 with `refresh` or an Auth      -> refresh once, then retry
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

    Credentials are static `headers`, or an `Auth` (given here or installed later
    with `use_auth`, e.g. by an OAuth channel) asked before every attempt; a request
    made with `authenticated=False` (a token endpoint) carries no Auth headers.
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
        auth: Auth | None = None,
    ) -> None:
        self._label = label
        self._max_retries = max_retries
        self._max_retry_after_s = max_retry_after_s
        self._bucket = bucket
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._refresh = refresh
        self._auth = auth
        self._now = now
        # refresh() rewrites the client's headers while other threads build requests.
        self._headers_lock = threading.Lock()
        self._client = CookielessClient(
            base_url=base_url,
            headers={"User-Agent": f"syncctl/{__version__}", "Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(timeout_s),
            transport=transport or (None if proxy_in_environment() else PerThreadTransport()),
            verify=shared_ssl_context(),
        )

    def use_auth(self, auth: Auth) -> None:
        """Authenticate every later request with `auth` (for adapters that hold their own
        credentials, such as OAuth channels, whose client is built before them)."""
        self._auth = auth

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: Collection[int] = (),
        safe_to_retry: bool | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """`url` is absolute or relative to base_url. `json` may hold Decimal; `content`
        is a body already encoded (form, multipart, XML: give its Content-Type in
        `headers`). `safe_to_retry` defaults to True for GET/HEAD/PUT/DELETE/OPTIONS,
        False otherwise."""
        response, _ = self._exchange(
            self._call(
                method, url, json=json, content=content, params=params, headers=headers, allow=allow,
                safe_to_retry=safe_to_retry, authenticated=authenticated,
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
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: Collection[int] = (),
        safe_to_retry: bool | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
        authenticated: bool = True,
    ) -> _Call:
        method = method.upper()
        extra = dict(headers or {})
        if json is not None:
            if content is not None:
                raise ValueError("give a request `json` or `content`, not both")
            content = encode_json(json)
            extra["Content-Type"] = "application/json"
        return _Call(
            method=method,
            url=self._absolute(url),
            content=content,
            params=params,
            headers=extra,
            allow=frozenset(allow),
            safe=method in SAFE_METHODS if safe_to_retry is None else safe_to_retry,
            parse=parse,
            authenticated=authenticated,
        )

    def _absolute(self, url: str) -> str:
        """`url` joined to base_url as httpx joins them. Given a relative URL, httpx parses
        it and then the merged one on every attempt: a sixth of a request's CPU."""
        base = self._client.base_url
        if not base.is_absolute_url or "://" in url:
            return url
        return f"{str(base).rstrip('/')}/{url.lstrip('/')}"

    def _exchange(self, call: _Call) -> tuple[httpx.Response, Any]:
        attempts = retries = 0
        refreshed = False
        while True:
            attempts += 1
            can_refresh = not refreshed and (self._refresh is not None or self._uses_auth(call))
            outcome = self._attempt(call, can_refresh=can_refresh)
            try:
                if outcome.action is Action.OK:
                    assert outcome.response is not None
                    return outcome.response, outcome.parsed
                if outcome.action is Action.REFRESH:
                    self._apply_refresh(outcome)
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

    def _uses_auth(self, call: _Call) -> bool:
        return self._auth is not None and call.authenticated

    def _attempt(self, call: _Call, *, can_refresh: bool) -> _Outcome:
        # Asked outside the headers lock: renewing a token may itself send a request.
        auth_headers = dict(self._auth.headers()) if self._auth is not None and call.authenticated else None
        if self._bucket is not None:
            self._bucket.acquire()
        with self._headers_lock:
            request = self._client.build_request(
                call.method, call.url, content=call.content, params=call.params,
                headers={**(auth_headers or {}), **call.headers},
            )
        path = request.url.path  # never the query: it may carry tokens
        try:
            response = self._client.send(request)
        except httpx.RequestError as exc:
            return _Outcome(classify_exception(exc), _describe_exception(exc), not nothing_sent(exc), path)
        status = response.status_code
        action = Action.OK if status in call.allow else classify_status(status, can_refresh)
        if action is not Action.OK:
            what = f"HTTP {status}: {error_message(response)}"
            return _Outcome(action, what, True, path, response, auth_headers=auth_headers)
        # A body that claims to be JSON but is not was garbled on the way: whatever the
        # caller reads of it, the answer cannot be trusted as a success.
        parse = call.parse or (_parse_json if _declares_json(response) else None)
        if parse is None:
            return _Outcome(action, f"HTTP {status}", True, path, response)
        try:
            parsed = parse(response)
        except ValueError:
            return _Outcome(Action.RETRY, f"HTTP {status} with a malformed JSON body", True, path, response)
        return _Outcome(action, f"HTTP {status}", True, path, response, parsed)

    def _apply_refresh(self, outcome: _Outcome) -> None:
        if outcome.auth_headers is not None:
            assert self._auth is not None
            self._auth.refresh(outcome.auth_headers)
            return
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


def _declares_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "").lower()


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
    # Redacted before it is cut short: a cut through a secret would leave half of it.
    return redact(message or text or response.reason_phrase or "no message")[:_MESSAGE_LIMIT]


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
