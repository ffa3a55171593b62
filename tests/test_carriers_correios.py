"""The Correios adapter against the fake Correios (in-process): the token, the batch
tracking request, check digits, SRO answers and the event mapping."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
from carrier_kit import Clock, build_carrier, state_store

from syncctl.carriers.correios import CorreiosCarrier, CorreiosCredentials, token_expiry
from syncctl.domain import UTC, DeliveryStatus
from syncctl.errors import AuthError
from syncctl.redact import redact
from syncctl.sandbox.correios import FakeCorreios
from syncctl.state import StateStore

S = DeliveryStatus
CREDENTIALS = {"user": "loja-exemplo", "access_code": "cws-access-code-123", "postcard": "0012345678"}
DELIVERED, RETURNED, UNKNOWN = "AA123456785BR", "AA876543216BR", "AA100000025BR"
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo
TOKEN, TRACKING = "/token/v1/autentica/cartaopostagem", "/srorastro/v1/objetos"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeCorreios:
    return FakeCorreios(
        CREDENTIALS["user"], CREDENTIALS["access_code"], CREDENTIALS["postcard"], clock, sleep=lambda _s: None
    )


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    store = state_store(tmp_path)
    yield store
    store.close()


def correios(fake: FakeCorreios, state: StateStore, clock: Clock, **credentials: str) -> CorreiosCarrier:
    carrier = build_carrier(
        CorreiosCarrier, transport=httpx.WSGITransport(app=fake), state=state,
        credentials={**CREDENTIALS, **credentials}, clock=clock,
    )  # fmt: skip
    return cast(CorreiosCarrier, carrier)


def requests(fake: FakeCorreios, path: str) -> list:
    return [record for record in fake.requests_log if record.path.startswith(path)]


def test_a_delivered_parcel_comes_with_its_whole_history_oldest_first(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    [tracking] = correios(fake, state, clock).track([DELIVERED])

    assert tracking.error is None
    assert [(e.code, e.status) for e in tracking.events] == [
        ("PO-01", S.posted), ("RO-01", S.in_transit), ("OEC-01", S.out_for_delivery), ("BDE-01", S.delivered),
    ]  # fmt: skip
    first, last = tracking.events[0], tracking.events[-1]
    assert first.occurred_at == START and last.occurred_at == START + timedelta(hours=53)  # local time, back to UTC
    assert (last.description, last.location) == ("Objeto entregue ao destinatário", "CAMPINAS/SP")
    [query] = requests(fake, TRACKING)
    assert query.query["resultado"] == "T"  # the batch form would give only the last event otherwise


def test_the_token_is_kept_in_the_state_reused_and_renewed_before_it_expires(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    correios(fake, state, clock).track([DELIVERED])
    clock.advance(hours=23)
    correios(fake, state, clock).track([DELIVERED])  # another run: the saved token, 1 h left
    assert len(requests(fake, TOKEN)) == 1

    clock.advance(minutes=40)  # 20 minutes left: renewed before use
    correios(fake, state, clock).track([DELIVERED])
    assert len(requests(fake, TOKEN)) == 2
    assert [r.status for r in requests(fake, TRACKING)] == [200, 200, 200]
    assert not any(token in redact(f"using {token}") for token in fake.tokens)  # never printable


def test_a_401_on_an_expired_token_gets_a_new_token_and_one_retry(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    correios(fake, state, clock).track([DELIVERED])
    fake.expire_tokens()  # Correios dropped it; the state still thinks it good for 24 h

    [tracking] = correios(fake, state, clock).track([DELIVERED])

    assert len(tracking.events) == 4
    assert [r.status for r in requests(fake, TRACKING)] == [200, 401, 200]
    assert [r.status for r in requests(fake, TOKEN)] == [201, 201]


def test_a_second_401_is_a_credentials_error(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    fake.faults.add(method="GET", path_prefix=TRACKING, status=401, times=None)
    with pytest.raises(AuthError, match=r"Correios refused the credentials \(HTTP 401\)"):
        correios(fake, state, clock).track([DELIVERED])
    assert len(requests(fake, TRACKING)) == 2 and len(requests(fake, TOKEN)) == 2


def test_wrong_credentials_stop_at_the_token_request(fake, state, clock) -> None:
    with pytest.raises(AuthError, match="refused the user, access code or postcard .HTTP 401: Usuário"):
        correios(fake, state, clock, access_code="the-web-password").track([DELIVERED])
    assert len(requests(fake, TOKEN)) == 1 and requests(fake, TRACKING) == []


def test_a_token_without_the_tracking_api_is_refused(fake, state, clock) -> None:
    fake.token_apis = (34, 35)
    with pytest.raises(AuthError, match=r"HTTP 403.*API 87"):
        correios(fake, state, clock).track([DELIVERED])


def test_a_bad_check_digit_never_reaches_correios_and_unknown_codes_fail_alone(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    typo = "AA123456784BR"
    results = correios(fake, state, clock).track([typo, UNKNOWN, DELIVERED, "aa12345678"])

    assert [bool(tracking.error) for tracking in results] == [True, True, False, True]
    assert "wrong check digit" in (results[0].error or "")
    assert "does not know AA100000025BR (SRO-020)" in (results[1].error or "")
    assert len(results[2].events) == 4
    assert fake.asked == [[UNKNOWN, DELIVERED]]


def test_only_invalid_codes_send_no_request_at_all(fake, state, clock) -> None:
    results = correios(fake, state, clock).track(["AA123456784BR"])
    assert results[0].error and fake.requests_log == []


def test_an_object_correios_calls_invalid_is_a_failure_of_that_code(fake, state, clock) -> None:
    fake.faults.add(method="GET", path_prefix=TRACKING, status=200, body={
        "versao": "3.5.38", "quantidade": 1,
        "objetos": [{"codObjeto": DELIVERED, "mensagem": "SRO-019: Objeto inválido"}],
    })  # fmt: skip
    [tracking] = correios(fake, state, clock).track([DELIVERED])
    assert "not a valid object (SRO-019)" in (tracking.error or "")


def test_lower_case_codes_are_sent_upper_case_and_answered_under_their_own_name(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    [tracking] = correios(fake, state, clock).track([DELIVERED.lower()])
    assert tracking.code == DELIVERED.lower() and len(tracking.events) == 4


def test_return_to_the_sender_and_an_estorno(fake, state, clock) -> None:
    fake.add_scenario(RETURNED, "returned", START)
    fake.add_scenario(DELIVERED, "estorno", START)
    returned, voided = correios(fake, state, clock).track([RETURNED, DELIVERED])

    assert [e.status for e in returned.events][-3:] == [S.delivery_failed, S.returning, S.returned]
    # BDE 01 then EST 01: both gone, the parcel is still out for delivery.
    assert [e.code for e in voided.events] == ["PO-01", "RO-01", "OEC-01"]


def test_events_are_ordered_by_time_not_by_the_answer(fake, state, clock, caplog) -> None:
    fake.add_scenario(DELIVERED, "unknown_code", START)
    fake.add_event(DELIVERED, "RO", 1, START + timedelta(hours=10))  # a scan reported late
    with caplog.at_level(logging.WARNING, logger="syncctl.carriers"):
        [tracking] = correios(fake, state, clock).track([DELIVERED])
    assert [e.code for e in tracking.events] == ["PO-01", "RO-01", "XYZ-07"]
    assert tracking.events[-1].status is S.in_transit  # "Evento XYZ 07": nothing the text rules know


def test_rate_limited_with_an_empty_body_then_answered(fake, state, clock) -> None:
    fake.add_scenario(DELIVERED, "delivered", START)
    fake.faults.add(method="GET", path_prefix=TRACKING, status=429)
    [tracking] = correios(fake, state, clock).track([DELIVERED])
    assert len(tracking.events) == 4
    assert [r.status for r in requests(fake, TRACKING)] == [429, 200]


def test_the_token_expiry_is_local_time_with_its_offset() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    doc = {"expiraEm": "2024-05-11T09:00:00", "zoneOffset": "-03:00"}
    assert token_expiry(doc, now) == datetime(2024, 5, 11, 12, 0, tzinfo=UTC)
    assert token_expiry({"expiraEm": "2024-05-11T09:00:00"}, now) == datetime(2024, 5, 11, 12, 0, tzinfo=UTC)
    assert token_expiry({}, now) == now + timedelta(hours=24)


def test_a_postcard_read_as_a_number_keeps_its_leading_zeros() -> None:
    credentials = CorreiosCredentials(user="u", access_code="c", postcard=12345678)
    assert credentials.postcard.get_secret_value() == "0012345678"
    with pytest.raises(ValueError, match="digits only"):
        CorreiosCredentials(user="u", access_code="c", postcard="00123-4567")


def test_the_batch_is_the_documented_maximum() -> None:
    assert CorreiosCarrier.batch_size == 50
