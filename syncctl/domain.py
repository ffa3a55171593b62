"""The records syncctl moves between the ERP and channels.

Frozen dataclasses; money is Decimal, times are aware UTC datetimes. Nothing here
does I/O: the ERP adapter builds these from rows, channel mappers turn them into
payloads and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum

UTC = timezone.utc
CENT = Decimal("0.01")


def money(value: object) -> Decimal:
    """Decimal with two places from a str, int or Decimal (never from float arithmetic)."""
    if isinstance(value, float):
        value = repr(value)
    return Decimal(str(value)).quantize(CENT)


def utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime; naive input is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Feature(StrEnum):
    """A flow a channel can exchange; config `features` switches them."""

    products = "products"
    stock = "stock"
    prices = "prices"
    orders = "orders"
    order_updates = "order_updates"
    sac = "sac"


class OrderStatus(StrEnum):
    """The ERP's view of a channel order (orders.status)."""

    approved = "approved"  # paid, ready to be handled
    handling = "handling"
    invoiced = "invoiced"
    shipped = "shipped"
    delivered = "delivered"
    canceled = "canceled"


class DeliveryStatus(StrEnum):
    posted = "posted"
    in_transit = "in_transit"
    out_for_delivery = "out_for_delivery"
    awaiting_pickup = "awaiting_pickup"
    delivered = "delivered"
    delivery_failed = "delivery_failed"
    returning = "returning"
    returned = "returned"
    exception = "exception"


FINAL_DELIVERY = frozenset({DeliveryStatus.delivered, DeliveryStatus.returned})


@dataclass(frozen=True)
class Product:
    """One row of `products`. A row with children (rows naming it as parent) is a
    product grouping variations; every other row is a sellable SKU."""

    sku: str
    name: str
    parent_sku: str | None = None
    parent_name: str | None = None  # the parent's name, for variations
    ean: str | None = None
    brand: str | None = None
    description: str | None = None
    weight_kg: Decimal | None = None
    height_cm: Decimal | None = None
    width_cm: Decimal | None = None
    length_cm: Decimal | None = None
    active: bool = True
    updated_at: datetime | None = None

    @property
    def product_ref(self) -> str:
        """The key of the product this SKU belongs to (itself when standalone)."""
        return self.parent_sku or self.sku


@dataclass(frozen=True)
class StockLevel:
    """What a channel may sell of one SKU: approved balances of its warehouses,
    minus its reserve, never below zero."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class EffectivePrice:
    """The price of one SKU on one price list as it stands at `as_of`.

    `sale_price` is set only while the promotion is running; its window is kept so
    channels that take date ranges can end it on time themselves.
    """

    sku: str
    list_price: Decimal
    sale_price: Decimal | None = None
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None

    @property
    def selling_price(self) -> Decimal:
        return self.sale_price if self.sale_price is not None else self.list_price


@dataclass(frozen=True)
class OrderLine:
    sku: str  # ERP sku
    quantity: int
    unit_price: Decimal
    channel_item_id: str | None = None


@dataclass(frozen=True)
class Order:
    """A channel order as the ERP stores it."""

    channel_order_id: str
    status: OrderStatus
    placed_at: datetime
    lines: tuple[OrderLine, ...]
    total: Decimal
    shipping_cost: Decimal = Decimal("0.00")
    discount: Decimal = Decimal("0.00")
    customer_name: str | None = None
    customer_document: str | None = None
    customer_email: str | None = None
    shipping_address: str | None = None  # JSON text
    raw: str | None = None  # the channel's own JSON, for support staff
    channel_status: str | None = None  # the channel's own status word


@dataclass(frozen=True)
class ImportOutcome:
    """What `Erp.import_orders` did with one order."""

    order_id: int | None  # ERP id; None when the order was not importable
    created: bool = False
    status_changed: bool = False
    flag: str | None = None  # something a person must look at (e.g. cancelled after invoicing)


@dataclass(frozen=True)
class Invoice:
    nfe_key: str
    number: str
    series: str | None
    issued_at: datetime
    total: Decimal
    xml: str | None = None


@dataclass(frozen=True)
class Shipment:
    id: int
    order_id: int
    carrier: str | None
    tracking_code: str | None
    tracking_url: str | None = None
    shipped_at: datetime | None = None
    delivery_status: DeliveryStatus | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class TrackingEvent:
    occurred_at: datetime
    status: DeliveryStatus
    code: str
    description: str = ""
    location: str | None = None


@dataclass(frozen=True)
class OrderUpdate:
    """What `push-invoices` sends for one imported order: its invoice, its latest
    shipment and that shipment's events (for channels that take delivery updates)."""

    order_id: int
    channel_order_id: str
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    shipping_cost: Decimal
    invoice: Invoice | None = None
    shipment: Shipment | None = None
    events: tuple[TrackingEvent, ...] = ()


@dataclass(frozen=True)
class TicketMessage:
    direction: str  # "in" from the customer/channel, "out" an agent's reply
    body: str
    created_at: datetime
    author: str | None = None
    channel_message_id: str | None = None
    id: int | None = None  # ERP id


@dataclass(frozen=True)
class Ticket:
    channel_ticket_id: str
    subject: str
    status: str
    opened_at: datetime
    channel_order_id: str | None = None
    messages: tuple[TicketMessage, ...] = field(default=())
    updated_at: datetime | None = None
