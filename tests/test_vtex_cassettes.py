"""The VTEX adapter's exact requests, pinned per scenario by vcrpy cassettes.

Each test drives the adapter through one scenario. Normally the cassette plays
back (`record_mode="none"`, matched on method, URL and JSON body, over a transport
that fails if reached), so a test fails as soon as the client's requests change.
With SYNCCTL_RECORD=1 the same tests record against a fresh FakeVtex instead
(whose answers follow shared/reference/vtex.md) and mark each file as built, not
captured. Re-record only when a change of requests is intended, and read the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import vcr
from contract.suite import NFE_KEY, T0, DictLinks, build_channel, push_product
from vcr.cassette import Cassette

from syncctl.channels.base import OrderBatch
from syncctl.channels.vtex import VtexChannel
from syncctl.domain import (
    DeliveryStatus,
    EffectivePrice,
    ImportOutcome,
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
from syncctl.sandbox.vtex import FakeVtex

CASSETTES = Path(__file__).parent / "cassettes" / "vtex"
RECORDING = os.environ.get("SYNCCTL_RECORD") == "1"
RERECORD = "SYNCCTL_RECORD=1 pytest tests/test_vtex_cassettes.py"
HEADER = (
    "# Built from the documented shapes in shared/reference/vtex.md by driving syncctl against "
    f"syncctl/sandbox/vtex.py; not a live capture. Re-record: {RERECORD}\n"
)
MATCH_ON = ["method", "scheme", "host", "port", "path", "query", "body"]
CASSETTE_VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="all" if RECORDING else "none",
    match_on=MATCH_ON,
    filter_headers=[("x-vtex-api-appkey", "<filtered>"), ("x-vtex-api-apptoken", "<filtered>")],
)

ACCOUNT = "demostore"
BASE_URL = "http://vtex.test"
CREDENTIALS = {"app_key": "vtexappkey-demostore-REC", "app_token": "app-token-recorded-never"}
OPTIONS = {"account": ACCOUNT, "warehouse_id": "1_1", "category_path": "Roupas/Camisetas"}
# The ids a fresh FakeVtex gives the seeded catalog and the first orders.
PRODUCT_ID, SKU_ID = "1", "1000000"
SEEDED = {"product": {"ERP-1": PRODUCT_ID}, "sku": {"ERP-1-P": SKU_ID}}
FIRST_ORDER, SECOND_ORDER = "1468920570001-01", "1468920570002-01"
CATALOG_SKU = f"/api/catalog/pvt/stockkeepingunit/{SKU_ID}"
PRICE_URL = f"/{ACCOUNT}/pricing/prices/{SKU_ID}"
LOOKUP = ("POST", "/api/catalog_system/pub/sku/stockkeepingunitidsbyrefids")


def camiseta(**changes: Any) -> Product:
    fields: dict[str, Any] = {
        "sku": "ERP-1-P", "name": "Camiseta Básica P", "parent_sku": "ERP-1", "parent_name": "Camiseta Básica",
        "ean": "7891234567895", "brand": "Marca Exemplo", "description": "100% algodão",
        "weight_kg": Decimal("0.25"), "height_cm": Decimal(3), "width_cm": Decimal(25), "length_cm": Decimal(30),
    }  # fmt: skip
    return Product(**{**fields, **changes})


# -- recording and playback -------------------------------------------------------------


@dataclass
class Session:
    """One scenario's adapter, the Binder and ERP it sees, and its cassette."""

    channel: VtexChannel
    links: DictLinks
    known: set[str]
    cassette: Cassette
    sleeps: list[float] = field(default_factory=list)

    @property
    def requests(self) -> list[tuple[str, str]]:
        return [(request.method, request.path) for request in self.cassette.requests]

    def body(self, method: str, path: str) -> Any:
        """The JSON body of the last recorded request to `method path`."""
        [*_, request] = (r for r in self.cassette.requests if (r.method, r.path) == (method, path))
        return json.loads(request.body)


def vtex_channel(
    transport: httpx.BaseTransport, links: DictLinks, known: set[str], sleep: Callable[[float], None]
) -> VtexChannel:
    channel = build_channel(
        VtexChannel, transport=transport, base_url=BASE_URL, credentials=CREDENTIALS, options=OPTIONS,
        links=links, known=known, sleep=sleep,
    )  # fmt: skip
    return cast(VtexChannel, channel)


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"playback reached the transport: {request.method} {request.url} is not in the cassette")


def new_fake() -> FakeVtex:
    return FakeVtex(
        account=ACCOUNT, app_key=CREDENTIALS["app_key"], app_token=CREDENTIALS["app_token"],
        clock=lambda: T0, sleep=lambda _seconds: None,
    )  # fmt: skip


def direct_channel(fake: FakeVtex, links: DictLinks) -> VtexChannel:
    """An adapter on the fake outside any cassette, for setting a scenario up."""
    return vtex_channel(httpx.WSGITransport(app=fake), links, set(), lambda _seconds: None)


def seed_catalog(fake: FakeVtex) -> None:
    """ERP-1 / ERP-1-P on the store, with the ids SEEDED says."""
    links = DictLinks()
    push_product(direct_channel(fake, links), camiseta())
    assert links.by_kind == SEEDED, "FakeVtex numbers its catalog differently: update SEEDED"


def mark_as_built(path: Path) -> None:
    path.write_text(HEADER + path.read_text(encoding="utf-8"), encoding="utf-8")


@contextmanager
def scenario(
    name: str,
    prepare: Callable[[FakeVtex], None] = lambda _fake: None,
    links: Mapping[str, Mapping[str, str]] | None = None,
    known: set[str] | None = None,
) -> Iterator[Session]:
    """Play `name`'s cassette back; when recording, `prepare` a fresh fake and record
    against it. `links` and `known` are what the Binder and the ERP already have."""
    path = CASSETTES / f"{name}.yaml"
    with ExitStack() as stack:
        if RECORDING:
            fake = new_fake()
            prepare(fake)
            transport: httpx.BaseTransport = httpx.WSGITransport(app=fake)
            wait: Callable[[float], None] = fake.advance  # the store's clock moves while the client waits
            path.unlink(missing_ok=True)
        else:
            transport, wait = httpx.MockTransport(_unreachable), lambda _seconds: None
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            wait(seconds)

        session_links, session_known = DictLinks(links), set(known or ())
        channel = vtex_channel(transport, session_links, session_known, sleep)
        stack.callback(channel.http.close)
        with CASSETTE_VCR.use_cassette(path.name) as cassette:
            yield Session(channel, session_links, session_known, cassette, sleeps)
        if RECORDING:
            mark_as_built(path)
        else:
            unplayed = len(cassette) - cassette.play_count
            assert cassette.all_played, f"{name}: the client skipped {unplayed} recorded request(s)"


def pull_and_import(session: Session, cursor: str | None) -> list[OrderBatch]:
    """What pull-orders does: import each batch's orders, start handling, acknowledge."""
    batches = []
    for batch in session.channel.pull_orders(cursor, None):
        for order in batch.orders:
            session.known.add(order.channel_order_id)
            session.channel.after_import(order, ImportOutcome(order_id=1, created=True))
        session.channel.acknowledge(batch, set())
        batches.append(batch)
    return batches


# -- push-products ------------------------------------------------------------------------


def test_create_product_sku_and_ean_from_nothing() -> None:
    with scenario("create_product_sku_ean") as session:
        push_product(session.channel, camiseta())

    assert session.links.channel_ids("product", ["ERP-1"]) == {"ERP-1": PRODUCT_ID}
    assert session.links.channel_ids("sku", ["ERP-1-P"]) == {"ERP-1-P": SKU_ID}
    assert session.requests == [
        LOOKUP,  # once: push_product trusts prepare_skus's miss
        ("GET", "/api/catalog_system/pvt/products/productgetbyrefid/ERP-1"),
        ("POST", "/api/catalog/pvt/product"),
        ("POST", f"/api/catalog/pvt/product/{PRODUCT_ID}/salespolicy/1"),
        ("POST", "/api/catalog/pvt/stockkeepingunit"),
        ("POST", f"{CATALOG_SKU}/ean/7891234567895"),
    ]
    created = session.body("POST", "/api/catalog/pvt/product")
    assert (created["CategoryPath"], created["BrandName"], created["IsVisible"]) == (
        "Roupas/Camisetas", "Marca Exemplo", True
    )
    sku = session.body("POST", "/api/catalog/pvt/stockkeepingunit")
    assert (sku["IsActive"], sku["ActivateIfPossible"], sku["PackagedWeightKg"]) == (False, True, 250)


def _edited_in_the_admin(fake: FakeVtex) -> None:
    seed_catalog(fake)
    fake.skus[int(SKU_ID)]["ManufacturerCode"] = "MC-9"
    fake.products[int(PRODUCT_ID)]["Title"] = "Camiseta | Loja"


def test_update_of_an_existing_sku_puts_the_merged_objects() -> None:
    renamed = camiseta(name="Camiseta Básica P Nova", parent_name="Camiseta Básica Nova")
    with scenario("update_sku", _edited_in_the_admin, SEEDED) as session:
        push_product(session.channel, renamed)

    assert session.requests == [
        ("GET", CATALOG_SKU),
        ("PUT", CATALOG_SKU),
        ("GET", f"/api/catalog/pvt/product/{PRODUCT_ID}"),
        ("PUT", f"/api/catalog/pvt/product/{PRODUCT_ID}"),
        ("GET", f"{CATALOG_SKU}/ean"),  # unchanged EAN: read only
    ]
    sku = session.body("PUT", CATALOG_SKU)
    assert (sku["Name"], sku["ManufacturerCode"], sku["IsActive"]) == ("Camiseta Básica P Nova", "MC-9", False)
    product = session.body("PUT", f"/api/catalog/pvt/product/{PRODUCT_ID}")
    assert (product["Name"], product["Title"]) == ("Camiseta Básica Nova", "Camiseta | Loja")


def test_changed_ean_deletes_every_ean_then_adds_the_new_one() -> None:
    with scenario("change_ean", seed_catalog, SEEDED) as session:
        push_product(session.channel, camiseta(ean="7899999999999"))

    assert session.requests == [
        ("GET", CATALOG_SKU),
        ("GET", f"/api/catalog/pvt/product/{PRODUCT_ID}"),
        ("GET", f"{CATALOG_SKU}/ean"),
        ("DELETE", f"{CATALOG_SKU}/ean"),
        ("POST", f"{CATALOG_SKU}/ean/7899999999999"),
    ]


def test_a_sku_vtex_rejects_fails_alone() -> None:
    too_long = camiseta(sku="ERP-1-M", name="M" * 201, ean="7891234567901")
    with scenario("rejected_sku_400") as session:  # both SKUs are new to the store
        with pytest.raises(RecordRejected, match="HTTP 400 from VTEX: Name must be a string of at most 200"):
            push_product(session.channel, too_long)
        push_product(session.channel, camiseta())

    assert session.links.channel_ids("sku", ["ERP-1-M", "ERP-1-P"]) == {"ERP-1-P": SKU_ID}
    rejected = session.cassette.responses[session.requests.index(("POST", "/api/catalog/pvt/stockkeepingunit"))]
    assert rejected["status"]["code"] == 400


# -- push-stock and push-prices ------------------------------------------------------------


def test_stock_push_puts_every_field_with_the_balance_time() -> None:
    with scenario("push_stock", seed_catalog, SEEDED) as session:
        level = StockLevel("ERP-1-P", 37)
        session.channel.push_stock(level, session.channel.stock_payload(level))

    inventory = f"/api/logistics/pvt/inventory/skus/{SKU_ID}/warehouses/1_1"
    assert session.requests == [("PUT", inventory)]
    assert session.body("PUT", inventory) == {
        "quantity": 37, "unlimitedQuantity": False, "leadTime": "00:00:00",
        "dateUtcOnBalanceSystem": "2025-03-10T15:00:00Z",
    }  # fmt: skip


def _price_with_another_trade_policy(fake: FakeVtex) -> None:
    seed_catalog(fake)
    fake.prices[SKU_ID] = {
        "itemId": SKU_ID, "listPrice": Decimal("119.9"), "costPrice": Decimal(40), "markup": None,
        "basePrice": Decimal("99.9"),
        "fixedPrices": [
            {"tradePolicyId": "2", "value": Decimal("89.9"), "listPrice": None, "minQuantity": 1},
            {"tradePolicyId": "1", "value": Decimal("59.9"), "listPrice": None, "minQuantity": 1},  # ours, stale
        ],
    }  # fmt: skip


def test_price_push_sends_the_promotion_window_and_keeps_other_trade_policies() -> None:
    promotion = EffectivePrice(
        "ERP-1-P", Decimal("129.90"), sale_price=Decimal("79.90"),
        sale_starts_at=T0 - timedelta(days=1), sale_ends_at=T0 + timedelta(days=2),
    )  # fmt: skip
    with scenario("push_prices_promotion", _price_with_another_trade_policy, SEEDED) as session:
        session.channel.push_price(promotion, session.channel.price_payload(promotion))

    assert session.requests == [("GET", PRICE_URL), ("PUT", PRICE_URL)]
    assert session.body("PUT", PRICE_URL) == {
        "basePrice": 129.9, "listPrice": 129.9, "costPrice": 40,
        "fixedPrices": [
            {"tradePolicyId": "2", "value": 89.9, "minQuantity": 1},
            {"tradePolicyId": "1", "value": 79.9, "listPrice": 129.9, "minQuantity": 1,
             "dateRange": {"from": "2025-03-09T15:00:00Z", "to": "2025-03-12T15:00:00Z"}},
        ],
    }  # fmt: skip


def _pricing_out_of_credits(fake: FakeVtex) -> None:
    """Pricing's burst credits spent by an earlier write; they refill at 0.25/s."""
    seed_catalog(fake)
    fake.limit_pricing(rate_per_s=0.25, credits=1)
    price = EffectivePrice("ERP-1-P", Decimal("99.90"))
    channel = direct_channel(fake, DictLinks(SEEDED))
    channel.push_price(price, channel.price_payload(price))


def test_rate_limited_write_waits_retry_after_then_succeeds() -> None:
    price = EffectivePrice("ERP-1-P", Decimal("89.90"))
    with scenario("rate_limited_429", _pricing_out_of_credits, SEEDED) as session:
        session.channel.push_price(price, session.channel.price_payload(price))

    assert session.requests == [("GET", PRICE_URL), ("PUT", PRICE_URL), ("PUT", PRICE_URL)]
    throttled, accepted = session.cassette.responses[1:]
    assert throttled["status"]["code"] == 429 and accepted["status"]["code"] == 200
    assert throttled["headers"]["retry-after"] == ["4"]
    assert session.sleeps == [4.0]


# -- pull-orders --------------------------------------------------------------------------

ORDER_LINE = (SKU_ID, "ERP-1-P", "Camiseta Básica P", 2, 9990)


def _order_in_a_stale_feed(fake: FakeVtex) -> None:
    """A feed configured for one status only (so the adapter re-configures it) holding one order."""
    seed_catalog(fake)
    fake.configure_feed(["ready-for-handling"])
    assert fake.add_order(items=[ORDER_LINE], shipping_cents=900) == FIRST_ORDER


def test_feed_orders_are_read_started_and_committed() -> None:
    recent_backstop = T0.isoformat()  # the list backstop is not due: this is the feed alone
    with scenario("pull_orders_feed", _order_in_a_stale_feed, SEEDED) as session:
        batches = pull_and_import(session, recent_backstop)

    orders = [order for batch in batches for order in batch.orders]
    # The first event's order, then the event start-handling caused, both committed.
    assert [(order.channel_order_id, order.status) for order in orders] == [
        (FIRST_ORDER, OrderStatus.approved), (FIRST_ORDER, OrderStatus.handling),
    ]
    order = orders[0]
    assert order.lines == (OrderLine("ERP-1-P", 2, Decimal("99.90"), SKU_ID),)
    assert (order.total, order.shipping_cost, order.placed_at) == (Decimal("208.80"), Decimal("9.00"), T0)
    assert session.requests == [
        ("GET", "/api/orders/feed/config"),
        ("POST", "/api/orders/feed/config"),
        ("GET", "/api/orders/feed"),
        ("GET", f"/api/oms/pvt/orders/{FIRST_ORDER}"),
        ("POST", f"/api/oms/pvt/orders/{FIRST_ORDER}/start-handling"),
        ("POST", "/api/orders/feed"),
        ("GET", "/api/orders/feed"),
        ("GET", f"/api/oms/pvt/orders/{FIRST_ORDER}"),
        ("POST", "/api/orders/feed"),
        ("GET", "/api/orders/feed"),
    ]
    commits = [r for r in session.cassette.requests if (r.method, r.path) == ("POST", "/api/orders/feed")]
    assert [json.loads(r.body)["handles"] for r in commits] == [batch.ack[FIRST_ORDER] for batch in batches[:2]]


def _orders_placed_before_the_feed(fake: FakeVtex) -> None:
    seed_catalog(fake)  # no feed configuration: these orders made no events
    assert fake.add_order(items=[ORDER_LINE], created_at=T0 - timedelta(days=1)) == FIRST_ORDER
    assert fake.add_order(items=[ORDER_LINE], created_at=T0 - timedelta(hours=2)) == SECOND_ORDER


def test_backstop_lists_ready_orders_and_reads_only_unknown_ones() -> None:
    with scenario("backstop_listing", _orders_placed_before_the_feed, SEEDED, known={FIRST_ORDER}) as session:
        batches = list(session.channel.pull_orders(None, None))

    assert [order.channel_order_id for batch in batches for order in batch.orders] == [SECOND_ORDER]
    assert batches[-1].cursor == T0.isoformat()
    listing = next(r for r in session.cassette.requests if r.path == "/api/oms/pvt/orders")
    assert dict(listing.query)["f_creationDate"] == (
        "creationDate:[2025-03-03T15:00:00.000Z TO 2025-03-10T15:00:00.000Z]"
    )
    assert ("GET", f"/api/oms/pvt/orders/{FIRST_ORDER}") not in session.requests


# -- push-invoices ------------------------------------------------------------------------


def _order_in_handling(fake: FakeVtex) -> None:
    seed_catalog(fake)
    assert fake.add_order(items=[ORDER_LINE], shipping_cents=900) == FIRST_ORDER
    fake.set_order_status(FIRST_ORDER, "handling")


def test_invoice_tracking_and_delivery_go_to_the_invoice() -> None:
    delivered_at = T0 + timedelta(days=2)
    update = OrderUpdate(
        order_id=1, channel_order_id=FIRST_ORDER, status=OrderStatus.invoiced,
        lines=(OrderLine("ERP-1-P", 2, Decimal("99.90"), SKU_ID),), shipping_cost=Decimal("9.00"),
        invoice=Invoice(NFE_KEY, "1234", "1", T0, Decimal("208.80"), "<nfeProc/>"),
        shipment=Shipment(1, 1, "Correios", "AA123456785BR", "https://rastreio.example/AA123456785BR",
                          shipped_at=T0 + timedelta(hours=2), delivery_status=DeliveryStatus.delivered,
                          delivered_at=delivered_at),
        events=(TrackingEvent(T0 + timedelta(hours=5), DeliveryStatus.posted, "PO", "Objeto postado", "CAJAMAR - SP"),
                TrackingEvent(delivered_at, DeliveryStatus.delivered, "BDE", "Objeto entregue", "São Paulo/SP")),
    )  # fmt: skip
    with scenario("invoice_tracking_delivery", _order_in_handling, SEEDED) as session:
        parts = session.channel.order_update_payloads(update)
        for part, payload in parts.items():
            session.channel.push_order_update(update, part, payload)

    invoice = f"/api/oms/pvt/orders/{FIRST_ORDER}/invoice"
    assert session.requests == [("POST", invoice), ("PATCH", f"{invoice}/1234"), ("PUT", f"{invoice}/1234/tracking")]
    assert session.body("POST", invoice)["invoiceValue"] == "20880"  # cents, freight included
    assert session.body("PUT", f"{invoice}/1234/tracking")["deliveredDate"] == "2025-03-12 15:00"
    receipts = [json.loads(response["body"]["string"]) for response in session.cassette.responses]
    assert {receipt["orderId"] for receipt in receipts} == {FIRST_ORDER}


# -- the files themselves ----------------------------------------------------------------


def test_every_cassette_is_marked_as_built_and_keeps_no_credentials() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) == 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.startswith(HEADER), f"{path.name} lacks the 'not a live capture' header"
        assert CREDENTIALS["app_key"] not in text and CREDENTIALS["app_token"] not in text, path.name
        assert "<filtered>" in text, path.name
