"""The track job end to end: the ERP's shipments, the fake carriers, the run log, and
push-invoices carrying the events on to VTEX afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest
from conftest import T0, Shop

from syncctl.carriers.codes import s10_check_digit
from syncctl.demo import PARCEL as DEMO_PARCEL
from syncctl.demo import Step, run_demo
from syncctl.domain import UTC
from syncctl.jobs.result import Outcome
from syncctl.sandbox.correios import FakeCorreios
from syncctl.sandbox.jadlog import BR_DATE, FakeJadlog
from syncctl.sandbox.melhorenvio import FakeMelhorEnvio
from syncctl.state import StateStore

CARRIERS = """\
carriers:
  correios:
    type: correios
    auto: true
    base_url: http://correios.test
    credentials: {user: loja-exemplo, access_code: cws-code-0001, postcard: "0012345678"}
  jadlog:
    type: jadlog
    auto: true
    base_url: http://jadlog.test
    credentials: {token: jadlog-contract-token}
  melhorenvio:
    type: melhorenvio
    auto: false
    base_url: http://melhorenvio.test
    credentials: {client_id: "4821", client_secret: me-client-secret, refresh_token: me-first-refresh}
    options: {track_days: 30}
"""
PARCEL, OTHER, UNKNOWN, TYPO = "AA123456785BR", "AA876543216BR", "AA100000025BR", "AA123456784BR"
SHIPPED = T0 - timedelta(days=6)  # the Correios scenarios start here
TRACKING = "/srorastro/v1/objetos"
_orders = count(1)


@dataclass
class Carriers:
    correios: FakeCorreios
    jadlog: FakeJadlog
    melhorenvio: FakeMelhorEnvio


@pytest.fixture
def carriers(shop: Shop) -> Carriers:
    fakes = Carriers(
        FakeCorreios("loja-exemplo", "cws-code-0001", "0012345678", shop.clock, sleep=lambda _s: None),
        FakeJadlog("jadlog-contract-token", shop.clock),
        FakeMelhorEnvio("4821", "me-client-secret", "me-first-refresh", shop.clock),
    )
    shop.carrier_apps.update(vars(fakes))
    shop.extra = CARRIERS
    shop.write_config()
    return fakes


def ship(shop: Shop, carrier: str, code: str, shipped_at: datetime | None = SHIPPED) -> int:
    """An order of the ERP shipped with `carrier` under `code`; returns the shipment id."""
    [shipment_id] = ship_many(shop, carrier, [code], shipped_at)
    return shipment_id


def ship_many(shop: Shop, carrier: str, codes: list[str], shipped_at: datetime | None = SHIPPED) -> list[int]:
    """One order and one shipment per code, in two inserts."""
    order_ids = [f"TRACK-{next(_orders)}" for _ in codes]
    shop.erp_insert("orders", [{
        "channel": "vtex-main", "channel_order_id": order_id, "status": "invoiced", "placed_at": T0,
        "total": Decimal("99.90"), "shipping_cost": Decimal("0.00"), "discount": Decimal("0.00"),
        "imported_at": T0, "updated_at": T0,
    } for order_id in order_ids])  # fmt: skip
    erp_ids = {row["channel_order_id"]: row["id"] for row in shop.erp_rows("orders", channel="vtex-main")}
    shop.erp_insert("shipments", [{
        "order_id": erp_ids[order_id], "carrier": carrier, "tracking_code": code, "shipped_at": shipped_at,
        "updated_at": T0,
    } for order_id, code in zip(order_ids, codes, strict=True)])  # fmt: skip
    by_order = {row["order_id"]: row["id"] for row in shop.erp_rows("shipments", carrier=carrier)}
    return [by_order[erp_ids[order_id]] for order_id in order_ids]


def shipment(shop: Shop, shipment_id: int) -> dict:
    [row] = shop.erp_rows("shipments", id=shipment_id)
    return row


def events(shop: Shop, shipment_id: int) -> list[tuple[str, str]]:
    rows = sorted(shop.erp_rows("shipment_events", shipment_id=shipment_id), key=lambda row: row["occurred_at"])
    return [(row["code"], row["status"]) for row in rows]


def track(shop: Shop, *carriers: str, **options: bool):
    [result] = shop.run("track", list(carriers) or ["correios"], **options)
    return result


def state(shop: Shop) -> StateStore:
    return StateStore(shop.root / "state.db")


# -- Correios -------------------------------------------------------------------------------------


def test_a_parcel_posted_travelling_out_and_delivered_lands_as_four_events_once(shop, carriers) -> None:
    shipped = ship(shop, "correios", PARCEL)
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED)

    first = track(shop)
    assert (first.outcome, first.sent) == (Outcome.ok, 1)
    assert events(shop, shipped) == [
        ("PO-01", "posted"), ("RO-01", "in_transit"), ("OEC-01", "out_for_delivery"), ("BDE-01", "delivered"),
    ]  # fmt: skip
    row = shipment(shop, shipped)
    assert row["delivery_status"] == "delivered"
    assert row["delivered_at"] == SHIPPED + timedelta(hours=53)
    assert first.notes == [f"{PARCEL}: delivered, no longer asked"]

    again = track(shop)
    assert (again.sent, again.unchanged) == (0, 0)
    assert len(events(shop, shipped)) == 4
    assert len(carriers.correios.asked) == 1  # a delivered parcel is not asked about again


def test_the_history_grows_run_by_run_without_repeating_itself(shop, carriers) -> None:
    shipped = ship(shop, "correios", PARCEL)
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED, upto=2)
    assert track(shop).sent == 1
    assert shipment(shop, shipped)["delivery_status"] == "in_transit"
    assert (track(shop).sent, track(shop).unchanged) == (0, 1)

    carriers.correios.add_scenario(PARCEL, "failed_then_pickup", SHIPPED)  # same first scans, then more
    track(shop)
    assert events(shop, shipped)[-2:] == [("BDE-20", "delivery_failed"), ("LDI-01", "awaiting_pickup")]
    assert shipment(shop, shipped)["delivery_status"] == "awaiting_pickup"
    assert len(events(shop, shipped)) == 5  # PO, RO, OEC, BDE-20, LDI: the repeated PO and RO only once


def test_delivered_to_the_sender_is_returned_and_an_estorno_voids_the_event_before_it(shop, carriers) -> None:
    returned, voided = ship(shop, "correios", PARCEL), ship(shop, "correios", OTHER)
    carriers.correios.add_scenario(PARCEL, "returned", SHIPPED)
    carriers.correios.add_scenario(OTHER, "estorno", SHIPPED)
    carriers.correios.add_event(
        PARCEL, "BDE", 1, SHIPPED + timedelta(hours=126), description="Objeto entregue ao remetente"
    )

    track(shop)

    back = shipment(shop, returned)
    assert (back["delivery_status"], back["delivered_at"]) == ("returned", None)
    assert events(shop, returned)[-1] == ("BDE-01", "returned")
    still_out = shipment(shop, voided)
    assert (still_out["delivery_status"], still_out["delivered_at"]) == ("out_for_delivery", None)
    assert [code for code, _ in events(shop, voided)] == ["PO-01", "RO-01", "OEC-01"]  # neither BDE-01 nor EST


def test_bad_codes_are_recorded_failures_and_the_other_parcels_are_still_tracked(shop, carriers) -> None:
    tracked = ship(shop, "correios", PARCEL)
    ship(shop, "correios", TYPO)
    ship(shop, "correios", UNKNOWN)
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED)

    result = track(shop)

    assert (result.outcome, result.exit_code, result.sent, result.failed) == (Outcome.failed, 1, 1, 2)
    assert carriers.correios.asked == [[PARCEL, UNKNOWN]]  # the typo never reached Correios
    assert shipment(shop, tracked)["delivery_status"] == "delivered"
    store = state(shop)
    try:
        failing = {f.key: f.error for f in store.failing("correios", "track")}
    finally:
        store.close()
    assert set(failing) == {TYPO, UNKNOWN}
    assert "wrong check digit" in failing[TYPO] and "SRO-020" in failing[UNKNOWN]


def test_a_parcel_found_later_clears_its_failure(shop, carriers) -> None:
    ship(shop, "correios", UNKNOWN)
    assert track(shop).failed == 1
    carriers.correios.add_scenario(UNKNOWN, "delivered", SHIPPED, upto=1)
    assert (track(shop).failed, track(shop).outcome) == (0, Outcome.ok)
    store = state(shop)
    try:
        assert store.failing("correios", "track") == []
    finally:
        store.close()


def test_a_401_on_an_expired_token_refreshes_and_retries_once(shop, carriers) -> None:
    shipped = ship(shop, "correios", PARCEL)
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED, upto=1)
    track(shop)
    carriers.correios.expire_tokens()  # the saved token still has 24 h by syncctl's count
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED)

    result = track(shop)

    assert result.outcome is Outcome.ok and shipment(shop, shipped)["delivery_status"] == "delivered"
    tracking = [r.status for r in carriers.correios.requests_log if r.path == TRACKING]
    tokens = [r.status for r in carriers.correios.requests_log if r.path.startswith("/token/")]
    assert (tracking, tokens) == ([200, 401, 200], [201, 201])


def test_refused_credentials_are_exit_3_and_other_carriers_still_run(shop, carriers) -> None:
    ship(shop, "correios", PARCEL)
    shipped = ship(shop, "jadlog", "11200000001234")
    carriers.jadlog.add_shipment("11200000001234", "12345678", SHIPPED)
    carriers.jadlog.add_event("11200000001234", "EMISSAO", SHIPPED, "PA SAO PAULO 01")
    carriers.correios.token_apis = ()  # the contract lost API 87

    correios, jadlog = shop.run("track", ["correios", "jadlog"])

    assert (correios.outcome, correios.exit_code) == (Outcome.auth, 3)
    assert "API 87" in (correios.message or "")
    assert jadlog.outcome is Outcome.ok and shipment(shop, shipped)["delivery_status"] == "posted"


def test_sixty_parcels_go_in_two_requests_of_at_most_fifty(shop, carriers) -> None:
    codes = [f"AB{serial}{s10_check_digit(serial)}BR" for serial in map(str, range(10_000_000, 10_000_060))]
    ship_many(shop, "correios", codes)
    for code in codes:
        carriers.correios.add_scenario(code, "delivered", SHIPPED, upto=1)
    result = track(shop)
    assert result.sent == 60
    assert [len(asked) for asked in carriers.correios.asked] == [50, 10]


# -- which shipments are asked about ----------------------------------------------------------------


def test_final_shipments_are_not_asked_again(shop, carriers) -> None:
    delivered, returned = ship(shop, "correios", PARCEL), ship(shop, "correios", OTHER)
    shop.erp_update("shipments", {"id": delivered}, {"delivery_status": "delivered"})
    shop.erp_update("shipments", {"id": returned}, {"delivery_status": "returned"})
    result = track(shop)
    assert (result.sent, result.unchanged, result.failed) == (0, 0, 0)
    assert carriers.correios.requests_log == []


def test_parcels_shipped_before_track_days_are_left_alone(shop, carriers) -> None:
    ship(shop, "melhorenvio", carriers.melhorenvio.add_order(), shipped_at=T0 - timedelta(days=31))
    result = track(shop, "melhorenvio")
    assert (result.skipped, result.sent) == (1, 0)
    assert carriers.melhorenvio.requests_log == []


def test_dry_run_shows_the_statuses_and_writes_nothing(shop, carriers) -> None:
    shipped = ship(shop, "correios", PARCEL)
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED)
    result = track(shop, dry_run=True)
    assert result.planned == [{"key": PARCEL, "status": "delivered", "events": 4}]
    assert events(shop, shipped) == [] and shipment(shop, shipped)["delivery_status"] is None


def test_two_shipments_of_one_parcel_are_both_updated_from_one_question(shop, carriers) -> None:
    first, second = ship(shop, "correios", PARCEL), ship(shop, "correios", PARCEL)
    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED, upto=1)
    assert track(shop).sent == 2
    assert events(shop, first) == events(shop, second) == [("PO-01", "posted")]
    assert carriers.correios.asked == [[PARCEL]]


# -- Jadlog and Melhor Envio ---------------------------------------------------------------------


def test_jadlog_updates_a_shipment_through_its_fake(shop, carriers) -> None:
    shipped = ship(shop, "jadlog", "11200000001234")
    fake = carriers.jadlog
    fake.add_shipment("11200000001234", "12345678", SHIPPED)
    fake.add_event("11200000001234", "EMISSAO", SHIPPED, "PA SAO PAULO 01")
    fake.add_event("11200000001234", "EM ROTA", SHIPPED + timedelta(days=2), "CO CAMPINAS", date_format=BR_DATE)
    fake.add_event("11200000001234", "ENTREGUE", SHIPPED + timedelta(days=2, hours=4), "CO CAMPINAS")

    assert track(shop, "jadlog").sent == 1

    assert events(shop, shipped) == [("EMISSAO", "posted"), ("EM ROTA", "out_for_delivery"), ("ENTREGUE", "delivered")]
    assert shipment(shop, shipped)["delivered_at"] == SHIPPED + timedelta(days=2, hours=4)


def test_melhorenvio_updates_a_shipment_through_its_fake(shop, carriers) -> None:
    fake = carriers.melhorenvio
    order = fake.add_order(tracking="AA123456785BR")
    shipped = ship(shop, "melhorenvio", order)
    fake.set_status(order, "posted", SHIPPED)
    assert track(shop, "melhorenvio").sent == 1
    assert shipment(shop, shipped)["delivery_status"] == "posted"

    fake.set_status(order, "delivered", SHIPPED + timedelta(days=3))
    assert track(shop, "melhorenvio").sent == 1
    assert events(shop, shipped) == [("ME-posted", "posted"), ("ME-delivered", "delivered")]
    assert shipment(shop, shipped)["delivered_at"] == SHIPPED + timedelta(days=3)
    tokens = [r for r in fake.requests_log if r.path == "/oauth/token"]
    assert len(tokens) == 1  # the second run reused the saved access token


def test_run_all_tracks_the_automatic_carriers_only(shop, carriers) -> None:
    results = shop.run("run-all")
    assert [r.channel for r in results if r.job == "track"] == ["correios", "jadlog"]


# -- on to the channel ------------------------------------------------------------------------------


def test_after_track_push_invoices_sends_the_vtex_tracking_events_once(shop, carriers) -> None:
    shop.run("push-products")
    sku = shop.vtex_sku_id("CAM-BASICA-P")
    order_id = shop.fake.add_order(items=[(sku, "CAM-BASICA-P", "Camiseta Básica Algodão P", 1, 7990)])
    shop.run("pull-orders")
    [order] = shop.erp_rows("orders", channel_order_id=order_id)
    shop.erp_insert("invoices", [{
        "order_id": order["id"], "nfe_key": "35261112345678000199550010000012341000012343", "number": "1234",
        "series": "1", "issued_at": T0, "total": order["total"], "xml": "<nfeProc/>", "updated_at": T0,
    }])  # fmt: skip
    shop.erp_insert("shipments", [{
        "order_id": order["id"], "carrier": "correios", "tracking_code": PARCEL, "shipped_at": SHIPPED,
        "updated_at": T0,
    }])  # fmt: skip
    shop.run("push-invoices")  # invoice and tracking number: no events yet
    assert shop.requests("PUT", "/tracking") == []

    carriers.correios.add_scenario(PARCEL, "delivered", SHIPPED)
    track(shop)
    shop.run("push-invoices")
    shop.run("push-invoices")

    [sent] = shop.requests("PUT", f"/api/oms/pvt/orders/{order_id}/invoice/1234/tracking")
    assert sent.body["isDelivered"] is True
    assert [event["description"] for event in sent.body["events"]] == [
        "Objeto postado", "Objeto em transferência - por favor aguarde", "Objeto saiu para entrega ao destinatário",
        "Objeto entregue ao destinatário",
    ]  # fmt: skip
    assert (sent.body["events"][-1]["city"], sent.body["events"][-1]["state"]) == ("CAMPINAS", "SP")
    delivered_at = (SHIPPED + timedelta(hours=53)).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    assert sent.body["deliveredDate"] == delivered_at


def test_the_demo_follows_its_parcel_to_the_customer(tmp_path: Path) -> None:
    steps: list[Step] = []
    assert run_demo(tmp_path / "demo", lambda step, _fake, _rt: steps.append(step)) == 0

    assert [step.parcels.get(DEMO_PARCEL) for step in steps] == [
        None, None, "posted, 1 event(s)", "posted, 1 event(s)", "delivered, 4 event(s)", "delivered, 4 event(s)",
        "delivered, 4 event(s)",
    ]  # fmt: skip
    delivery_sent, last = steps[5], steps[6]
    assert any(route.startswith("PUT /api/oms/pvt/orders") for route in delivery_sent.requests)
    [tracked] = [r for r in last.results if r.job == "track"]
    assert (tracked.sent, tracked.unchanged) == (0, 0)  # delivered: not asked about again
