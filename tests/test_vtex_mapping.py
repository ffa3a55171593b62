"""The VTEX adapter's pure mappers and the NF-e helpers, against golden JSON fixtures
(tests/fixtures/vtex) taken from the VTEX reference."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncctl.channels.vtex import (
    backstop_due,
    feed_config,
    feed_config_matches,
    order_from_vtex,
    order_update_payloads,
    price_payload,
    price_update,
    product_payload,
    sku_update,
    split_location,
    stock_payload,
)
from syncctl.domain import (
    UTC,
    DeliveryStatus,
    EffectivePrice,
    Invoice,
    OrderLine,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    TrackingEvent,
)
from syncctl.errors import RecordRejected
from syncctl.nfe import access_key_problem, cents, check_digit, from_cents

FIXTURES = Path(__file__).parent / "fixtures" / "vtex"
VALID_KEY = "35240311222333000181550010000012341123456781"  # the reference's worked example


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"), parse_float=Decimal)


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def floats_in(value: Any) -> list[float]:
    """Money must stay Decimal all the way into the payload."""
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for item in value.values() for f in floats_in(item)]
    if isinstance(value, list):
        return [f for item in value for f in floats_in(item)]
    return []


def product_from(fields: dict[str, Any]) -> Product:
    decimals = {key: Decimal(fields[key]) for key in ("weight_kg", "height_cm", "width_cm", "length_cm")}
    return Product(**{**fields, **decimals})


def price_from(fields: dict[str, Any]) -> EffectivePrice:
    return EffectivePrice(
        sku=fields["sku"],
        list_price=Decimal(fields["list_price"]),
        sale_price=Decimal(fields["sale_price"]) if "sale_price" in fields else None,
        sale_starts_at=when(fields.get("sale_starts_at")),
        sale_ends_at=when(fields.get("sale_ends_at")),
    )


def line_from(fields: dict[str, Any]) -> OrderLine:
    return OrderLine(**{**fields, "unit_price": Decimal(fields["unit_price"])})


def event_from(fields: dict[str, Any]) -> TrackingEvent:
    occurred_at, status = when(fields["occurred_at"]), DeliveryStatus(fields["status"])
    return TrackingEvent(**{**fields, "occurred_at": occurred_at, "status": status})


def update_from(fields: dict[str, Any]) -> OrderUpdate:
    invoice, shipment = fields["invoice"], fields["shipment"]
    return OrderUpdate(
        order_id=fields["order_id"],
        channel_order_id=fields["channel_order_id"],
        status=OrderStatus(fields["status"]),
        lines=tuple(line_from(line) for line in fields["lines"]),
        shipping_cost=Decimal(fields["shipping_cost"]),
        invoice=Invoice(**{**invoice, "issued_at": when(invoice["issued_at"]), "total": Decimal(invoice["total"])}),
        shipment=Shipment(**{
            **shipment,
            "shipped_at": when(shipment["shipped_at"]),
            "delivered_at": when(shipment["delivered_at"]),
            "delivery_status": DeliveryStatus(shipment["delivery_status"]),
        }),
        events=tuple(event_from(event) for event in fields["events"]),
    )


# -- orders ---------------------------------------------------------------------------------

def test_documented_order_maps_to_the_erp_order_with_exact_money() -> None:
    raw = fixture_text("order_ready_for_handling.json")
    expected = fixture("order_ready_for_handling.expected.json")

    order = order_from_vtex(json.loads(raw, parse_float=Decimal), {"1070": "ERP-000123-P"}, raw=raw)

    assert order is not None
    assert order.channel_order_id == expected["channel_order_id"]
    assert order.status is OrderStatus(expected["status"])
    assert order.channel_status == expected["channel_status"]
    assert order.placed_at == datetime.fromisoformat(expected["placed_at"])
    assert order.placed_at.tzinfo is not None
    # str() pins both the value and the two places: 108.90, not 108.9 or 10890.
    assert [str(order.total), str(order.shipping_cost), str(order.discount)] == [
        expected["total"], expected["shipping_cost"], expected["discount"]
    ]
    assert [(ln.sku, ln.quantity, str(ln.unit_price), ln.channel_item_id) for ln in order.lines] == [
        (ln["sku"], ln["quantity"], ln["unit_price"], ln["channel_item_id"]) for ln in expected["lines"]
    ]
    assert (order.customer_name, order.customer_document, order.customer_email) == (
        expected["customer_name"], expected["customer_document"], expected["customer_email"]
    )
    assert json.loads(order.shipping_address or "") == expected["shipping_address"]
    assert order.raw == raw


def test_order_line_falls_back_on_the_ref_id_when_the_sku_id_is_not_linked() -> None:
    order = order_from_vtex(fixture("order_ready_for_handling.json"), {})

    assert order is not None
    assert [line.sku for line in order.lines] == ["ERP-000123-P"]
    assert json.loads(order.raw or "")["orderId"] == "1468920571234-01"


def test_discounts_total_becomes_a_positive_discount() -> None:
    order_json = fixture("order_ready_for_handling.json")
    order_json["totals"][1]["value"] = -1000
    order_json["value"] = 9890

    order = order_from_vtex(order_json, {"1070": "ERP-000123-P"})

    assert order is not None
    assert (str(order.discount), str(order.total)) == ("10.00", "98.90")


def test_corporate_customer_is_named_by_company_and_cnpj() -> None:
    order_json = fixture("order_ready_for_handling.json")
    order_json["clientProfileData"].update(
        isCorporate=True, corporateName="Loja Exemplo Ltda", corporateDocument="11222333000181"
    )

    order = order_from_vtex(order_json, {})

    assert order is not None
    assert (order.customer_name, order.customer_document) == ("Loja Exemplo Ltda", "11222333000181")


@pytest.mark.parametrize(
    ("vtex_status", "expected"),
    [
        ("ready-for-handling", OrderStatus.approved),
        ("start-handling", OrderStatus.handling),
        ("handling", OrderStatus.handling),
        ("invoice", OrderStatus.invoiced),
        ("invoiced", OrderStatus.invoiced),
        ("cancel", OrderStatus.canceled),
        ("canceled", OrderStatus.canceled),
        ("cancellation-requested", None),
        ("payment-pending", None),
        ("window-to-cancel", None),
        (None, None),
    ],
)
def test_order_status_mapping(vtex_status: str | None, expected: OrderStatus | None) -> None:
    order = order_from_vtex({**fixture("order_ready_for_handling.json"), "status": vtex_status}, {})

    assert (order.status if order else None) == expected


# -- products, stock, prices ----------------------------------------------------------------

def test_product_payload_matches_golden_with_whole_grams() -> None:
    case = fixture("product.json")

    payload = product_payload(product_from(case["product"]))

    assert payload == case["payload"]
    assert isinstance(payload["sku"]["PackagedWeightKg"], int)
    assert floats_in(payload) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weight_kg": None}, "ERP-000123-P has no weight_kg"),
        ({"height_cm": None}, "ERP-000123-P has no height_cm"),
        ({"width_cm": Decimal(0)}, "ERP-000123-P has no width_cm"),
        ({"weight_kg": Decimal("0.0004")}, "ERP-000123-P weighs under 1 g"),
    ],
)
def test_product_without_dimensions_or_weight_is_rejected(change: dict[str, Any], message: str) -> None:
    product = replace(product_from(fixture("product.json")["product"]), **change)

    with pytest.raises(RecordRejected, match=message):
        product_payload(product)


def test_sku_update_keeps_vtex_fields_and_never_deactivates_an_active_erp_sku() -> None:
    owned = product_payload(product_from(fixture("product.json")["product"]))["sku"]
    current = {"Id": 1070, "ProductId": 512, "IsActive": True, "ActivateIfPossible": False, "Name": "old",
               "RefId": "ERP-000123-P", "ManufacturerCode": "MC-1", "PackagedWeightKg": Decimal("250.0")}

    merged = sku_update(current, owned)

    assert merged["IsActive"] is True and merged["ActivateIfPossible"] is True
    assert merged["ManufacturerCode"] == "MC-1" and merged["Name"] == "Camiseta Básica Algodão P"
    assert sku_update({**current, "IsActive": False}, owned)["IsActive"] is False
    assert sku_update(current, {**owned, "IsActive": False})["IsActive"] is False


def test_stock_payload_always_carries_all_three_fields() -> None:
    assert stock_payload(StockLevel("ERP-000123-P", 37), "1.00:00:00") == {
        "quantity": 37, "unlimitedQuantity": False, "leadTime": "1.00:00:00"
    }


@pytest.mark.parametrize("case", fixture("prices.json"), ids=lambda case: case["name"])
def test_price_payload_matches_golden(case: dict[str, Any]) -> None:
    payload = price_payload(price_from(case["price"]), "1")

    assert payload == case["payload"]
    assert floats_in(payload) == []


@pytest.mark.parametrize(
    "price",
    [
        EffectivePrice("S", Decimal("0.00")),
        EffectivePrice("S", Decimal("-1.00")),
        EffectivePrice("S", Decimal("10.00"), sale_price=Decimal("0.00")),
    ],
)
def test_prices_at_or_below_zero_are_rejected(price: EffectivePrice) -> None:
    with pytest.raises(RecordRejected, match="must be above 0"):
        price_payload(price, "1")


def test_price_update_keeps_other_fixed_prices_and_the_cost_price() -> None:
    payload = price_payload(EffectivePrice("S", Decimal("129.90"), sale_price=Decimal("99.90")), "1")
    other_policy = {"tradePolicyId": "2", "value": Decimal("89.9"), "listPrice": None, "minQuantity": 1}
    quantity_price = {"tradePolicyId": "1", "value": Decimal("94.9"), "minQuantity": 3}
    current = {"itemId": "1070", "basePrice": Decimal("99.9"), "listPrice": Decimal("129.9"),
               "costPrice": Decimal("39.96"), "markup": 150,
               "fixedPrices": [other_policy, quantity_price,
                               {"tradePolicyId": "1", "value": Decimal("79.9"), "minQuantity": 1}]}

    body = price_update(current, payload, "1")

    assert body == {
        "basePrice": Decimal("129.90"), "listPrice": Decimal("129.90"), "costPrice": Decimal("39.96"),
        "fixedPrices": [
            {"tradePolicyId": "2", "value": Decimal("89.9"), "minQuantity": 1},  # null listPrice not sent back
            quantity_price,
            {"tradePolicyId": "1", "value": Decimal("99.90"), "listPrice": Decimal("129.90"), "minQuantity": 1},
        ],
    }
    assert "markup" not in body
    assert price_update(None, payload, "1") == {key: payload[key] for key in ("basePrice", "listPrice", "fixedPrices")}


# -- invoices ---------------------------------------------------------------------------------

def test_invoice_tracking_and_delivery_payloads_match_golden() -> None:
    case = fixture("invoice.json")

    parts = order_update_payloads(update_from(case["update"]))

    assert list(parts) == ["invoice", "tracking", "delivery"]
    assert parts == case["parts"]
    assert parts["invoice"]["invoiceValue"] == "10890"  # 99.90 + 9.00 freight, in cents


def test_invoice_number_with_a_slash_is_rejected() -> None:
    update = update_from(fixture("invoice.json")["update"])
    assert update.invoice is not None
    update = replace(update, invoice=replace(update.invoice, number="1234/1"))

    with pytest.raises(RecordRejected, match="'/'"):
        order_update_payloads(update)


def test_invoice_with_a_mistyped_access_key_is_rejected() -> None:
    update = update_from(fixture("invoice.json")["update"])
    assert update.invoice is not None
    update = replace(update, invoice=replace(update.invoice, nfe_key=VALID_KEY[:-1] + "2"))

    with pytest.raises(RecordRejected, match="check digit 2, expected 1"):
        order_update_payloads(update)


def test_parts_wait_for_what_they_need_and_canceled_orders_get_none() -> None:
    update = update_from(fixture("invoice.json")["update"])

    assert order_update_payloads(replace(update, status=OrderStatus.canceled)) == {}
    assert order_update_payloads(replace(update, invoice=None)) == {}
    assert list(order_update_payloads(replace(update, events=()))) == ["invoice", "tracking"]
    untracked = replace(update, shipment=replace(update.shipment, tracking_code=None))  # type: ignore[arg-type]
    assert list(order_update_payloads(untracked)) == ["invoice"]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("Cajamar/SP", ("Cajamar", "SP")),
        ("CAJAMAR - SP", ("CAJAMAR", "SP")),
        ("Unidade de Tratamento - São Paulo / sp", ("Unidade de Tratamento - São Paulo", "SP")),
        ("Embu-Guaçu", ("Embu-Guaçu", "")),
        ("CO CAMPINAS", ("CO CAMPINAS", "")),
        (None, ("", "")),
    ],
)
def test_split_location(location: str | None, expected: tuple[str, str]) -> None:
    assert split_location(location) == expected


# -- NF-e -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("first43", "digit"),
    [
        ("3524031122233300018155001000001234112345678", 1),
        ("5206043300991100250655012000000780026730161", 5),
        ("3521032069544800018455001000003589198183992", 3),
        ("3526101234567800019555001000000123148291736", 4),
        ("35261012ABC34501DE3555001000000123148291736", 4),  # alphanumeric CNPJ (from 2026)
    ],
)
def test_access_key_check_digit_vectors(first43: str, digit: int) -> None:
    assert check_digit(first43) == digit
    assert access_key_problem(f"{first43}{digit}") is None
    assert "expected" in (access_key_problem(f"{first43}{(digit + 1) % 10}") or "")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (VALID_KEY[:-1], "has 43 characters"),
        (VALID_KEY + "0", "has 45 characters"),
        (VALID_KEY[:30] + "x" + VALID_KEY[31:], "must be digits"),
        ("35250312345678000199550010000001231000001234", "check digit 4, expected 5"),  # the reference's sample
    ],
)
def test_malformed_access_keys_are_explained(key: str, problem: str) -> None:
    assert problem in (access_key_problem(key) or "")


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2))
def test_money_round_trips_through_cents(amount: Decimal) -> None:
    assert from_cents(cents(amount)) == amount
    assert str(from_cents(cents(amount))) == str(amount.quantize(Decimal("0.01"))).replace("-0.00", "0.00")


@given(st.text(alphabet="0123456789", min_size=43, max_size=43))
def test_every_43_digits_with_their_check_digit_make_a_valid_key(first43: str) -> None:
    key = f"{first43}{check_digit(first43)}"
    assert access_key_problem(key) is None
    assert access_key_problem(f"{first43}{(check_digit(first43) + 1) % 10}") is not None


# -- feed and backstop ------------------------------------------------------------------------

def test_feed_config_matches_only_our_filter_and_timeout() -> None:
    wanted = feed_config(300)
    echoed = {"filter": wanted["filter"],
              "queue": {"visibilityTimeoutInSeconds": 300, "messageRetentionPeriodInSeconds": 345600},
              "quantity": 3}

    assert feed_config_matches(echoed, wanted)
    assert not feed_config_matches({**echoed, "filter": {"type": "FromWorkflow", "status": ["invoiced"]}}, wanted)
    assert not feed_config_matches(echoed, feed_config(600))
    assert not feed_config_matches({}, wanted)


def test_backstop_is_due_on_since_no_cursor_or_an_old_one() -> None:
    now = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
    every = timedelta(minutes=30)

    assert backstop_due(None, None, now, every)
    assert backstop_due((now - timedelta(minutes=5)).isoformat(), now - timedelta(days=1), now, every)
    assert backstop_due((now - timedelta(minutes=31)).isoformat(), None, now, every)
    assert backstop_due("not a time", None, now, every)
    assert not backstop_due((now - timedelta(minutes=5)).isoformat(), None, now, every)
