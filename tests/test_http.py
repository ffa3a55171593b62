"""The HTTP layer: classification, waits, unsafe writes, error bodies, JSON, the token bucket."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from syncctl import __version__
from syncctl.errors import AuthError, RateLimited, RecordRejected, TransientError, UncertainWrite
from syncctl.http import HttpClient, TokenBucket
from syncctl.http.policy import Action, backoff, classify_exception, classify_status, retry_after
from syncctl.redact import redact

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SEED = 7

Step = Callable[[], httpx.Response] | Exception


def reply(status: int, **kwargs: Any) -> Callable[[], httpx.Response]:
    """A fresh response per use: httpx binds a response to the request it answers."""
    return lambda: httpx.Response(status, **kwargs)


class Script:
    """A MockTransport handler that plays its steps in order and records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]  # the last step repeats
        if isinstance(step, Exception):
            raise step
        return step()


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def clean_redactor() -> Iterator[None]:
    redact.clear()
    yield
    redact.clear()


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_client(sleep: FakeSleep) -> Callable[..., HttpClient]:
    def make(script: Script, **kwargs: Any) -> HttpClient:
        options: dict[str, Any] = {
            "base_url": "https://vtex.test",
            "transport": httpx.MockTransport(script),
            "sleep": sleep,
            "rng": random.Random(SEED),
            "now": lambda: NOW,
            "max_retries": 3,
        }
        return HttpClient("VTEX", **(options | kwargs))

    return make


OK = reply(200, json={"ok": True})


# --- policy: the table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "can_refresh", "action"),
    [
        (200, False, Action.OK),
        (204, False, Action.OK),
        (401, True, Action.REFRESH),
        (401, False, Action.FAIL_AUTH),
        (403, True, Action.FAIL_AUTH),
        (429, False, Action.RATE_LIMITED),
        (408, False, Action.RETRY),
        (423, False, Action.RETRY),
        (425, False, Action.RETRY),
        (500, False, Action.RETRY),
        (502, False, Action.RETRY),
        (503, False, Action.RETRY),
        (504, False, Action.RETRY),
        (507, False, Action.RETRY),
        (400, False, Action.REJECT),
        (404, False, Action.REJECT),
        (422, False, Action.REJECT),
        (302, False, Action.REJECT),
    ],
)
def test_status_table(status: int, can_refresh: bool, action: Action) -> None:
    assert classify_status(status, can_refresh) is action


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (httpx.ReadTimeout("t"), Action.RETRY),
        (httpx.ConnectTimeout("t"), Action.RETRY),
        (httpx.ConnectError("refused"), Action.RETRY),
        (httpx.ReadError("reset"), Action.RETRY),
        (httpx.RemoteProtocolError("closed"), Action.RETRY),
        (httpx.UnsupportedProtocol("ftp"), Action.REJECT),
    ],
)
def test_exception_table(exc: Exception, action: Action) -> None:
    assert classify_exception(exc) is action


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),
        # the server's own Date wins over our clock: skew does not change the wait
        (
            {
                "Retry-After": format_datetime(NOW + timedelta(hours=1, seconds=45), usegmt=True),
                "Date": format_datetime(NOW + timedelta(hours=1), usegmt=True),
            },
            45.0,
        ),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
    ],
)
def test_retry_after_parses_seconds_and_dates(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(httpx.Response(429, headers=headers), NOW) == expected


@pytest.mark.parametrize("attempt", range(10))
def test_backoff_has_full_jitter_under_a_growing_ceiling(attempt: int) -> None:
    ceiling = min(64.0, 2.0**attempt)
    rng = random.Random(SEED)
    waits = [backoff(attempt, rng) for _ in range(300)]
    assert all(0.0 <= wait <= ceiling for wait in waits)
    assert max(waits) > 0.8 * ceiling and min(waits) < 0.2 * ceiling


def test_backoff_is_capped_for_any_attempt() -> None:
    rng = random.Random(SEED)
    assert all(backoff(10_000, rng) <= 64.0 for _ in range(100))


# --- waits --------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured_exactly(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(429, headers={"Retry-After": "7"}), OK)
    response = make_client(script).request("GET", "/api/sku")
    assert response.status_code == 200
    assert sleep.waits == [7.0]
    assert len(script.requests) == 2


def test_retry_after_http_date_is_honoured_exactly(make_client, sleep: FakeSleep) -> None:
    when = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    script = Script(reply(429, headers={"Retry-After": when}), OK)
    make_client(script).request("GET", "/api/sku")
    assert sleep.waits == [30.0]


def test_429_without_retry_after_backs_off(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(429), reply(429), OK)
    make_client(script).request("GET", "/api/sku")
    expected = random.Random(SEED)
    assert sleep.waits == [backoff(0, expected), backoff(1, expected)]


def test_retry_after_above_the_cap_raises_at_once(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(429, headers={"Retry-After": "600"}))
    with pytest.raises(RateLimited) as caught:
        make_client(script, max_retry_after_s=120).request("GET", "/api/sku")
    assert str(caught.value) == (
        "VTEX asks to wait 600 s (Retry-After), more than max_retry_after_s=120: try later"
    )
    assert caught.value.attempts == 1
    assert sleep.waits == []


def test_5xx_is_retried_then_succeeds(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(503), reply(502), OK)
    response = make_client(script).request("GET", "/api/sku")
    assert response.json() == {"ok": True}
    assert len(script.requests) == 3
    assert len(sleep.waits) == 2


def test_retry_after_on_a_5xx_is_capped_not_fatal(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(503, headers={"Retry-After": "600"}), OK)
    make_client(script, max_retry_after_s=120).request("GET", "/api/sku")
    assert sleep.waits == [120]


def test_exhausted_retries_raise_transient_error(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(503, text="busy"))
    with pytest.raises(TransientError) as caught:
        make_client(script, max_retries=3).request("GET", "/api/sku")
    assert type(caught.value) is TransientError
    assert caught.value.attempts == 4
    assert len(script.requests) == 4
    assert len(sleep.waits) == 3  # no pointless wait after the last attempt
    assert "HTTP 503: busy" in str(caught.value)


def test_exhausted_429_raises_rate_limited(make_client) -> None:
    script = Script(reply(429, headers={"Retry-After": "1"}))
    with pytest.raises(RateLimited) as caught:
        make_client(script, max_retries=2).request("GET", "/api/sku")
    assert caught.value.attempts == 3
    assert "HTTP 429" in str(caught.value)


def test_timeouts_on_safe_requests_are_retried(make_client) -> None:
    script = Script(httpx.ReadTimeout("timed out"), OK)
    assert make_client(script).request("PUT", "/api/sku/1").status_code == 200
    assert len(script.requests) == 2


def test_every_attempt_takes_a_token(make_client) -> None:
    taken: list[float] = []
    bucket = TokenBucket(5, 1, clock=lambda: 0.0, sleep=taken.append)
    make_client(Script(reply(503), OK), bucket=bucket).request("GET", "/api/sku")
    assert taken == [pytest.approx(0.2)]  # the second attempt waited for its token


# --- unsafe writes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.ReadError("connection reset"), reply(503), reply(500)],
    ids=["timeout", "reset", "503", "500"],
)
def test_unsafe_write_that_may_have_landed_is_uncertain(make_client, sleep: FakeSleep, failure: Step) -> None:
    script = Script(failure, OK)
    with pytest.raises(UncertainWrite) as caught:
        make_client(script).request("POST", "/api/orders", json={"id": "1"})
    assert len(script.requests) == 1
    assert sleep.waits == []
    assert caught.value.attempts == 1
    assert "POST /api/orders" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("timed out"), reply(429, headers={"Retry-After": "2"})],
    ids=["connect-error", "connect-timeout", "429"],
)
def test_unsafe_write_that_was_not_processed_is_retried(make_client, failure: Step) -> None:
    script = Script(failure, OK)
    assert make_client(script).request("PATCH", "/api/orders/1", json={"a": 1}).status_code == 200
    assert len(script.requests) == 2


def test_safe_to_retry_overrides_the_method_default(make_client) -> None:
    script = Script(reply(503), OK)
    make_client(script).request("POST", "/api/search", json={}, safe_to_retry=True)
    assert len(script.requests) == 2
    with pytest.raises(UncertainWrite):
        make_client(Script(reply(503), OK)).request("PUT", "/api/x", safe_to_retry=False)


# --- rejections, auth, allow ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"json": "warehouse 1_9 not found"},
        {"json": {"Message": "warehouse 1_9 not found"}},
        {"json": {"message": "warehouse 1_9 not found", "error": "bad_request"}},
        {"json": {"error": {"code": "1", "message": "warehouse 1_9 not found"}}},
        {"json": {"error": "warehouse 1_9 not found"}},
        {"json": {"title": "Bad Request", "detail": "warehouse 1_9 not found"}},
        {"json": {"title": "warehouse 1_9 not found"}},
        {"text": "  warehouse 1_9 not found\n"},
    ],
)
def test_4xx_rejects_the_record_with_the_apis_message(make_client, body: dict[str, Any]) -> None:
    script = Script(reply(400, **body))
    with pytest.raises(RecordRejected) as caught:
        make_client(script).request("PUT", "/api/stock")
    assert str(caught.value) == "HTTP 400 from VTEX: warehouse 1_9 not found"
    assert caught.value.attempts == 1
    assert len(script.requests) == 1


def test_rejection_message_is_cut_to_300_chars(make_client) -> None:
    with pytest.raises(RecordRejected) as caught:
        make_client(Script(reply(422, text="x" * 5000))).request("GET", "/api/x")
    assert str(caught.value) == "HTTP 422 from VTEX: " + "x" * 300


def test_rejection_with_an_empty_body_names_the_status(make_client) -> None:
    with pytest.raises(RecordRejected) as caught:
        make_client(Script(reply(404))).request("GET", "/api/x")
    assert str(caught.value) == "HTTP 404 from VTEX: Not Found"


def test_request_that_cannot_be_sent_is_rejected_without_retry(make_client, sleep: FakeSleep) -> None:
    script = Script(httpx.UnsupportedProtocol("Request URL has an unsupported protocol"))
    with pytest.raises(RecordRejected) as caught:
        make_client(script).request("GET", "/api/x")
    assert "could not be sent" in str(caught.value)
    assert sleep.waits == []


def test_401_refreshes_once_and_retries_with_the_new_header(make_client) -> None:
    refreshes: list[int] = []

    def refresh() -> dict[str, str]:
        refreshes.append(1)
        return {"Authorization": "Bearer new"}

    script = Script(reply(401), OK)
    client = make_client(script, headers={"Authorization": "Bearer old"}, refresh=refresh)
    assert client.request("GET", "/api/orders").status_code == 200
    assert len(refreshes) == 1
    assert [r.headers["Authorization"] for r in script.requests] == ["Bearer old", "Bearer new"]


def test_second_401_after_refresh_is_an_auth_error(make_client) -> None:
    refreshes: list[int] = []
    script = Script(reply(401, json={"message": "invalid token"}))
    client = make_client(script, refresh=lambda: refreshes.append(1) or {"Authorization": "Bearer x"})
    with pytest.raises(AuthError) as caught:
        client.request("GET", "/api/orders")
    assert len(refreshes) == 1
    assert len(script.requests) == 2
    assert caught.value.attempts == 2
    assert str(caught.value).startswith("VTEX refused the credentials (HTTP 401): check")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_without_refresh_is_an_auth_error(make_client, status: int) -> None:
    script = Script(reply(status))
    with pytest.raises(AuthError) as caught:
        make_client(script).request("GET", "/api/orders")
    assert f"(HTTP {status})" in str(caught.value)
    assert len(script.requests) == 1


def test_403_does_not_refresh(make_client) -> None:
    refreshes: list[int] = []
    with pytest.raises(AuthError):
        make_client(Script(reply(403)), refresh=lambda: refreshes.append(1) or {}).request("GET", "/x")
    assert refreshes == []


def test_allowed_status_is_returned_to_the_caller(make_client) -> None:
    response = make_client(Script(reply(404, json={"Message": "no such sku"}))).request(
        "GET", "/api/sku/9", allow=(404,)
    )
    assert response.status_code == 404


# --- bodies ------------------------------------------------------------------------------


def test_request_carries_the_default_headers(make_client) -> None:
    script = Script(OK)
    make_client(script, headers={"X-VTEX-API-AppKey": "key"}).request("GET", "/api/x")
    sent = script.requests[0].headers
    assert sent["User-Agent"] == f"syncctl/{__version__}"
    assert sent["Accept"] == "application/json"
    assert sent["X-VTEX-API-AppKey"] == "key"


def test_decimal_bodies_are_sent_exactly(make_client) -> None:
    script = Script(OK)
    body = {"price": Decimal("89.90"), "list": Decimal("0.1"), "qty": 3, "name": "Ação"}
    make_client(script).request("PUT", "/api/price", json=body)
    sent = script.requests[0]
    assert sent.content == '{"price":89.9,"list":0.1,"qty":3,"name":"Ação"}'.encode()
    assert sent.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (Decimal("0.1000000000000000055511151231257827"), ValueError),
        (Decimal("NaN"), ValueError),
        (NOW, TypeError),  # datetimes are formatted by the caller, never guessed here
    ],
)
def test_values_that_cannot_be_sent_exactly_are_refused_before_sending(
    make_client, value: Any, error: type[Exception]
) -> None:
    script = Script(OK)
    with pytest.raises(error):
        make_client(script).request("PUT", "/api/price", json={"v": value})
    assert script.requests == []


def test_json_parses_non_integers_as_decimal(make_client) -> None:
    script = Script(reply(200, text='{"price": 89.90, "qty": 3}'))
    assert make_client(script).json("GET", "/api/price") == {"price": Decimal("89.90"), "qty": 3}


@pytest.mark.parametrize("response", [reply(204), reply(404, text="<html>gone</html>")])
def test_json_is_none_for_an_empty_body_or_an_allowed_error(make_client, response: Step) -> None:
    assert make_client(Script(response)).json("GET", "/api/x", allow=(404,)) is None


def test_malformed_json_on_a_safe_request_is_retried(make_client, sleep: FakeSleep) -> None:
    script = Script(reply(200, text="<html>proxy error"), reply(200, text="[1.5]"))
    assert make_client(script).json("GET", "/api/x") == [Decimal("1.5")]
    assert len(sleep.waits) == 1


def test_malformed_json_every_time_is_a_transient_error(make_client) -> None:
    with pytest.raises(TransientError) as caught:
        make_client(Script(reply(200, text="{")), max_retries=1).json("GET", "/api/x")
    assert caught.value.attempts == 2
    assert "malformed JSON" in str(caught.value)


def test_malformed_json_on_an_unsafe_request_is_uncertain(make_client) -> None:
    script = Script(reply(200, text="{"))
    with pytest.raises(UncertainWrite):
        make_client(script).json("POST", "/api/orders", json={"id": 1})
    assert len(script.requests) == 1


# --- secrets -----------------------------------------------------------------------------


def test_secret_in_an_error_body_is_redacted(make_client) -> None:
    redact.add("s3cr3t-token")
    with pytest.raises(RecordRejected) as caught:
        make_client(Script(reply(400, json={"Message": "bad token s3cr3t-token"}))).request("GET", "/x")
    assert str(caught.value) == "HTTP 400 from VTEX: bad token ***"


def test_logs_and_errors_leave_out_headers_and_query(make_client, caplog: pytest.LogCaptureFixture) -> None:
    script = Script(reply(503))
    client = make_client(script, headers={"X-VTEX-API-AppToken": "header-secret"}, max_retries=1)
    with caplog.at_level(logging.DEBUG, logger="syncctl.http"), pytest.raises(TransientError) as caught:
        client.request("GET", "/api/orders", params={"access_token": "query-secret"})
    assert "access_token=query-secret" in str(script.requests[0].url)  # it was sent...
    logged = caplog.text
    assert "GET /api/orders" in logged and "HTTP 503" in logged
    for secret in ("query-secret", "header-secret"):  # ...but never written down
        assert secret not in logged
        assert secret not in str(caught.value)


# --- token bucket --------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_bucket_paces_acquires_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 2, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert sum(clock.waits) == pytest.approx(1.6)
    assert len(clock.waits) == 8  # the first two came from the full bucket


def test_bucket_refills_no_further_than_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 2, clock=clock, sleep=clock.sleep)
    clock.now = 100.0  # a long idle spell
    for _ in range(3):
        bucket.acquire()
    assert clock.waits == [pytest.approx(0.2)]


def test_bucket_reserves_each_token_once_across_threads() -> None:
    """With a frozen clock every caller owes one more token than the one before:
    the waits are exactly 1/rate, 2/rate, ... whatever the interleaving."""
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    bucket = TokenBucket(10, 4, clock=lambda: 0.0, sleep=record)
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(25)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([k / 10 for k in range(1, 200 - 4 + 1)])


def test_bucket_with_the_real_clock_under_threads() -> None:
    rate, burst, per_thread, thread_count = 5000.0, 10, 50, 8
    bucket = TokenBucket(rate, burst)
    done: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(per_thread):
            bucket.acquire()
            with lock:
                done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(thread_count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    elapsed = time.monotonic() - started
    total = per_thread * thread_count
    assert len(done) == total
    assert elapsed >= (total - burst) / rate * 0.95  # paced, not a free-for-all


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (5, 0)])
def test_bucket_refuses_nonsense_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)

