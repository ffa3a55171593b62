"""The VTEX adapter against the fake VTEX store (in process, through httpx.WSGITransport)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from syncctl.channels.base import ChannelContext, OrderBatch
from syncctl.channels.vtex import FEED_STATUSES, VtexChannel, VtexCredentials, VtexOptions, pricing_base_url
from syncctl.config import ChannelSettings
from syncctl.domain import (
    UTC,
    DeliveryStatus,
    EffectivePrice,
    Feature,
    ImportOutcome,
    Invoice,
    Order,
    OrderLine,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    TrackingEvent,
)
from syncctl.errors import RecordRejected, Unsupported
from syncctl.http import HttpClient
from syncctl.sandbox.vtex import FakeVtex

ACCOUNT = "demostore"
APP_KEY = "vtexappkey-demostore-TEST"
APP_TOKEN = "app-token-for-tests"
BASE_URL = "http://vtex.test"
T0 = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
NFE_KEY = "35240311222333000181550010000012341123456781"


class DictLinks:
    """The Binder as a dict: kind -> ERP id -> channel id."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[str, str]] = defaultdict(dict)

    def channel_ids(self, kind: str, erp_ids: list[str]) -> dict[str, str]:
        return {erp_id: self.by_kind[kind][erp_id] for erp_id in erp_ids if erp_id in self.by_kind[kind]}

    def erp_ids(self, kind: str, channel_ids: list[str]) -> dict[str, str]:
        reverse = {channel_id: erp_id for erp_id, channel_id in self.by_kind[kind].items()}
        return {channel_id: reverse[channel_id] for channel_id in channel_ids if channel_id in reverse}

    def link(self, kind: str, erp_id: str, channel_id: str) -> None:
        self.by_kind[kind][erp_id] = channel_id


@dataclass
class Store:
    fake: FakeVtex
    links: DictLinks = field(default_factory=DictLinks)
    known: set[str] = field(default_factory=set)  # order ids the "ERP" has

    def channel(self, **options: Any) -> VtexChannel:
        options = {"account": ACCOUNT, "warehouse_id": "1_1", "category_path": "Roupas/Camisetas", **options}
        settings = ChannelSettings(
            name="vtex-test",
            type="vtex",
            base_url=BASE_URL,
            credentials=VtexCredentials(app_key=APP_KEY, app_token=APP_TOKEN),
            options=VtexOptions(**options),
        )
        http = HttpClient(
            label="VTEX",
            base_url=BASE_URL,
            headers=VtexChannel.auth_headers(settings),
            transport=httpx.WSGITransport(app=self.fake),
            sleep=lambda _s: None,
        )
        ctx = ChannelContext(
            settings=settings,
            http=http,
            links=self.links,
            now=lambda: T0,
            known_orders=lambda ids: {order_id for order_id in ids if order_id in self.known},
        )
        return VtexChannel(ctx)

    def requests(self, method: str, path_prefix: str) -> list[Any]:
        return [r for r in self.fake.requests_log if r.method == method and r.path.startswith(path_prefix)]


@pytest.fixture
def store() -> Store:
    fake = FakeVtex(account=ACCOUNT, app_key=APP_KEY, app_token=APP_TOKEN, clock=lambda: T0, sleep=lambda _s: None)
    return Store(fake)


@pytest.fixture
def vtex(store: Store) -> Iterator[VtexChannel]:
    channel = store.channel()
    yield channel
    channel.http.close()


def camiseta(size: str = "P", **changes: Any) -> Product:
    fields: dict[str, Any] = {
        "sku": f"ERP-1-{size}", "name": f"Camiseta Básica {size}", "parent_sku": "ERP-1",
        "parent_name": "Camiseta Básica", "ean": f"789123456789{'PMG'.index(size)}", "brand": "Marca Exemplo",
        "description": "100% algodão", "weight_kg": Decimal("0.25"), "height_cm": Decimal(3), "width_cm": Decimal(25),
        "length_cm": Decimal(30),
    }
    return Product(**{**fields, **changes})


def push(vtex: VtexChannel, product: Product) -> None:
    vtex.prepare_skus([product.sku])
    vtex.push_product(product, vtex.product_payload(product))


def sku_id_of(store: Store, sku: str) -> int:
    return int(store.links.by_kind["sku"][sku])


# -- push-products -------------------------------------------------------------------------

def test_first_push_creates_product_trade_policy_sku_and_ean(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    push(vtex, camiseta("M"))  # a second variation of the same product

    [(product_id, product)] = store.fake.products.items()
    assert (product["Name"], product["RefId"], product["IsVisible"]) == ("Camiseta Básica", "ERP-1", True)
    assert store.fake.sales_policies[product_id] == {1}
    assert store.links.by_kind["product"] == {"ERP-1": str(product_id)}
    sku = store.fake.skus[sku_id_of(store, "ERP-1-P")]
    assert (sku["RefId"], sku["ProductId"], sku["PackagedWeightKg"]) == ("ERP-1-P", product_id, 250)
    assert (sku["IsActive"], sku["ActivateIfPossible"]) == (False, True)
    assert store.fake.eans[sku_id_of(store, "ERP-1-P")] == ["7891234567890"]
    assert store.fake.eans[sku_id_of(store, "ERP-1-M")] == ["7891234567891"]
    assert len(store.requests("POST", "/api/catalog/pvt/product")) == 3  # 1 create + 2 trade-policy links


def test_bulk_ref_id_lookup_is_deduplicated_and_links_what_vtex_has(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    store.links.by_kind.clear()

    vtex.prepare_skus(["ERP-1-P", "ERP-1-P", "ERP-9-X"])  # a duplicate would be a 500

    [lookup] = store.requests("POST", "/api/catalog_system/pub/sku/stockkeepingunitidsbyrefids")[-1:]
    assert lookup.status == 200 and sorted(lookup.body) == ["ERP-1-P", "ERP-9-X"]
    assert store.links.by_kind["sku"] == {"ERP-1-P": str(next(iter(store.fake.skus)))}


def test_changed_name_puts_merged_objects_that_keep_vtex_fields(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    sku_id = sku_id_of(store, "ERP-1-P")
    product_id = store.fake.skus[sku_id]["ProductId"]
    store.fake.skus[sku_id]["ManufacturerCode"] = "MC-9"  # set in the VTEX Admin
    store.fake.products[product_id]["Title"] = "Camiseta | Loja"
    creates = len(store.requests("POST", "/api/catalog/pvt"))

    push(vtex, camiseta("P", name="Camiseta Básica P Nova", parent_name="Camiseta Básica Nova"))

    assert store.fake.skus[sku_id]["Name"] == "Camiseta Básica P Nova"
    assert store.fake.skus[sku_id]["ManufacturerCode"] == "MC-9"
    assert store.fake.products[product_id]["Name"] == "Camiseta Básica Nova"
    assert store.fake.products[product_id]["Title"] == "Camiseta | Loja"
    assert store.fake.products[product_id]["Description"] == "100% algodão"
    assert len(store.requests("POST", "/api/catalog/pvt")) == creates  # nothing created, no EAN posted
    assert store.requests("DELETE", "/api/catalog/pvt") == []

    puts = len(store.requests("PUT", "/api/catalog/pvt"))
    push(vtex, camiseta("P", name="Camiseta Básica P Nova", parent_name="Camiseta Básica Nova"))
    assert len(store.requests("PUT", "/api/catalog/pvt")) == puts  # unchanged: GETs only


def test_ean_change_deletes_every_ean_then_posts_the_new_one(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    sku_id = sku_id_of(store, "ERP-1-P")
    vtex.http.request("POST", f"/api/catalog/pvt/stockkeepingunit/{sku_id}/ean/7890000000017")  # a stray second EAN

    push(vtex, camiseta("P", ean="7899999999999"))

    assert store.fake.eans[sku_id] == ["7899999999999"]
    ean_url = f"/api/catalog/pvt/stockkeepingunit/{sku_id}/ean"
    ean_writes = [(r.method, r.path) for r in store.fake.requests_log
                  if r.method in ("DELETE", "POST") and r.path.startswith(ean_url)]
    assert ean_writes[-2:] == [("DELETE", ean_url), ("POST", f"{ean_url}/7899999999999")]


def test_sku_active_on_vtex_stays_active_and_erp_inactive_deactivates(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    sku_id = sku_id_of(store, "ERP-1-P")
    store.fake.skus[sku_id]["IsActive"] = True  # VTEX activated it once it had an image

    push(vtex, camiseta("P", name="Camiseta P renomeada"))
    assert store.fake.skus[sku_id]["IsActive"] is True

    push(vtex, camiseta("P", name="Camiseta P renomeada", active=False))
    assert store.fake.skus[sku_id]["IsActive"] is False


def test_create_without_category_path_or_brand_is_rejected(store: Store) -> None:
    without_category = store.channel(category_path=None)
    with pytest.raises(RecordRejected, match=r"options\.category_path"):
        push(without_category, camiseta("P"))
    with pytest.raises(RecordRejected, match="no brand"):
        push(store.channel(), camiseta("P", brand=None))
    assert store.fake.products == {}


def test_uncertain_create_is_resolved_by_ref_id_not_repeated(store: Store, vtex: VtexChannel) -> None:
    # The product is created, then the answer is lost as a 500.
    store.fake.faults.add(method="POST", path_prefix="/api/catalog/pvt/product", status=500, apply_first=True)

    push(vtex, camiseta("P"))

    assert len(store.fake.products) == 1 and len(store.fake.skus) == 1
    assert store.links.by_kind["product"] == {"ERP-1": str(next(iter(store.fake.products)))}


# -- push-stock ------------------------------------------------------------------------------

def test_stock_put_sends_every_field(store: Store) -> None:
    vtex = store.channel(lead_time="1.00:00:00")
    push(vtex, camiseta("P"))
    level = StockLevel("ERP-1-P", 37)

    vtex.push_stock(level, vtex.stock_payload(level))

    sku_id = str(sku_id_of(store, "ERP-1-P"))
    [put] = store.requests("PUT", "/api/logistics/pvt/inventory/skus")
    assert put.path == f"/api/logistics/pvt/inventory/skus/{sku_id}/warehouses/1_1"
    assert put.body == {"quantity": 37, "unlimitedQuantity": False, "leadTime": "1.00:00:00",
                        "dateUtcOnBalanceSystem": "2025-03-10T15:00:00Z"}
    assert store.fake.inventory[(sku_id, "1_1")]["totalQuantity"] == 37


def test_stock_of_a_sku_not_on_vtex_is_rejected(vtex: VtexChannel) -> None:
    level = StockLevel("ERP-404", 5)
    with pytest.raises(RecordRejected, match="SKU ERP-404 is not on VTEX yet: run push-products first"):
        vtex.push_stock(level, vtex.stock_payload(level))


# -- push-prices -----------------------------------------------------------------------------

def test_price_keeps_other_trade_policies_and_sends_the_promotion_window(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    sku_id = str(sku_id_of(store, "ERP-1-P"))
    store.fake.prices[sku_id] = {
        "itemId": sku_id, "listPrice": Decimal("119.9"), "costPrice": Decimal(40), "markup": None,
        "basePrice": Decimal("99.9"),
        "fixedPrices": [
            {"tradePolicyId": "2", "value": Decimal("89.9"), "listPrice": None, "minQuantity": 1},
            {"tradePolicyId": "1", "value": Decimal("94.9"), "listPrice": None, "minQuantity": 3},
            {"tradePolicyId": "1", "value": Decimal("59.9"), "listPrice": None, "minQuantity": 1},  # ours, stale
        ],
    }
    price = EffectivePrice("ERP-1-P", Decimal("129.90"), sale_price=Decimal("79.90"),
                           sale_starts_at=T0 - timedelta(days=1), sale_ends_at=T0 + timedelta(days=2))

    vtex.push_price(price, vtex.price_payload(price))

    stored = store.fake.prices[sku_id]
    assert (stored["basePrice"], stored["listPrice"], stored["costPrice"]) == (
        Decimal("129.9"), Decimal("129.9"), Decimal(40)
    )
    assert stored["fixedPrices"] == [
        {"tradePolicyId": "2", "value": Decimal("89.9"), "listPrice": None, "minQuantity": 1},
        {"tradePolicyId": "1", "value": Decimal("94.9"), "listPrice": None, "minQuantity": 3},
        {"tradePolicyId": "1", "value": Decimal("79.9"), "listPrice": Decimal("129.9"), "minQuantity": 1,
         "dateRange": {"from": "2025-03-09T15:00:00Z", "to": "2025-03-12T15:00:00Z"}},
    ]
    [put] = store.requests("PUT", f"/{ACCOUNT}/pricing/prices/")
    assert "markup" not in put.body


def test_first_price_of_a_sku_is_put_after_a_404(store: Store, vtex: VtexChannel) -> None:
    push(vtex, camiseta("P"))
    price = EffectivePrice("ERP-1-P", Decimal("99.90"))

    vtex.push_price(price, vtex.price_payload(price))

    sku_id = str(sku_id_of(store, "ERP-1-P"))
    assert [r.status for r in store.requests("GET", f"/{ACCOUNT}/pricing/prices/{sku_id}")] == [404]
    assert store.fake.prices[sku_id]["basePrice"] == Decimal("99.9")
    assert store.fake.prices[sku_id]["fixedPrices"] == []


# -- pull-orders -----------------------------------------------------------------------------

SKU_ID = "1000000"


def linked_order(store: Store, quantity: int = 1, **kwargs: Any) -> str:
    """An order of one SKU the ERP knows as ERP-1-P (VTEX's refId on the item says otherwise)."""
    store.links.link("sku", "ERP-1-P", SKU_ID)
    items = [(SKU_ID, "VTEX-REF", "Camiseta P", quantity, 9990)]
    return store.fake.add_order(items=items, shipping_cents=900, **kwargs)


def drain(vtex: VtexChannel, cursor: str | None = None, failed: frozenset[str] = frozenset()) -> list[OrderBatch]:
    """What the pull-orders job does: read each batch, then acknowledge it."""
    batches = []
    for batch in vtex.pull_orders(cursor if cursor is not None else T0.isoformat(), None):
        batches.append(batch)
        vtex.acknowledge(batch, set(failed))
    return batches


def orders_of(batches: list[OrderBatch]) -> list[Order]:
    return [order for batch in batches for order in batch.orders]


def test_pull_creates_the_feed_config_when_missing_or_different(store: Store, vtex: VtexChannel) -> None:
    drain(vtex)
    assert store.fake.feed_config is not None
    assert store.fake.feed_config["filter"] == {"type": "FromWorkflow", "status": list(FEED_STATUSES)}
    assert store.fake.feed_config["queue"]["visibilityTimeoutInSeconds"] == 300

    store.fake.configure_feed(["invoiced"])
    drain(vtex)
    assert store.fake.feed_config["filter"]["status"] == list(FEED_STATUSES)
    drain(vtex)
    assert len(store.requests("POST", "/api/orders/feed/config")) == 2  # not when it already matches


def test_feed_orders_come_in_batches_and_every_handle_is_acked(store: Store, vtex: VtexChannel) -> None:
    store.fake.configure_feed(FEED_STATUSES)
    first = linked_order(store, quantity=2)
    second = linked_order(store)
    ignored = linked_order(store)
    store.fake.set_order_status(ignored, "cancellation-requested")  # an event that needs nothing

    batches = drain(vtex)

    orders = {order.channel_order_id: order for order in orders_of(batches)}
    assert set(orders) == {first, second}  # `ignored`'s two events: its current status needs nothing
    order = orders[first]
    assert (order.status, order.channel_status) == (OrderStatus.approved, "ready-for-handling")
    assert order.lines == (OrderLine("ERP-1-P", 2, Decimal("99.90"), SKU_ID),)
    assert (order.total, order.shipping_cost) == (Decimal("208.80"), Decimal("9.00"))
    commits = store.requests("POST", "/api/orders/feed")
    assert sum(len(c.body["handles"]) for c in commits if c.path == "/api/orders/feed") == 4
    store.fake.advance(3600)
    assert orders_of(drain(vtex)) == []  # nothing comes back


def test_a_failed_order_is_not_acked_and_comes_back(store: Store, vtex: VtexChannel) -> None:
    store.fake.configure_feed(FEED_STATUSES, visibility_timeout_s=300)
    failing, fine = linked_order(store), linked_order(store)

    assert {o.channel_order_id for o in orders_of(drain(vtex, failed=frozenset({failing})))} == {failing, fine}
    assert orders_of(drain(vtex)) == []  # still hidden
    store.fake.advance(301)
    assert [o.channel_order_id for o in orders_of(drain(vtex))] == [failing]


def test_duplicate_delivery_yields_the_order_once_per_lot(store: Store, vtex: VtexChannel) -> None:
    store.fake.configure_feed(FEED_STATUSES)
    store.fake.feed_duplicate_delivery = True
    order_id = linked_order(store)

    [batch] = drain(vtex)

    assert [o.channel_order_id for o in batch.orders] == [order_id]
    assert len(batch.ack[order_id]) == 2  # both handles committed
    store.fake.advance(3600)
    assert orders_of(drain(vtex)) == []


def test_start_handling_on_an_imported_ready_order(store: Store, vtex: VtexChannel) -> None:
    store.fake.configure_feed(FEED_STATUSES)
    order_id = linked_order(store)
    [order] = orders_of(drain(vtex))

    vtex.after_import(order, ImportOutcome(order_id=None))  # not importable: VTEX left alone
    assert store.fake.orders[order_id]["status"] == "ready-for-handling"

    vtex.after_import(order, ImportOutcome(order_id=1, created=True))
    assert store.fake.orders[order_id]["status"] == "handling"
    [call] = store.requests("POST", f"/api/oms/pvt/orders/{order_id}/start-handling")
    assert call.status == 204


def test_start_handling_409_reads_the_order_back(store: Store, vtex: VtexChannel) -> None:
    store.fake.configure_feed(FEED_STATUSES)
    order_id = linked_order(store)
    [order] = orders_of(drain(vtex))
    store.fake.set_order_status(order_id, "handling")  # advanced meanwhile (e.g. a crashed earlier run)

    vtex.after_import(order, ImportOutcome(order_id=1))  # 409, then GET says handling: done

    assert [r.status for r in store.requests("POST", f"/api/oms/pvt/orders/{order_id}/start-handling")] == [409]
    store.fake.set_order_status(order_id, "window-to-cancel")
    with pytest.raises(RecordRejected, match="it is window-to-cancel"):
        vtex.after_import(order, ImportOutcome(order_id=1))


def test_backstop_lists_ready_orders_and_fetches_only_unknown_ones(store: Store, vtex: VtexChannel) -> None:
    # Orders placed before the feed existed: no events for them.
    known, missed = linked_order(store, created_at=T0 - timedelta(days=1)), linked_order(store, created_at=T0)
    too_old = linked_order(store, created_at=T0 - timedelta(days=8))
    store.known.add(known)

    batches = list(vtex.pull_orders(None, None))

    assert [o.channel_order_id for o in orders_of(batches)] == [missed]
    assert batches[-1].cursor == T0.isoformat()
    fetched = {r.path.rsplit("/", 1)[1] for r in store.requests("GET", "/api/oms/pvt/orders/")}
    assert fetched == {missed}
    [listing] = listings(store)
    assert listing["f_status"] == "ready-for-handling"  # `too_old` is outside this window:
    assert listing["f_creationDate"] == "creationDate:[2025-03-03T15:00:00.000Z TO 2025-03-10T15:00:00.000Z]"
    assert too_old in store.fake.orders


def test_backstop_waits_for_its_interval_unless_since_is_given(store: Store, vtex: VtexChannel) -> None:
    recent = (T0 - timedelta(minutes=10)).isoformat()
    old = (T0 - timedelta(minutes=31)).isoformat()

    assert [b.cursor for b in vtex.pull_orders(recent, None)] == []
    assert [b.cursor for b in vtex.pull_orders(old, None)] == [T0.isoformat()]
    assert [b.cursor for b in vtex.pull_orders(recent, T0 - timedelta(days=1))] == [T0.isoformat()]
    assert [listing["f_creationDate"] for listing in listings(store)] == [
        "creationDate:[2025-03-03T15:00:00.000Z TO 2025-03-10T15:00:00.000Z]",  # initial_lookback_days
        "creationDate:[2025-03-09T15:00:00.000Z TO 2025-03-10T15:00:00.000Z]",  # since
    ]


def listings(store: Store) -> list[dict[str, str]]:
    """The query of every List orders call."""
    return [r.query for r in store.requests("GET", "/api/oms/pvt/orders") if r.path == "/api/oms/pvt/orders"]


# -- push-invoices ---------------------------------------------------------------------------

def test_invoice_tracking_and_delivery_are_accepted_and_invoice_the_order(store: Store, vtex: VtexChannel) -> None:
    order_id = linked_order(store)  # 99.90 + 9.00 freight = 10890 cents
    update = OrderUpdate(
        order_id=1, channel_order_id=order_id, status=OrderStatus.invoiced,
        lines=(OrderLine("ERP-1-P", 1, Decimal("99.90"), SKU_ID),), shipping_cost=Decimal("9.00"),
        invoice=Invoice(NFE_KEY, "1234", "1", T0, Decimal("108.90"), "<nfeProc/>"),
        shipment=Shipment(1, 1, "Correios", "AA123456785BR", "https://rastreio.example/AA123456785BR",
                          shipped_at=T0 + timedelta(hours=2), delivery_status=DeliveryStatus.in_transit),
        events=(TrackingEvent(T0 + timedelta(hours=5), DeliveryStatus.posted, "PO", "Objeto postado", "CAJAMAR - SP"),),
    )

    parts = vtex.order_update_payloads(update)
    for part, payload in parts.items():
        vtex.push_order_update(update, part, payload)

    assert list(parts) == ["invoice", "tracking", "delivery"]
    order = store.fake.orders[order_id]
    assert order["status"] == "invoiced"
    [package] = order["packageAttachment"]["packages"]
    assert (package["invoiceNumber"], package["invoiceValue"], package["invoiceKey"]) == ("1234", 10890, NFE_KEY)
    assert (package["trackingNumber"], package["courier"]) == ("AA123456785BR", "Correios")
    assert package["courierStatus"]["finished"] is False
    assert package["courierStatus"]["data"] == [
        {"city": "CAJAMAR", "state": "SP", "description": "Objeto postado", "date": "2025-03-10"}
    ]

    vtex.push_order_update(update, "invoice", parts["invoice"])  # re-sent: only a new receipt
    assert len(order["packageAttachment"]["packages"]) == 1


# -- capabilities ----------------------------------------------------------------------------

def test_sync_sac_is_unsupported_with_the_reason(vtex: VtexChannel) -> None:
    assert Feature.sac not in VtexChannel.supported
    with pytest.raises(Unsupported, match="VTEX has no customer-service ticket API: sync-sac has nothing to do"):
        vtex.pull_tickets(None, None)


def test_hosts_and_auth_headers(vtex: VtexChannel) -> None:
    settings = vtex.settings
    production = settings.model_copy(update={"base_url": None})
    own_pricing = settings.model_copy(update={"options": VtexOptions(
        account=ACCOUNT, warehouse_id="1_1", pricing_base_url="https://pricing.example/demostore/")})

    assert VtexChannel.base_url(settings) == "https://demostore.vtexcommercestable.com.br"
    assert VtexChannel.auth_headers(settings) == {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}
    assert vtex.pricing_url == f"{BASE_URL}/{ACCOUNT}"  # the fake serves Pricing under /{account}
    assert pricing_base_url(production) == f"https://api.vtex.com/{ACCOUNT}"
    assert pricing_base_url(own_pricing) == "https://pricing.example/demostore"
