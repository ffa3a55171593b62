"""Normalization shared by the carriers: S10 check digits, São Paulo time, the event
tables and the text rules behind them (reference §2, §3, §5.3, §6.3)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from syncctl.carriers import normalize
from syncctl.carriers.codes import is_valid_s10, s10_check_digit, s10_problem
from syncctl.carriers.normalize import (
    correios_status,
    drop_voided,
    fold,
    jadlog_status,
    latest,
    local_to_utc,
    melhorenvio_status,
    parse_local,
)
from syncctl.domain import UTC, DeliveryStatus, TrackingEvent

S = DeliveryStatus


@pytest.fixture(autouse=True)
def fresh_unknown_log() -> None:
    """Unknown codes are logged once per process: forget the earlier tests' ones."""
    normalize._log_unknown.cache_clear()
    normalize._log_unknown_melhorenvio.cache_clear()


# -- S10 codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "digit"),
    [("47312482", 9), ("12345678", 5), ("87654321", 6), ("10000002", 5), ("10000014", 0), ("00000000", 5)],
)
def test_check_digit_vectors_of_the_reference(serial: str, digit: int) -> None:
    assert s10_check_digit(serial) == digit


def test_codes_are_checked_for_shape_and_check_digit_only() -> None:
    assert is_valid_s10("LX473124829BR") and is_valid_s10(" lx473124829br ")
    assert is_valid_s10("ZZ123456785CN")  # no prefix or country whitelist
    assert "wrong check digit (1; the serial gives 9)" in (s10_problem("LX473124821BR") or "")
    for malformed in ("LX47312482BR", "LX4731248290BR", "1X473124829BR", "LX473124829B1", ""):
        assert "not a Correios object code" in (s10_problem(malformed) or "")


# -- time ---------------------------------------------------------------------------------------


def test_zone_less_times_are_sao_paulo_time_stored_as_utc() -> None:
    assert local_to_utc(datetime(2024, 5, 13, 14, 2, 10)) == datetime(2024, 5, 13, 17, 2, 10, tzinfo=UTC)
    # Before 2019 Brazil had summer time: January 2018 was UTC-2.
    assert local_to_utc(datetime(2018, 1, 10, 12, 0)) == datetime(2018, 1, 10, 14, 0, tzinfo=UTC)
    # A time that carries its own offset keeps it.
    assert parse_local("2024-05-13T14:02:10-04:00") == datetime(2024, 5, 13, 18, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-10 15:12:06", datetime(2024, 5, 10, 18, 12, 6, tzinfo=UTC)),
        ("2024-05-10", datetime(2024, 5, 10, 3, 0, tzinfo=UTC)),
        ("10/05/2024 15:12", datetime(2024, 5, 10, 18, 12, tzinfo=UTC)),
        ("10/05/2024", datetime(2024, 5, 10, 3, 0, tzinfo=UTC)),
    ],
)
def test_both_jadlog_date_formats_are_read(text: str, expected: datetime) -> None:
    assert parse_local(text, ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")) == expected


def test_an_unreadable_time_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="unreadable"):
        parse_local("ontem à tarde")


# -- Correios -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "number", "status"),
    [
        ("PO", 1, S.posted), ("PO", 9, S.posted), ("RO", 1, S.in_transit), ("CUN", 42, S.in_transit),
        ("OEC", 1, S.out_for_delivery), ("OEC", 3, S.out_for_delivery), ("LDI", 1, S.awaiting_pickup),
        ("BDR", 68, S.awaiting_pickup), ("BDE", 1, S.delivered), ("BDI", 67, S.delivered),
        ("BDE", 23, S.returned), ("BDE", 20, S.delivery_failed), ("BDE", 4, S.delivery_failed),
        ("OEC", 9, S.returning), ("FC", 47, S.returning), ("BLQ", 1, S.exception), ("BDE", 80, S.exception),
        ("IDC", 1, S.exception), ("PAR", 13, S.returned), ("PAR", 17, S.in_transit), ("FC", 10, S.in_transit),
        ("FC", 11, S.exception), ("BDE", 45, S.in_transit),
    ],
)  # fmt: skip
def test_the_correios_table(event_type: str, number: int, status: DeliveryStatus) -> None:
    assert correios_status(event_type, number, "") is status


def test_no_correios_pair_is_listed_twice_with_two_statuses() -> None:
    seen: dict[tuple[str, int], DeliveryStatus] = {}
    for types, numbers, status in normalize._CORREIOS_ROWS:
        for event_type in types:
            for number in numbers or ():
                assert seen.setdefault((event_type, number), status) is status, (event_type, number)


def test_delivered_to_the_sender_is_returned_not_delivered() -> None:
    assert correios_status("BDE", 1, "Objeto entregue ao remetente") is S.returned
    assert correios_status("BDE", 1, "Objeto entregue ao destinatário") is S.delivered


@pytest.mark.parametrize(
    ("description", "status"),
    [
        ("Objeto devolvido ao remetente", S.returned),
        ("Objeto saiu para entrega ao remetente", S.returning),
        ("Objeto não entregue - destinatário ausente", S.delivery_failed),
        ("Objeto entregue na caixa de correio", S.delivered),
        ("Objeto disponível para retirada na agência", S.awaiting_pickup),
        ("Objeto em rota de entrega", S.out_for_delivery),
        ("Objeto apreendido pela fiscalização", S.exception),
        ("Objeto postado após o horário limite", S.posted),
        ("Objeto recebido na unidade de exportação", S.in_transit),
    ],
)
def test_unknown_correios_codes_fall_back_on_the_text_rules(description: str, status: DeliveryStatus) -> None:
    assert correios_status("XYZ", 7, description) is status


def test_an_unknown_correios_code_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="syncctl.carriers"):
        for _ in range(3):
            correios_status("XYZ", 7, "Objeto aguardando retirada")
    assert [record.getMessage() for record in caplog.records] == [(
        "Correios event XYZ-07 ('Objeto aguardando retirada') is not in syncctl's table: "
        "taken as awaiting_pickup by its text"
    )]


def test_a_voiding_event_drops_itself_and_the_next_older_one() -> None:
    newest_first = ["EST", "BDE", "OEC", "EST", "EST", "RO", "PO", "PMT"]
    survivors, voided = drop_voided(newest_first, lambda code: code == "EST")
    assert survivors == ["OEC", "PMT"]
    assert voided == ["EST", "BDE", "EST", "EST", "RO", "PO"]


# -- Jadlog and Melhor Envio ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("EMISSAO", S.posted), ("ENTRADA", S.in_transit), ("TRANSFERENCIA", S.in_transit),
        ("EM ROTA", S.out_for_delivery), ("Saiu para entrega", S.out_for_delivery), ("ENTREGUE", S.delivered),
        ("NÃO ENTREGUE - AUSENTE", S.delivery_failed), ("DEVOLUÇÃO ENTREGUE AO REMETENTE", S.returned),
        ("EM DEVOLUÇÃO", S.returning), ("AGUARDANDO RETIRADA", S.awaiting_pickup), ("AVARIA", S.exception),
        ("COLETA REALIZADA", S.posted), ("CHEGADA NA BASE", S.in_transit),
    ],
)  # fmt: skip
def test_jadlog_texts(text: str, status: DeliveryStatus) -> None:
    assert jadlog_status(text) is status


def test_only_unknown_jadlog_texts_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="syncctl.carriers"):
        jadlog_status("Entregue")
        jadlog_status("CHEGADA NA BASE")
    assert len(caplog.records) == 1 and "CHEGADA NA BASE" in caplog.records[0].getMessage()


def test_melhorenvio_statuses(caplog: pytest.LogCaptureFixture) -> None:
    assert [melhorenvio_status(word) for word in ("posted", "delivered", "undelivered", "canceled", "expired")] == [
        S.posted, S.delivered, S.delivery_failed, S.exception, S.exception,
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="syncctl.carriers"):
        assert melhorenvio_status("printed") is None  # label printed, not posted: nothing yet
        assert melhorenvio_status("teleported") is None
    assert len(caplog.records) == 1 and "'teleported'" in caplog.records[0].getMessage()


def test_text_is_folded_before_matching() -> None:
    assert fold("  Objeto  não\tentregue ") == "OBJETO NAO ENTREGUE"


# -- the current status -----------------------------------------------------------------------------


def test_the_newest_event_gives_the_status_and_the_carriers_order_settles_ties() -> None:
    at = datetime(2024, 5, 10, 12, tzinfo=UTC)
    posted = TrackingEvent(at, S.posted, "PO-01")
    moved = TrackingEvent(at + timedelta(hours=1), S.in_transit, "RO-01")
    out = TrackingEvent(at + timedelta(hours=1), S.out_for_delivery, "OEC-01")
    assert latest([moved, posted]) is moved
    assert latest([posted, moved, out]) is out
    assert latest([]) is None
