"""The Mercado Livre adapter against the fake API (in process, through httpx.WSGITransport):
each flow's requests, payloads and the rules the reference sets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, ml_channel
from contract.suite import NFE_KEY, DictLinks

from syncctl.channels.base import OrderBatch
from syncctl.channels.mercadolivre import MercadoLivreChannel, site_iso, site_local
from syncctl.domain import (
    DeliveryStatus,
    EffectivePrice,
    ImportOutcome,
    Invoice,
    Order,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    TicketMessage,
)
from syncctl.errors import NothingToSend, RecordRejected, Undelivered
from syncctl.sandbox.mercadolivre import (
    AI_AGENT_ID,
    BUYER_ID,
    SELLER_ID,
    FakeMercadoLivre,
)

NFE_XML = f'<nfeProc versao="4.00"><NFe><infNFe Id="NFe{NFE_KEY}"><ide><nNF>1234</nNF></ide></infNFe></NFe></nfeProc>'


@dataclass
class Seller:
    """The fake, the adapter on it, the Binder it writes and the "ERP" orders it knows."""

    fake: FakeMercadoLivre
    root: Path
    links: DictLinks = field(default_factory=DictLinks)
    known: set[str] = field(default_factory=set)
    now: datetime = T0

    def channel(self, **options: Any) -> MercadoLivreChannel:
        return ml_channel(self.fake, self.root / "state.db", links=self.links, now=lambda: self.now,
                          known=self.known, refresh_token=self.token, **options)  # fmt: skip

    @property
    def token(self) -> str:
        if not hasattr(self, "_token"):
            self._token = self.fake.issue_refresh_token()
        return self._token

    def writes(self, prefix: str = "/") -> list[tuple[str, str, Any]]:
        return [(r.method, r.path, r.body) for r in self.fake.requests_log
                if r.method != "GET" and r.path.startswith(prefix) and r.path != "/oauth/token"]  # fmt: skip

    def pull(self, channel: MercadoLivreChannel, cursor: str | None = None) -> tuple[list[Order], str | None, list[str]]:
        """What pull-orders does: import each batch, then tell the adapter."""
        orders, notes = [], []
        for batch in channel.pull_orders(cursor, None):
            for order in batch.orders:
                self.known.add(order.channel_order_id)
                channel.after_import(order, ImportOutcome(order_id=1, created=True))
            orders += batch.orders
            notes += batch.notes
            cursor = batch.cursor or cursor
        return orders, cursor, notes


@pytest.fixture
def seller(tmp_path: Path) -> Seller:
    return Seller(FakeMercadoLivre(clock=lambda: T0, sleep=lambda _s: None), tmp_path)


@pytest.fixture
def channel(seller: Seller) -> Iterator[MercadoLivreChannel]:
    channel = seller.channel()
    yield channel
    channel.http.close()


def shirt(size: str, **changes: Any) -> Product:
    fields = dict(sku=f"CAM-{size}", name=f"Camiseta {size}", parent_sku="CAM", parent_name="Camiseta Básica",
                  ean="7891234567895", brand="Marca Exemplo", weight_kg=Decimal("0.25"), height_cm=Decimal(3),
                  width_cm=Decimal(25), length_cm=Decimal(30))  # fmt: skip
    return Product(**{**fields, **changes})


def legacy_shirt(fake: FakeMercadoLivre, **options: Any) -> str:
    return fake.add_item("Camiseta Básica", variations=[("CAM-P", {"SIZE": "P"}, 5), ("CAM-M", {"SIZE": "M"}, 3)],
                         **options)  # fmt: skip


def push(channel: MercadoLivreChannel, product: Product) -> None:
    channel.prepare_skus([product.sku])
    channel.push_product(product, channel.product_payload(product))


def push_stock(channel: MercadoLivreChannel, sku: str, quantity: int) -> None:
    level = StockLevel(sku, quantity)
    channel.prepare_skus([sku])
    channel.push_stock(level, channel.stock_payload(level))


def push_price(channel: MercadoLivreChannel, price: EffectivePrice) -> None:
    channel.prepare_skus([price.sku])
    channel.push_price(price, channel.price_payload(price))


# -- products: linked by SELLER_SKU, never duplicated ---------------------------------------------


def test_live_listings_are_linked_by_seller_sku_and_never_created(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = legacy_shirt(seller.fake)
    cap = seller.fake.add_item("Boné", sku="BONE", family_name="Boné")

    channel.prepare_skus(["CAM-P", "CAM-M", "BONE"])

    variations = [v["id"] for v in seller.fake.items[item]["variations"]]
    assert seller.links.by_kind["sku"] == {
        "CAM-P": f"{item}/{variations[0]}", "CAM-M": f"{item}/{variations[1]}", "BONE": cap,
    }  # fmt: skip
    assert all(method != "POST" for method, _, _ in seller.writes())


def test_a_sku_without_a_listing_is_refused_with_what_to_do(seller: Seller, channel: MercadoLivreChannel) -> None:
    with pytest.raises(RecordRejected, match="no Mercado Livre listing has SELLER_SKU CAM-P: create it on Mercado Livre"):
        push(channel, shirt("P"))
    assert seller.writes() == []


def test_a_variation_gets_its_gtin_and_the_item_its_title_and_brand(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = legacy_shirt(seller.fake)
    seller.fake.items[item]["title"] = "Camiseta antiga"

    push(channel, shirt("P"))
    push(channel, shirt("P"))  # in step already: writes nothing

    variation = seller.fake.items[item]["variations"][0]["id"]
    assert seller.writes() == [
        ("PUT", f"/items/{item}", {"title": "Camiseta Básica"}),
        ("PUT", f"/items/{item}/variations/{variation}", {"attributes": [{"id": "GTIN", "value_name": "7891234567895"}]}),
    ]


def test_a_user_products_item_gets_family_name_identity_and_package(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = seller.fake.add_item("Camiseta P", sku="CAM-P", family_name="Camiseta velha")

    push(channel, shirt("P"))

    [(_, _, body)] = seller.writes()
    assert body["family_name"] == "Camiseta Básica" and "title" not in body
    assert {a["id"]: a["value_name"] for a in body["attributes"]} == {
        "GTIN": "7891234567895", "SELLER_PACKAGE_HEIGHT": "3 cm", "SELLER_PACKAGE_WIDTH": "25 cm",
        "SELLER_PACKAGE_LENGTH": "30 cm", "SELLER_PACKAGE_WEIGHT": "250 g",
    }  # fmt: skip
    assert seller.fake.items[item]["family_name"] == "Camiseta Básica"


def test_a_title_frozen_by_sales_is_noted_not_fought(seller: Seller, channel: MercadoLivreChannel) -> None:
    seller.fake.add_item("Camiseta P antiga", sku="CAM-P", gtin="7891234567895", sold_quantity=3)
    product = shirt("P", parent_sku=None, parent_name=None, weight_kg=None, height_cm=None, width_cm=None, length_cm=None)

    with pytest.raises(NothingToSend, match="has sales, so Mercado Livre keeps its title 'Camiseta P antiga'"):
        push(channel, product)
    assert seller.writes() == []


# -- stock --------------------------------------------------------------------------------------


def test_stock_goes_to_the_item_or_to_its_variation(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = legacy_shirt(seller.fake)
    cap = seller.fake.add_item("Boné", sku="BONE")

    push_stock(channel, "CAM-M", 0)
    push_stock(channel, "BONE", 7)

    variation = seller.fake.items[item]["variations"][1]
    assert seller.writes() == [
        ("PUT", f"/items/{item}/variations/{variation['id']}", {"available_quantity": 0}),
        ("PUT", f"/items/{cap}", {"available_quantity": 7}),
    ]
    assert variation["available_quantity"] == 0 and seller.fake.items[cap]["available_quantity"] == 7


def test_a_full_listing_is_skipped_with_a_note(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = seller.fake.add_item("Caneca", sku="CANECA", logistic_type="fulfillment")

    with pytest.raises(NothingToSend, match=f"{item} is a Full listing: its stock is what sits in Mercado Livre's warehouse"):
        push_stock(channel, "CANECA", 30)
    assert seller.writes() == []


def test_multi_warehouse_stock_goes_to_the_user_product_with_its_x_version(seller: Seller) -> None:
    seller.fake.users[SELLER_ID]["tags"].append("warehouse_management")
    item = seller.fake.add_item("Boné", sku="BONE")
    up_id = seller.fake.items[item]["user_product_id"]
    seller.fake.faults.add(method="PUT", path_prefix="/user-products", status=409, times=1)  # someone else wrote first

    push_stock(seller.channel(), "BONE", 12)

    puts = [r for r in seller.fake.requests_log if r.method == "PUT"]
    assert [r.status for r in puts] == [409, 200]
    assert puts[-1].body == {"locations": [{"store_id": "9876543", "network_node_id": "BRP123451", "quantity": 12}]}
    assert seller.fake.items[item]["available_quantity"] == 12
    assert seller.fake.user_products[up_id]["version"] == 2


def test_multi_warehouse_stock_needs_store_id_when_the_seller_has_several(seller: Seller) -> None:
    seller.fake.users[SELLER_ID]["tags"].append("multiwarehouse")
    item = seller.fake.add_item("Boné", sku="BONE")
    locations = seller.fake.user_products[seller.fake.items[item]["user_product_id"]]["locations"]
    locations.append({"type": "seller_warehouse", "network_node_id": "BRP999", "store_id": "555", "quantity": 0})

    with pytest.raises(RecordRejected, match="seller warehouses: 9876543, 555.*set options.store_id"):
        push_stock(seller.channel(), "BONE", 3)
    push_stock(seller.channel(store_id="555"), "BONE", 3)
    assert locations[-1]["quantity"] == 3


# -- prices and promotions -------------------------------------------------------------------------


def test_list_price_alone_then_the_promotion_window(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = seller.fake.add_item("Boné", sku="BONE", price=Decimal("59.90"))
    price = EffectivePrice("BONE", Decimal("69.90"), Decimal("49.90"), T0 - timedelta(days=2), T0 + timedelta(days=5))

    push_price(channel, price)
    push_price(channel, price)  # the same promotion is running: nothing to write

    promo = f"/seller-promotions/items/{item}"
    assert seller.writes() == [
        ("PUT", f"/items/{item}", {"price": Decimal("69.9")}),
        ("POST", promo, {"deal_price": Decimal("49.9"), "start_date": site_local(T0),
                         "finish_date": site_local(T0 + timedelta(days=5)), "promotion_type": "PRICE_DISCOUNT"}),
    ]  # fmt: skip
    assert seller.fake.running_deal_price(item) == Decimal("49.90")


def test_a_long_promotion_goes_out_as_windows_of_at_most_14_days(seller: Seller) -> None:
    item = seller.fake.add_item("Boné", sku="BONE", price=Decimal("69.90"))
    price = EffectivePrice("BONE", Decimal("69.90"), Decimal("49.90"), T0, T0 + timedelta(days=60))

    push_price(seller.channel(), price)
    seller.now = T0 + timedelta(days=13, hours=1)  # the next window is due a day before this one ends
    seller.fake.advance(timedelta(days=13, hours=1).total_seconds())
    push_price(seller.channel(), price)

    posts = [body for method, path, body in seller.writes("/seller-promotions") if method == "POST"]
    assert [(p["start_date"], p["finish_date"]) for p in posts] == [
        (site_local(T0), site_local(T0 + timedelta(days=14))),
        (site_local(seller.now), site_local(T0 + timedelta(days=27))),
    ]
    assert [m for m, _, _ in seller.writes("/seller-promotions")] == ["POST", "DELETE", "POST"]
    assert seller.fake.running_deal_price(item) == Decimal("49.90")


def test_a_promotion_that_ended_in_the_erp_is_removed(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = seller.fake.add_item("Boné", sku="BONE", price=Decimal("69.90"))
    push_price(channel, EffectivePrice("BONE", Decimal("69.90"), Decimal("49.90"), T0, T0 + timedelta(days=3)))

    push_price(channel, EffectivePrice("BONE", Decimal("69.90")))

    assert [m for m, _, _ in seller.writes("/seller-promotions")] == ["POST", "DELETE"]
    assert seller.fake.running_deal_price(item) is None


def test_a_listing_under_price_automation_is_reported_not_fought(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = seller.fake.add_item("Boné", sku="BONE", price=Decimal("59.90"))
    seller.fake.automated_prices.add(item)
    price = EffectivePrice("BONE", Decimal("69.90"), Decimal("49.90"), T0, T0 + timedelta(days=3))

    with pytest.raises(NothingToSend, match="under Mercado Livre's price automation"):
        push_price(channel, price)
    assert seller.writes("/seller-promotions") == []
    assert seller.fake.items[item]["price"] == Decimal("59.90")


def test_variations_of_a_legacy_item_must_share_one_price(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = legacy_shirt(seller.fake, price=Decimal("59.90"))
    push_price(channel, EffectivePrice("CAM-P", Decimal("59.90")))

    with pytest.raises(RecordRejected, match=f"{item} is a listing with variations.*prices CAM-M unlike CAM-P"):
        push_price(channel, EffectivePrice("CAM-M", Decimal("64.90")))
    push_price(channel, EffectivePrice("CAM-P", Decimal("64.90")))  # the ERP gave them one price again
    push_price(channel, EffectivePrice("CAM-M", Decimal("64.90")))

    assert seller.fake.items[item]["price"] == Decimal("64.90")


# -- orders ---------------------------------------------------------------------------------------


def test_a_cart_is_one_erp_order_with_a_line_per_ml_order(seller: Seller, channel: MercadoLivreChannel) -> None:
    item = legacy_shirt(seller.fake)
    cap = seller.fake.add_item("Boné", sku="BONE")
    variation = seller.fake.items[item]["variations"][0]["id"]
    pack, ids = seller.fake.add_order([(item, variation, 2, Decimal("59.90")), (cap, None, 1, Decimal("39.90"))])

    orders, cursor, _ = seller.pull(channel)

    [order] = orders
    assert order.channel_order_id == str(pack) and len(ids) == 2
    assert [(line.sku, line.quantity, line.unit_price, line.channel_item_id) for line in order.lines] == [
        ("CAM-P", 2, Decimal("59.90"), f"{item}/{variation}"), ("BONE", 1, Decimal("39.90"), cap),
    ]  # fmt: skip
    assert (order.total, order.shipping_cost, order.status) == (Decimal("178.60"), Decimal("18.90"), OrderStatus.approved)
    assert json.loads(order.shipping_address or "{}")["zip_code"] == "22290140"
    assert cursor == T0.isoformat()


def test_three_pages_with_orders_arriving_between_them_are_read_once(seller: Seller, channel: MercadoLivreChannel) -> None:
    cap = seller.fake.add_item("Boné", sku="BONE", quantity=1000)
    first = [seller.fake.add_order([(cap, None, 1, Decimal("10.00"))])[0] for _ in range(120)]
    arrived: list[int] = []

    def while_paging(offset: int) -> None:
        if len(arrived) < 2:  # a sale lands between two page requests
            arrived.append(seller.fake.add_order([(cap, None, 1, Decimal("10.00"))])[0])

    seller.fake.after_orders_page = while_paging
    orders, cursor, _ = seller.pull(channel)
    seller.fake.after_orders_page = None
    again, _, _ = seller.pull(seller.channel(), cursor)

    keys = [order.channel_order_id for order in orders]
    assert sorted(keys) == sorted(str(key) for key in first + arrived) and len(keys) == len(set(keys))
    assert again == []


def orders_updated_in_a_row(seller: Seller, count: int) -> list[int]:
    """`count` orders updated a second apart, before now; an update (touch) moves one to the end."""
    seller.fake.orders_sort_key = "date_last_updated"
    cap = seller.fake.add_item("Boné", sku="BONE", quantity=1000)
    keys = [seller.fake.add_order([(cap, None, 1, Decimal("10.00"))])[0] for _ in range(count)]
    for n, key in enumerate(keys):
        seller.fake.orders[key]["date_last_updated"] = (T0 - timedelta(minutes=50) + timedelta(seconds=n)).isoformat()
    return keys


def test_an_order_moving_while_the_window_is_read_costs_another_pass_not_a_miss(seller: Seller) -> None:
    keys = orders_updated_in_a_row(seller, 60)
    moved: list[int] = []

    def while_paging(offset: int) -> None:
        if not moved:
            moved.append(keys[3])
            seller.fake.touch_order(keys[3])  # leaves its place: the rest shift back by one

    seller.fake.after_orders_page = while_paging
    orders, cursor, _ = seller.pull(seller.channel())

    assert sorted(order.channel_order_id for order in orders) == sorted(str(key) for key in keys)
    assert cursor is not None


def test_a_window_that_never_holds_still_leaves_the_cursor(seller: Seller) -> None:
    keys = orders_updated_in_a_row(seller, 60)

    def while_paging(offset: int) -> None:
        if offset == 0:  # every pass, the order at the front moves to the end
            front = min(keys, key=lambda key: seller.fake.orders[key]["date_last_updated"])
            seller.fake.advance(1)
            seller.fake.touch_order(front)

    seller.fake.after_orders_page = while_paging

    _, cursor, notes = seller.pull(seller.channel())

    assert cursor is None
    assert notes == ["orders kept changing while they were read: the next run reads them again"]


def test_the_window_rounds_to_whole_hours_as_ml_truncates_it(seller: Seller) -> None:
    cap = seller.fake.add_item("Boné", sku="BONE")
    seller.fake.advance(45 * 60)
    key, _ = seller.fake.add_order([(cap, None, 1, Decimal("10.00"))])  # updated at 12:45 UTC
    seller.now = T0 + timedelta(minutes=50)

    orders, _, _ = seller.pull(seller.channel())

    *_, search = (r for r in seller.fake.requests_log if r.path == "/orders/search")
    assert search.query["order.date_last_updated.to"] == site_iso(T0 + timedelta(hours=1))  # 12:50 rounded up
    assert site_iso(T0) == "2026-11-26T09:00:00.000-03:00"  # the site's offset, milliseconds
    assert [order.channel_order_id for order in orders] == [str(key)]


def test_a_cancellation_comes_back_and_a_partial_one_is_noted(seller: Seller, channel: MercadoLivreChannel) -> None:
    cap = seller.fake.add_item("Boné", sku="BONE")
    pack, (first, second) = seller.fake.add_order([(cap, None, 1, Decimal("10.00")), (cap, None, 2, Decimal("10.00"))])
    _, cursor, _ = seller.pull(channel)

    seller.fake.set_order_status(first, "cancelled")
    partial, cursor, notes = seller.pull(seller.channel(), cursor)
    seller.fake.set_order_status(second, "cancelled")
    whole, _, _ = seller.pull(seller.channel(), cursor)

    assert [o.status for o in partial] == [OrderStatus.approved]
    assert notes == [f"pack {pack}: order(s) {first} cancelled on Mercado Livre while the rest stands: review the ERP order"]
    assert [(o.status, o.channel_status) for o in whole] == [(OrderStatus.canceled, "cancelled")]


def test_a_pack_ml_cannot_show_yet_is_unreadable_until_the_next_run(seller: Seller) -> None:
    cap = seller.fake.add_item("Boné", sku="BONE")
    pack, _ = seller.fake.add_order([(cap, None, 1, Decimal("10.00")), (cap, None, 1, Decimal("10.00"))])
    seller.fake.faults.add(method="GET", path_prefix=f"/packs/{pack}", status=404)  # right after the sale

    batches = list(seller.channel().pull_orders(None, None))
    later, _, _ = seller.pull(seller.channel())

    [why] = [why for batch in batches for why in batch.unreadable.values()]
    assert why.startswith(f"pack {pack} could not be read whole (HTTP 404") and "next run" in why
    assert [order for batch in batches for order in batch.orders] == []  # the job fails it and keeps the cursor
    assert [order.channel_order_id for order in later] == [str(pack)]


def test_an_order_awaiting_payment_is_not_imported_yet(seller: Seller, channel: MercadoLivreChannel) -> None:
    cap = seller.fake.add_item("Boné", sku="BONE")
    seller.fake.add_order([(cap, None, 1, Decimal("10.00"))], status="payment_in_process")

    assert seller.pull(channel)[0] == []


# -- order updates: NF-e and tracking ------------------------------------------------------------


def update_for(key: int, *, invoice_key: str = NFE_KEY, status: DeliveryStatus | None = DeliveryStatus.in_transit,
               delivered_at: datetime | None = None) -> OrderUpdate:  # fmt: skip
    return OrderUpdate(
        order_id=1, channel_order_id=str(key), status=OrderStatus.invoiced, lines=(), shipping_cost=Decimal("18.90"),
        invoice=Invoice(invoice_key, "1234", "1", T0, Decimal("78.80"), NFE_XML.replace(NFE_KEY, invoice_key)),
        shipment=Shipment(1, 1, "Jadlog", "JD123", "https://rastreio.example/JD123", shipped_at=T0,
                          delivery_status=status, delivered_at=delivered_at),
    )  # fmt: skip


def send_update(channel: MercadoLivreChannel, update: OrderUpdate) -> list[str]:
    """Each part as push-invoices sends it; the parts the channel had nothing to take for."""
    skipped = []
    for part, payload in channel.order_update_payloads(update).items():
        try:
            channel.push_order_update(update, part, payload)
        except NothingToSend as note:
            skipped.append(f"{part}: {note}")
    return skipped


def order_of(seller: Seller, mode: str, logistic_type: str) -> tuple[int, int]:
    cap = seller.fake.add_item("Boné", sku="BONE")
    key, _ = seller.fake.add_order([(cap, None, 1, Decimal("59.90"))], mode=mode, logistic_type=logistic_type)
    return key, seller.fake.orders[key]["shipping"]["id"]


def test_me2_nfe_is_imported_into_the_shipment_and_tracking_is_mls_own(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, shipment = order_of(seller, "me2", "cross_docking")

    skipped = send_update(channel, update_for(key))
    again = send_update(seller.channel(), update_for(key))  # read back: it is there already

    assert skipped == again == ["tracking: a Mercado Envios (ME2) shipment: Mercado Livre tracks it itself, nothing to push"]
    [(method, path, _)] = seller.writes()
    assert (method, path) == ("POST", f"/shipments/{shipment}/invoice_data")
    assert seller.fake.invoice_data[shipment] == NFE_XML
    assert seller.fake.shipments[shipment]["substatus"] == "ready_to_print"


def test_a_full_shipments_nfe_is_mls_own(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "fulfillment")

    assert send_update(channel, update_for(key))[0] == "invoice: a Full shipment: Mercado Livre issues its NF-e itself"
    assert seller.writes() == []


def test_me1_nfe_goes_to_the_pack_and_tracking_to_seller_notifications(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, shipment = order_of(seller, "me1", "default")

    assert send_update(channel, update_for(key)) == []
    send_update(seller.channel(), update_for(key))  # nothing new: neither written again

    [attach, notify] = seller.writes()
    assert attach[:2] == ("POST", f"/packs/{key}/fiscal_documents")
    assert [doc["file_name"] for doc in seller.fake.fiscal_documents[key]] == [f"NFe{NFE_KEY}.xml"]
    assert notify == ("POST", f"/v2/shipments/{shipment}/seller_notifications", {
        "payload": {"comment": "Jadlog", "date": T0.isoformat()}, "status": "shipped", "substatus": None,
        "tracking_number": "JD123", "tracking_url": "https://rastreio.example/JD123",
    })  # fmt: skip


def test_a_delivery_reported_first_is_sent_after_shipped_and_only_once(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, shipment = order_of(seller, "me1", "default")
    delivered = update_for(key, status=DeliveryStatus.delivered, delivered_at=T0 + timedelta(days=2))

    send_update(channel, delivered)
    send_update(seller.channel(), delivered)  # ML holds a final status: never twice

    sent = [body["status"] for _, path, body in seller.writes("/v2/shipments")]
    assert sent == ["shipped", "delivered"]
    assert seller.fake.shipments[shipment]["status"] == "delivered"


def test_a_corrected_nfe_replaces_the_one_attached_to_the_pack(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me1", "default")
    send_update(channel, update_for(key))
    corrected = NFE_KEY[:-1] + "0"  # another key: a corrected NF-e (check digit aside, the fake keeps it)

    channel.push_order_update(update_for(key), "invoice", {"nfe_key": corrected, "xml": NFE_XML.replace(NFE_KEY, corrected)})

    assert [m for m, _, _ in seller.writes("/packs")] == ["POST", "DELETE", "POST"]
    assert [doc["file_name"] for doc in seller.fake.fiscal_documents[key]] == [f"NFe{corrected}.xml"]


def test_custom_shipping_takes_its_tracking_on_the_shipment(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, shipment = order_of(seller, "custom", "custom")

    channel.push_order_update(update_for(key), "tracking", channel.order_update_payloads(update_for(key))["tracking"])

    assert seller.writes() == [("PUT", f"/shipments/{shipment}", {"tracking_number": "JD123", "status": "shipped"})]


# -- SAC: post-sale messages and claims ------------------------------------------------------------


def test_buyer_messages_come_down_as_a_ticket_without_marking_them_read(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "cross_docking")
    message_id = seller.fake.add_buyer_message(key, "Posso trocar o tamanho?")

    [batch] = list(channel.pull_tickets(None, None))

    [ticket] = batch.tickets
    assert (ticket.channel_ticket_id, ticket.channel_order_id, ticket.status) == (f"pack:{key}", str(key), "active")
    assert [(m.direction, m.body, m.channel_message_id, m.author) for m in ticket.messages] == [
        ("in", "Posso trocar o tamanho?", message_id, "buyer"),
    ]
    assert seller.fake.conversations[key]["messages"][0]["message_date"]["read"] is None


def reply(text: str) -> TicketMessage:
    return TicketMessage(direction="out", body=text, created_at=T0, id=7)


def test_a_reply_goes_to_the_buyer_who_wrote(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "cross_docking")
    seller.fake.add_buyer_message(key, "Chega quando?")

    sent = channel.send_reply(f"pack:{key}", reply("Amanhã!"))

    [(_, path, body)] = seller.writes()
    assert path == f"/messages/packs/{key}/sellers/{SELLER_ID}"
    assert body == {"from": {"user_id": str(SELLER_ID)}, "to": {"user_id": str(BUYER_ID)}, "text": "Amanhã!",
                    "attachments": []}  # fmt: skip
    assert sent == seller.fake.conversations[key]["messages"][-1]["id"]


def test_an_intermediated_conversation_is_answered_to_mls_agent(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "fulfillment")
    seller.fake.intermediate(key)
    seller.fake.add_buyer_message(key, "Olá, sou o assistente do Mercado Livre.", from_agent=True)

    channel.send_reply(f"pack:{key}", reply("Obrigado!"))

    assert seller.writes()[0][2]["to"] == {"user_id": str(AI_AGENT_ID)}


@pytest.mark.parametrize(
    ("setup", "text", "refusal"),
    [
        (lambda fake, key: None, "x" * 351, "351 characters; Mercado Livre takes at most 350"),
        (lambda fake, key: fake.block_conversation(key), "Oi", "does not take messages on purchase .* now \\(blocked_by_mediation\\)"),
    ],
)
def test_replies_ml_would_refuse_are_refused_before_sending(seller: Seller, channel: MercadoLivreChannel, setup: Any,
                                                            text: str, refusal: str) -> None:  # fmt: skip
    key, _ = order_of(seller, "me2", "cross_docking")
    seller.fake.add_buyer_message(key, "Oi")
    setup(seller.fake, key)

    with pytest.raises(RecordRejected, match=refusal):
        channel.send_reply(f"pack:{key}", reply(text))
    assert seller.writes() == []


def test_a_reply_moderation_refuses_is_undelivered_not_resent(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "cross_docking")
    seller.fake.add_buyer_message(key, "Oi")

    with pytest.raises(Undelivered, match="moderation refused the reply \\(SOCIAL_NETWORK_LINK\\)") as refused:
        channel.send_reply(f"pack:{key}", reply("Veja em https://loja.example"))
    assert refused.value.channel_message_id == seller.fake.conversations[key]["messages"][-1]["id"]


def test_a_reply_already_on_the_conversation_is_found(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "cross_docking")
    seller.fake.add_buyer_message(key, "Oi")
    sent = channel.send_reply(f"pack:{key}", reply("Olá!"))

    assert channel.find_sent_reply(f"pack:{key}", reply("Olá!"), T0) == sent
    assert channel.find_sent_reply(f"pack:{key}", reply("Outro texto"), T0) is None
    assert channel.find_sent_reply(f"pack:{key}", reply("Olá!"), T0 + timedelta(hours=1)) is None


def test_a_claim_is_a_ticket_answered_only_when_ml_allows(seller: Seller, channel: MercadoLivreChannel) -> None:
    key, _ = order_of(seller, "me2", "cross_docking")
    claim = seller.fake.add_claim(key, "Veio com defeito.")
    silenced = seller.fake.add_claim(key, "Outro problema.", actions=("refund",))

    tickets = {t.channel_ticket_id: t for batch in channel.pull_tickets(None, None) for t in batch.tickets}
    sent = channel.send_reply(f"claim:{claim}", reply("Vamos trocar."))

    ticket = tickets[f"claim:{claim}"]
    assert (ticket.channel_order_id, [m.body for m in ticket.messages]) == (str(key), ["Veio com defeito."])
    assert seller.writes() == [("POST", f"/post-purchase/v1/claims/{claim}/actions/send-message",
                                {"receiver_role": "complainant", "message": "Vamos trocar.", "attachments": []})]  # fmt: skip
    assert channel.find_sent_reply(f"claim:{claim}", reply("Vamos trocar."), T0) == sent
    with pytest.raises(RecordRejected, match="does not let the seller write to the complainant.*available actions: refund"):
        channel.send_reply(f"claim:{silenced}", reply("Oi"))


def test_a_ticket_that_is_not_mercado_livres_is_refused(channel: MercadoLivreChannel) -> None:
    with pytest.raises(RecordRejected, match="ERP-7 is not a Mercado Livre conversation or claim"):
        channel.send_reply("ERP-7", reply("Oi"))


def test_batches_are_order_batches(seller: Seller, channel: MercadoLivreChannel) -> None:
    batches = list(channel.pull_orders(None, None))
    assert all(isinstance(batch, OrderBatch) for batch in batches) and batches[-1].cursor == T0.isoformat()
