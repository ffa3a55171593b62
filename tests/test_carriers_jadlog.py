"""The Jadlog adapter against the fake Jadlog (in-process)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from carrier_kit import build_carrier, state_store

from syncctl.carriers.jadlog import JadlogCarrier, match_entries
from syncctl.domain import UTC, DeliveryStatus
from syncctl.errors import AuthError
from syncctl.sandbox.jadlog import BR_DATE, FakeJadlog
from syncctl.state import StateStore

S = DeliveryStatus
TOKEN = "eyJhbGciOiJIUzI1NiJ9.jadlog-contract-token"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PATH = "/embarcador/api/tracking/consultar"


@pytest.fixture
def fake() -> FakeJadlog:
    fake = FakeJadlog(TOKEN, clock=lambda: START)
    fake.add_shipment("11200000001234", "12345678", START)
    fake.add_event("11200000001234", "EMISSAO", START, "PA SAO PAULO 01")
    fake.add_event("11200000001234", "TRANSFERENCIA", START + timedelta(hours=13), "CO SAO PAULO", date_format=BR_DATE)
    fake.add_event("11200000001234", "EM ROTA", START + timedelta(days=3), "CO CAMPINAS")
    fake.add_event("11200000001234", "ENTREGUE", START + timedelta(days=3, hours=3), "CO CAMPINAS")
    return fake


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    store = state_store(tmp_path)
    yield store
    store.close()


def jadlog(fake: FakeJadlog, state: StateStore, token: str = TOKEN, **options: Any) -> JadlogCarrier:
    carrier = build_carrier(
        JadlogCarrier, transport=httpx.WSGITransport(app=fake), state=state, credentials={"token": token},
        options=options,
    )  # fmt: skip
    assert isinstance(carrier, JadlogCarrier)
    return carrier


def test_shipments_are_asked_in_one_call_and_unknown_ones_fail_alone(fake, state) -> None:
    found, missing = jadlog(fake, state).track(["11200000001234", "11200000009999"])

    assert [(e.code, e.status, e.location) for e in found.events] == [
        ("EMISSAO", S.posted, "PA SAO PAULO 01"), ("TRANSFERENCIA", S.in_transit, "CO SAO PAULO"),
        ("EM ROTA", S.out_for_delivery, "CO CAMPINAS"), ("ENTREGUE", S.delivered, "CO CAMPINAS"),
    ]  # fmt: skip
    assert [e.occurred_at for e in found.events] == [
        START, START + timedelta(hours=13), START + timedelta(days=3), START + timedelta(days=3, hours=3),
    ]  # both date formats, São Paulo time, stored in UTC
    assert missing.error == "Jadlog: Não localizado (11200000009999)"
    [call] = fake.requests_log
    assert call.body == {"consulta": [{"shipmentId": "11200000001234"}, {"shipmentId": "11200000009999"}]}


def test_the_order_code_can_be_what_the_erp_keeps(fake, state) -> None:
    [tracking] = jadlog(fake, state, query_by="codigo").track(["12345678"])
    assert len(tracking.events) == 4
    assert fake.requests_log[0].body == {"consulta": [{"codigo": "12345678"}]}


def test_a_token_pasted_with_its_bearer_prefix_still_works(fake, state) -> None:
    [tracking] = jadlog(fake, state, token=f"Bearer {TOKEN}").track(["11200000001234"])
    assert tracking.error is None


def test_a_refused_token_is_a_credentials_error_with_jadlogs_plain_text(fake, state) -> None:
    with pytest.raises(AuthError, match=r"Jadlog refused the credentials \(HTTP 401\).*Unauthorized"):
        jadlog(fake, state, token="expired").track(["11200000001234"])


def test_answers_are_matched_by_their_id_before_their_position() -> None:
    first, second = {"shipmentId": "A", "tracking": {}}, {"shipmentId": "B", "tracking": {}}
    anonymous = {"erro": {"id": 1, "descricao": "Não localizado"}}
    assert match_entries(["A", "B"], [second, first], "shipmentId") == [first, second]
    assert match_entries(["A", "C", "B"], [first, anonymous, second], "shipmentId") == [first, anonymous, second]
    assert match_entries(["A", "B"], [first], "shipmentId") == [first, None]
