"""The contract every channel adapter keeps, run against the channel's own fake.

A channel's test module subclasses `ChannelContract` (its name starting with `Test`)
and implements the hooks: how to build the fake and the adapter, and how to read
the fake's state back. The concrete tests then check the capability declaration
against the behaviour, and the behaviour every job relies on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Container, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import ValidationError

from syncctl.channels.base import Channel, ChannelContext
from syncctl.config import ChannelSettings
from syncctl.domain import (
    UTC,
    DeliveryStatus,
    EffectivePrice,
    Feature,
    ImportOutcome,
    Invoice,
    Order,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    TicketMessage,
    TrackingEvent,
)
from syncctl.errors import Unsupported
from syncctl.http import HttpClient

T0 = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
NFE_KEY = "35240311222333000181550010000012341123456781"  # a well-formed access key (check digit 1)


class DictLinks:
    """The Binder as a dict: kind -> ERP id -> channel id."""

    def __init__(self, by_kind: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.by_kind: dict[str, dict[str, str]] = defaultdict(dict)
        for kind, links in (by_kind or {}).items():
            self.by_kind[kind].update(links)

    def channel_ids(self, kind: str, erp_ids: list[str]) -> dict[str, str]:
        return {erp_id: self.by_kind[kind][erp_id] for erp_id in erp_ids if erp_id in self.by_kind[kind]}

    def erp_ids(self, kind: str, channel_ids: list[str]) -> dict[str, str]:
        reverse = {channel_id: erp_id for erp_id, channel_id in self.by_kind[kind].items()}
        return {channel_id: reverse[channel_id] for channel_id in channel_ids if channel_id in reverse}

    def link(self, kind: str, erp_id: str, channel_id: str) -> None:
        self.by_kind[kind][erp_id] = channel_id


def build_channel(
    channel_type: type[Channel],
    *,
    transport: httpx.BaseTransport,
    base_url: str,
    credentials: Mapping[str, Any],
    options: Mapping[str, Any],
    links: DictLinks,
    known: Container[str],
    now: datetime = T0,
    sleep: Callable[[float], None] = lambda _seconds: None,
) -> Channel:
    """An adapter as a job gets it, wired to `transport`. `known` holds the channel
    order ids the "ERP" has (read live, so a test may add to it); the clock stands still."""
    settings = ChannelSettings(
        name=f"{channel_type.type_name}-test",
        type=channel_type.type_name,
        base_url=base_url,
        credentials=channel_type.Credentials(**credentials),
        options=channel_type.Options(**options),
    )
    http = HttpClient(
        label=channel_type.label,
        base_url=base_url,
        headers=channel_type.auth_headers(settings),
        transport=transport,
        sleep=sleep,
    )
    context = ChannelContext(
        settings=settings,
        http=http,
        links=links,
        now=lambda: now,
        known_orders=lambda ids: {order_id for order_id in ids if order_id in known},
    )
    return channel_type(context)


def push_product(channel: Channel, product: Product) -> None:
    """What push-products does for one product."""
    channel.prepare_skus([product.sku])
    channel.push_product(product, channel.product_payload(product))


# Every call of each feature, with arguments; a channel that does not support the
# feature must refuse each one with Unsupported.
_PRODUCT = Product(sku="CONTRACT-1", name="Contract")
_LEVEL = StockLevel("CONTRACT-1", 1)
_PRICE = EffectivePrice("CONTRACT-1", Decimal("10.00"))
_UPDATE = OrderUpdate(1, "C-1", OrderStatus.invoiced, (), Decimal("0.00"))
FEATURE_CALLS: Mapping[Feature, Mapping[str, tuple[Any, ...]]] = {
    Feature.products: {"product_payload": (_PRODUCT,), "push_product": (_PRODUCT, {})},
    Feature.stock: {"stock_payload": (_LEVEL,), "push_stock": (_LEVEL, {})},
    Feature.prices: {"price_payload": (_PRICE,), "push_price": (_PRICE, {})},
    Feature.orders: {"pull_orders": (None, None)},
    Feature.order_updates: {"order_update_payloads": (_UPDATE,), "push_order_update": (_UPDATE, "invoice", {})},
    Feature.sac: {
        "pull_tickets": (None, None),
        "send_reply": ("T-1", TicketMessage(direction="out", body="Olá", created_at=T0)),
    },
}


def _call(channel: Channel, name: str, args: tuple[Any, ...]) -> Any:
    result = getattr(channel, name)(*args)
    return list(result) if isinstance(result, Iterator) else result  # generators raise when read


class ChannelContract(ABC):
    """Subclass as `Test<Channel>Contract`, set `channel_type`, implement the hooks."""

    channel_type: ClassVar[type[Channel]]
    now: ClassVar[datetime] = T0

    def setup_method(self) -> None:
        self.links = DictLinks()
        self.imported: dict[str, int] = {}  # the "ERP": channel order id -> ERP order id

    # -- hooks ------------------------------------------------------------------------
    @abstractmethod
    def make_fake(self) -> Any:
        """A fresh fake of the channel's API, its clock at `now`."""

    @abstractmethod
    def make_channel(self, fake: Any) -> Channel:
        """The adapter talking to `fake`; build it with `self.build(...)`."""

    @abstractmethod
    def write_requests(self, fake: Any) -> list[str]:
        """Every request that changed something on the fake so far, as "METHOD /path"."""

    @abstractmethod
    def stock_of(self, fake: Any, sku: str) -> int | None:
        """The quantity the fake holds for the ERP `sku` (None: none pushed)."""

    @abstractmethod
    def price_of(self, fake: Any, sku: str) -> Decimal | None:
        """The regular (list) price the fake holds for the ERP `sku` (None: none pushed)."""

    @abstractmethod
    def add_ready_order(self, fake: Any, sku: str, quantity: int, unit_price: Decimal) -> str:
        """Place a paid order of one line, ready for the channel to hand over; its channel id."""

    @abstractmethod
    def invoice_number_of(self, fake: Any, channel_order_id: str) -> str | None:
        """The number of the invoice the fake holds for the order (None: no invoice)."""

    def let_time_pass(self, fake: Any) -> None:
        """Long enough that orders pulled but not acknowledged would be handed over again."""

    def sample_product(self) -> Product:
        return Product(
            sku="CT-1-P", name="Camiseta Contrato P", parent_sku="CT-1", parent_name="Camiseta Contrato",
            ean="7891234567895", brand="Marca Exemplo", description="100% algodão",
            weight_kg=Decimal("0.25"), height_cm=Decimal(3), width_cm=Decimal(25), length_cm=Decimal(30),
        )  # fmt: skip

    def list_product(self, fake: Any, channel: Channel, product: Product) -> None:
        """Put `product` on the channel, for the stock, price and order tests."""
        if Feature.products not in self.channel_type.supported:
            raise NotImplementedError("a channel without push-products must override list_product")
        push_product(channel, product)

    # -- helpers for the hooks and tests ------------------------------------------------
    def build(self, **wiring: Any) -> Channel:
        """`build_channel` with this test's links, imported orders and clock."""
        return build_channel(self.channel_type, links=self.links, known=self.imported, now=self.now, **wiring)

    def requires(self, feature: Feature) -> None:
        if feature not in self.channel_type.supported:
            pytest.skip(f"{self.channel_type.label} does not support {feature.value}")

    def import_orders(self, channel: Channel, cursor: str | None = None) -> tuple[list[Order], str | None]:
        """What pull-orders does: each batch's orders go into the "ERP", then the batch is
        acknowledged. Returns the orders and the cursor the job would save."""
        orders: list[Order] = []
        for batch in channel.pull_orders(cursor, None):
            for order in batch.orders:
                created = order.channel_order_id not in self.imported
                erp_id = self.imported.setdefault(order.channel_order_id, len(self.imported) + 1)
                channel.after_import(order, ImportOutcome(order_id=erp_id, created=created))
            channel.acknowledge(batch, set())
            orders.extend(batch.orders)
            cursor = batch.cursor or cursor
        return orders, cursor

    @staticmethod
    def orders_named(channel_order_id: str, orders: list[Order]) -> list[Order]:
        named = [order for order in orders if order.channel_order_id == channel_order_id]
        assert named, f"order {channel_order_id} was not pulled"
        return named

    def ready_order(self, fake: Any, channel: Channel, quantity: int, unit_price: Decimal) -> str:
        product = self.sample_product()
        self.list_product(fake, channel, product)
        return self.add_ready_order(fake, product.sku, quantity, unit_price)

    # -- fixtures ---------------------------------------------------------------------
    @pytest.fixture
    def fake(self) -> Any:
        return self.make_fake()

    @pytest.fixture
    def channel(self, fake: Any) -> Iterator[Channel]:
        channel = self.make_channel(fake)
        yield channel
        channel.close()
        channel.http.close()

    # -- the contract -----------------------------------------------------------------
    def test_declaration_is_data(self) -> None:
        declared = self.channel_type
        assert isinstance(declared.supported, frozenset) and declared.supported <= set(Feature)
        assert declared.type_name and declared.label
        assert not set(declared.unsupported_reason) & declared.supported  # a reason only for what is missing

    @pytest.mark.parametrize("feature", list(Feature))
    def test_capability_declaration_matches_the_calls(self, channel: Channel, feature: Feature) -> None:
        calls = FEATURE_CALLS[feature]
        if feature in self.channel_type.supported:
            # Declared: the adapter implements every call of the feature (the behaviour
            # tests below exercise them against the fake).
            stubs = [name for name in calls if getattr(type(channel), name) is getattr(Channel, name)]
            assert stubs == [], f"{feature.value} is declared but {stubs} are the base class's stubs"
            return
        for name, args in calls.items():
            with pytest.raises(Unsupported) as refused:
                _call(channel, name, args)
            assert channel.label in str(refused.value), f"{name}: {refused.value}"

    def test_product_push_is_idempotent(self, fake: Any, channel: Channel) -> None:
        self.requires(Feature.products)
        product = self.sample_product()
        push_product(channel, product)
        first = self.write_requests(fake)

        push_product(channel, product)

        assert first, "the first push wrote nothing"
        assert self.write_requests(fake) == first

    def test_stock_push_reads_back(self, fake: Any, channel: Channel) -> None:
        self.requires(Feature.stock)
        product = self.sample_product()
        self.list_product(fake, channel, product)
        for quantity in (7, 0):  # zero is a balance too, not "nothing to send"
            level = StockLevel(product.sku, quantity)
            channel.push_stock(level, channel.stock_payload(level))
            assert self.stock_of(fake, product.sku) == quantity

    def test_price_push_reads_back(self, fake: Any, channel: Channel) -> None:
        self.requires(Feature.prices)
        product = self.sample_product()
        self.list_product(fake, channel, product)
        for amount in (Decimal("129.90"), Decimal("119.90")):
            price = EffectivePrice(product.sku, amount)
            channel.push_price(price, channel.price_payload(price))
            assert self.price_of(fake, product.sku) == amount

    def test_pulled_orders_are_domain_orders(self, fake: Any, channel: Channel) -> None:
        self.requires(Feature.orders)
        order_id = self.ready_order(fake, channel, 2, Decimal("49.90"))

        orders = self.orders_named(order_id, self.import_orders(channel)[0])

        for order in orders:  # one per status change a run saw (e.g. approved, then handling)
            money = [order.total, order.shipping_cost, order.discount, *(line.unit_price for line in order.lines)]
            assert all(isinstance(amount, Decimal) for amount in money)
            assert order.placed_at.tzinfo is not None and order.placed_at.utcoffset() == timedelta(0)
            assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
                (self.sample_product().sku, 2, Decimal("49.90"))
            ]
            assert order.total >= Decimal("99.80")

    def test_acknowledged_orders_do_not_come_back(self, fake: Any, channel: Channel) -> None:
        self.requires(Feature.orders)
        order_id = self.ready_order(fake, channel, 1, Decimal("49.90"))
        first, cursor = self.import_orders(channel)
        self.let_time_pass(fake)

        again, _ = self.import_orders(channel, cursor)

        assert order_id in {order.channel_order_id for order in first}
        assert order_id not in {order.channel_order_id for order in again}

    def test_order_updates_are_accepted(self, fake: Any, channel: Channel) -> None:
        self.requires(Feature.order_updates)
        self.requires(Feature.orders)
        order_id = self.ready_order(fake, channel, 1, Decimal("49.90"))
        order = self.orders_named(order_id, self.import_orders(channel)[0])[-1]
        update = OrderUpdate(
            order_id=1, channel_order_id=order_id, status=OrderStatus.invoiced, lines=order.lines,
            shipping_cost=order.shipping_cost,
            invoice=Invoice(NFE_KEY, "1234", "1", self.now, order.total, "<nfeProc/>"),
            shipment=Shipment(1, 1, "Correios", "AA123456785BR", "https://rastreio.example/AA123456785BR",
                              shipped_at=self.now, delivery_status=DeliveryStatus.in_transit),
            events=(TrackingEvent(self.now, DeliveryStatus.posted, "PO", "Objeto postado", "CAJAMAR - SP"),),
        )  # fmt: skip

        parts = channel.order_update_payloads(update)
        for part, payload in parts.items():
            channel.push_order_update(update, part, payload)

        assert parts
        assert self.invoice_number_of(fake, order_id) == "1234"

    @pytest.mark.parametrize("model", ["Credentials", "Options"])
    def test_settings_models_forbid_unknown_keys(self, model: str) -> None:
        with pytest.raises(ValidationError) as refused:
            getattr(self.channel_type, model).model_validate({"surely_not_a_setting": "x"})
        assert "extra_forbidden" in {error["type"] for error in refused.value.errors()}

    def test_limits_are_positive(self) -> None:
        limits = self.channel_type.limits
        assert limits.rate_per_s > 0 and limits.burst >= 1 and limits.concurrency >= 1
