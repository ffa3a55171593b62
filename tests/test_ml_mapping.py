"""The Mercado Livre adapter's pure mappers, on the reference's own examples."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from syncctl.channels.mercadolivre import (
    Listing,
    conversation_packs,
    counterpart,
    item_changes,
    listing_for_sku,
    me1_notification,
    me1_steps,
    multipart,
    order_from_ml,
    order_update_payloads,
    order_window_start,
    order_windows,
    price_payload,
    product_payload,
    promotion_body,
    promotion_window,
    stock_location,
    ticket_from_claim,
    ticket_from_conversation,
    tracking_payload,
)
from syncctl.domain import (
    UTC,
    DeliveryStatus,
    EffectivePrice,
    Invoice,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
)
from syncctl.errors import RecordRejected

T0 = datetime(2025, 2, 1, 15, 0, tzinfo=UTC)
NFE_KEY = "35240311222333000181550010000012341123456781"


def order_json(**changes: Any) -> dict[str, Any]:
    """§6.2's example order, parsed as the client parses JSON (Decimal for fractions)."""
    text = json.dumps({
        "id": 2000003508897196, "date_created": "2025-02-01T10:12:30.000-04:00",
        "date_last_updated": "2025-02-01T14:14:02.973Z", "pack_id": 2000003508553677, "status": "paid",
        "order_items": [{"item": {"id": "MLB4123456789", "variation_id": 180123456701, "seller_sku": "CAM-AZ-M"},
                         "quantity": 2, "unit_price": 59.9, "full_unit_price": 59.9}],
        "total_amount": 119.8, "paid_amount": 138.7,
        "buyer": {"id": 987654321, "nickname": "COMPRADOR123", "first_name": "Maria", "last_name": "Silva"},
        "payments": [{"status": "approved", "transaction_amount": 119.8, "shipping_cost": 18.9,
                      "total_paid_amount": 138.7, "coupon_amount": 0}],
        "shipping": {"id": 43123456789},
    })  # fmt: skip
    return json.loads(text, parse_float=Decimal) | changes


# -- listings and products ------------------------------------------------------------------


def item(item_id: str, status: str = "active", sku: str | None = None, variations: tuple[tuple[int, str], ...] = ()) -> dict:
    return {
        "id": item_id, "status": status,
        "attributes": [{"id": "SELLER_SKU", "value_name": sku}] if sku else [],
        "variations": [{"id": vid, "attributes": [{"id": "SELLER_SKU", "value_name": vsku}]} for vid, vsku in variations],
    }  # fmt: skip


def test_a_sku_is_found_on_an_item_or_on_a_variation_preferring_live_listings() -> None:
    items = [item("MLB2", "paused", "CAM-M"), item("MLB3", variations=((7, "CAM-P"), (8, "CAM-M"))),
             item("MLB1", "closed", "CAM-M")]  # fmt: skip

    assert listing_for_sku(items, "CAM-M") == Listing("MLB3", 8)
    assert listing_for_sku(items, "CAM-P") == Listing("MLB3", 7)
    assert listing_for_sku(items, "CAM-G") is None
    assert str(Listing("MLB3", 8)) == "MLB3/8" and Listing.parse("MLB3/8") == Listing("MLB3", 8)


def test_product_payload_is_what_syncctl_keeps_in_step() -> None:
    product = Product(sku="CAM-P", name="Camiseta P", parent_sku="CAM", parent_name="Camiseta", ean="7891234567895",
                      brand="Malha", weight_kg=Decimal("0.250"), height_cm=Decimal("3.0"), width_cm=Decimal(25))  # fmt: skip

    assert product_payload(product) == {
        "name": "Camiseta",
        "identity": {"SELLER_SKU": "CAM-P", "GTIN": "7891234567895"},
        "brand": "Malha",
        "package": {"SELLER_PACKAGE_HEIGHT": "3 cm", "SELLER_PACKAGE_WIDTH": "25 cm", "SELLER_PACKAGE_WEIGHT": "250 g"},
    }


def test_a_variation_keeps_its_identity_to_itself() -> None:
    payload = product_payload(Product(sku="CAM-P", name="Camiseta P", parent_name="Camiseta", ean="7891234567895",
                                      brand="Malha", height_cm=Decimal(3)))  # fmt: skip
    legacy = {"title": "Camiseta", "sold_quantity": 0, "attributes": [{"id": "BRAND", "value_name": "Malha"}]}

    assert item_changes(legacy, Listing("MLB1", 7), payload) == {}  # GTIN and package belong to the variation
    assert item_changes(legacy, Listing("MLB1"), payload) == {"attributes": [
        {"id": "SELLER_SKU", "value_name": "CAM-P"}, {"id": "GTIN", "value_name": "7891234567895"},
        {"id": "SELLER_PACKAGE_HEIGHT", "value_name": "3 cm"},
    ]}  # fmt: skip


def test_the_warehouse_that_takes_the_stock() -> None:
    stock = {"locations": [{"type": "seller_warehouse", "network_node_id": "BRP1", "store_id": "98", "quantity": 1},
                           {"type": "meli_facility", "quantity": 5}]}  # fmt: skip
    assert stock_location(stock, None, "MLBU1") == {"store_id": "98", "network_node_id": "BRP1"}
    with pytest.raises(RecordRejected, match="set options.store_id"):
        stock_location(stock, "77", "MLBU1")


# -- prices ---------------------------------------------------------------------------------------


def test_a_promotion_within_14_days_is_one_window() -> None:
    price = EffectivePrice("CAM-P", Decimal("59.90"), Decimal("49.90"), T0 - timedelta(days=1), T0 + timedelta(days=6))

    payload = price_payload(price, T0)

    assert payload == {"price": Decimal("59.90"), "promotion": {
        "deal_price": Decimal("49.90"), "start": (T0 - timedelta(days=1)).isoformat(),
        "finish": (T0 + timedelta(days=6)).isoformat(),
    }}  # fmt: skip
    assert promotion_body(payload["promotion"], T0) == {  # a start in the past starts now, in site time
        "deal_price": Decimal("49.90"), "start_date": "2025-02-01T12:00:00", "finish_date": "2025-02-07T12:00:00",
        "promotion_type": "PRICE_DISCOUNT",
    }  # fmt: skip


@pytest.mark.parametrize("days_in", [0, 5, 12.9, 13, 20, 26.5, 40])
def test_long_promotions_are_windows_of_14_days_renewed_a_day_early(days_in: float) -> None:
    starts, ends = T0, T0 + timedelta(days=45)
    now = T0 + timedelta(days=days_in)

    start, finish = promotion_window(starts, ends, now)

    assert start <= now < finish and finish - start <= timedelta(days=14)
    assert finish - now >= timedelta(days=1) or finish == ends  # renewed before it runs out


def test_a_promotion_window_is_stable_while_it_runs_so_its_hash_is() -> None:
    price = EffectivePrice("CAM-P", Decimal("59.90"), Decimal("49.90"), T0, T0 + timedelta(days=30))
    assert price_payload(price, T0 + timedelta(days=2)) == price_payload(price, T0 + timedelta(days=12))
    assert price_payload(price, T0 + timedelta(days=12)) != price_payload(price, T0 + timedelta(days=13))


def test_a_sale_price_not_below_the_list_price_is_no_promotion_and_zero_is_refused() -> None:
    assert price_payload(EffectivePrice("X", Decimal(10), Decimal(10)), T0)["promotion"] is None
    with pytest.raises(RecordRejected, match="must be above 0"):
        price_payload(EffectivePrice("X", Decimal(0)), T0)


# -- orders -------------------------------------------------------------------------------------


def test_windows_are_whole_hours_from_the_cursor_less_the_overlap() -> None:
    start = order_window_start("2025-02-01T14:20:00+00:00", None, T0, 7, timedelta(minutes=60))
    assert start == datetime(2025, 2, 1, 13, 20, tzinfo=UTC)
    assert order_windows(start, T0 + timedelta(minutes=5), timedelta(hours=1)) == [
        (datetime(2025, 2, 1, 13, tzinfo=UTC), datetime(2025, 2, 1, 14, tzinfo=UTC)),
        (datetime(2025, 2, 1, 14, tzinfo=UTC), datetime(2025, 2, 1, 15, tzinfo=UTC)),
        (datetime(2025, 2, 1, 15, tzinfo=UTC), datetime(2025, 2, 1, 16, tzinfo=UTC)),
    ]
    assert order_window_start(None, None, T0, 7, timedelta(0)) == T0 - timedelta(days=7)
    assert order_window_start("garbage", T0 - timedelta(hours=2), T0, 7, timedelta(0)) == T0 - timedelta(hours=2)


def test_the_reference_order_as_an_erp_order() -> None:
    shipment = {"destination": {"receiver_name": "Maria Silva",
                                "shipping_address": {"address_line": "Rua Exemplo 123", "zip_code": "22290140"}}}  # fmt: skip
    order = order_from_ml("2000003508553677", [order_json()], {}, shipment)

    assert order is not None
    assert (order.channel_order_id, order.status, order.channel_status) == ("2000003508553677", OrderStatus.approved, "paid")
    assert order.placed_at == datetime(2025, 2, 1, 14, 12, 30, tzinfo=UTC)
    assert [(l.sku, l.quantity, l.unit_price, l.channel_item_id) for l in order.lines] == [
        ("CAM-AZ-M", 2, Decimal("59.90"), "MLB4123456789/180123456701"),
    ]
    assert (order.total, order.shipping_cost, order.discount) == (Decimal("138.70"), Decimal("18.90"), Decimal("0.00"))
    assert (order.customer_name, order.customer_email) == ("Maria Silva", None)
    assert json.loads(order.shipping_address or "") == {"receiver_name": "Maria Silva",
                                                        "address_line": "Rua Exemplo 123", "zip_code": "22290140"}  # fmt: skip
    assert json.loads(order.raw or "")["orders"][0]["id"] == 2000003508897196


def test_a_line_without_seller_sku_is_found_through_its_link() -> None:
    line = {"item": {"id": "MLB1", "variation_id": None, "seller_sku": None}, "quantity": 1, "unit_price": Decimal(5)}
    order = order_from_ml("1", [order_json(order_items=[line])], {"MLB1": "ERP-9"})
    assert order is not None and order.lines[0].sku == "ERP-9"


@pytest.mark.parametrize(
    ("statuses", "expected", "lines"),
    [
        (("paid", "paid"), OrderStatus.approved, 2),
        (("paid", "cancelled"), OrderStatus.approved, 1),  # the cancelled order's line is left out
        (("cancelled", "invalid"), OrderStatus.canceled, 2),
        (("payment_in_process", "paid"), OrderStatus.approved, 1),
        (("payment_required", "confirmed"), None, 0),
    ],
)
def test_a_packs_status_and_lines(statuses: tuple[str, str], expected: OrderStatus | None, lines: int) -> None:
    orders = [order_json(id=n, status=status) for n, status in enumerate(statuses, start=1)]
    order = order_from_ml("P", orders, {})
    if expected is None:
        assert order is None
    else:
        assert order is not None and (order.status, len(order.lines)) == (expected, lines)


# -- order updates --------------------------------------------------------------------------------


def update(**changes: Any) -> OrderUpdate:
    fields: dict[str, Any] = dict(
        order_id=1, channel_order_id="2000003508553677", status=OrderStatus.invoiced, lines=(),
        shipping_cost=Decimal("18.90"), invoice=Invoice(NFE_KEY, "1234", "1", T0, Decimal("138.70"), "<nfeProc/>"),
        shipment=Shipment(1, 1, "Jadlog", "JD1", "https://j.example/JD1", shipped_at=T0),
    )  # fmt: skip
    return OrderUpdate(**{**fields, **changes})


def test_the_parts_of_an_order_update() -> None:
    assert list(order_update_payloads(update())) == ["invoice", "tracking"]
    assert order_update_payloads(update(status=OrderStatus.canceled)) == {}
    assert list(order_update_payloads(update(shipment=None))) == ["invoice"]
    with pytest.raises(RecordRejected, match="takes the NF-e as its XML"):
        order_update_payloads(update(invoice=Invoice(NFE_KEY, "1234", "1", T0, Decimal(1), None)))
    with pytest.raises(RecordRejected, match="check digit"):
        order_update_payloads(update(invoice=Invoice(NFE_KEY[:-1] + "0", "1234", "1", T0, Decimal(1), "<x/>")))


@pytest.mark.parametrize(
    ("delivery", "ml_status"),
    [(None, "shipped"), (DeliveryStatus.in_transit, "shipped"), (DeliveryStatus.delivered, "delivered"),
     (DeliveryStatus.returning, "not_delivered"), (DeliveryStatus.delivery_failed, "shipped")],
)  # fmt: skip
def test_only_a_final_erp_status_sends_a_final_me1_status(delivery: DeliveryStatus | None, ml_status: str) -> None:
    shipment = Shipment(1, 1, "Jadlog", "JD1", None, shipped_at=T0, delivery_status=delivery)
    assert tracking_payload(shipment)["status"] == ml_status


@pytest.mark.parametrize(
    ("ml_now", "wanted", "tracking", "steps"),
    [
        ("ready_to_ship", "shipped", "JD1", ["shipped"]),
        ("shipped", "shipped", "JD1", []),
        ("shipped", "shipped", "JD2", ["shipped"]),  # a new code
        ("ready_to_ship", "delivered", "JD1", ["shipped", "delivered"]),
        ("shipped", "delivered", "JD1", ["delivered"]),
        ("delivered", "delivered", "JD1", []),  # final: never twice
        ("not_delivered", "shipped", "JD1", []),
    ],
)
def test_me1_steps(ml_now: str, wanted: str, tracking: str, steps: list[str]) -> None:
    shipment = {"status": ml_now, "tracking_number": "JD1"}
    assert me1_steps(shipment, {"status": wanted, "tracking_number": tracking}) == steps


def test_a_returning_parcel_is_not_delivered_with_its_substatus_dated_now_when_undated() -> None:
    body = me1_notification("not_delivered", {"carrier": "Jadlog", "date": None, "tracking_number": None}, 154, T0)
    assert body == {"payload": {"comment": "Jadlog", "date": T0.isoformat(), "service_id": 154},
                    "status": "not_delivered", "substatus": "returning_to_sender"}  # fmt: skip


def test_multipart_is_one_file_with_a_boundary_from_its_content() -> None:
    body, content_type = multipart("fiscal_document", "NFe1.xml", "application/xml", b"<x/>")
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert b'name="fiscal_document"; filename="NFe1.xml"' in body and b"\r\n\r\n<x/>\r\n" in body
    assert multipart("fiscal_document", "NFe1.xml", "application/xml", b"<x/>") == (body, content_type)


# -- SAC ---------------------------------------------------------------------------------------------

MESSAGE = {  # §10.2's example message
    "id": "0194c1f2a3b47d8e9f0a1b2c3d4e5f60", "from": {"user_id": 987654321}, "to": {"user_id": 123456789},
    "status": "available", "text": "Olá, posso trocar o tamanho?",
    "message_date": {"received": "2025-02-03T12:00:00.000Z", "created": "2025-02-03T12:00:00.000Z", "read": None},
}  # fmt: skip


def test_a_conversation_is_a_ticket_of_the_buyers_messages() -> None:
    ours = MESSAGE | {"id": "x", "from": {"user_id": "123456789"}, "text": "Pode sim."}  # ids as text, too
    head = {"conversation_status": {"path": "/packs/2000003508553677/sellers/123456789", "status": "ACTIVE"}}

    ticket = ticket_from_conversation("2000003508553677", head, [MESSAGE, ours], "123456789", T0)

    assert (ticket.channel_ticket_id, ticket.status, ticket.channel_order_id) == (
        "pack:2000003508553677", "active", "2000003508553677")
    assert [(m.direction, m.body, m.channel_message_id) for m in ticket.messages] == [
        ("in", "Olá, posso trocar o tamanho?", MESSAGE["id"]),
    ]
    assert ticket.opened_at == datetime(2025, 2, 3, 12, tzinfo=UTC)
    assert counterpart(head["conversation_status"], [MESSAGE, ours], "123456789") == "987654321"


def test_an_intermediated_conversation_without_messages_goes_to_mls_agent() -> None:
    status = {"path": "/packs/1/sellers/123456789/conversations/post_sale"}
    assert counterpart(status, [], "123456789") == "3037675074"
    with pytest.raises(RecordRejected):
        counterpart({"path": "/packs/1/sellers/123456789"}, [], "123456789")


def test_claim_messages_get_a_stable_key_from_who_when_and_what() -> None:
    claim = {"id": 5124016992, "type": "mediations", "stage": "claim", "status": "opened",
             "date_created": "2025-02-05T11:00:00.000-04:00", "last_updated": "2025-02-05T11:05:00.000-04:00"}  # fmt: skip
    messages = [{"sender_role": "complainant", "message": "O produto veio com defeito.",
                 "date_created": "2025-02-05T11:00:00.000-04:00"},
                {"sender_role": "respondent", "message": "Vamos trocar.", "date_created": "2025-02-05T12:00:00.000-04:00"}]  # fmt: skip

    ticket = ticket_from_claim(claim, messages, "2000003508553677")
    again = ticket_from_claim(claim, messages, "2000003508553677")

    assert [m.body for m in ticket.messages] == ["O produto veio com defeito."]
    [key] = [m.channel_message_id for m in ticket.messages]
    assert key and key.startswith("claim:5124016992:") and key == again.messages[0].channel_message_id


def test_unread_conversations_name_their_packs() -> None:
    unread = {"results": [{"resource": "/packs/2000003508553677/sellers/123456789", "count": 1},
                          {"resource": "/packs/7/sellers/123456789/conversations/post_sale", "count": 2},
                          {"resource": "/something/else", "count": 1}]}  # fmt: skip
    assert conversation_packs(unread) == ["2000003508553677", "7"]
