"""The ERP adapter over the integration schema, on SQLAlchemy Core (SQLite today,
PostgreSQL by URL).

SqlErp owns the engine and the transactions; the queries live in one module per
area (catalog, orders, tracking, tickets). Each write is one transaction; each
streamed read holds one read transaction for as long as its iterator is consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Engine

from syncctl.domain import (
    UTC,
    DeliveryStatus,
    EffectivePrice,
    ImportOutcome,
    Order,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    Ticket,
    TicketMessage,
    TrackingEvent,
    utc,
)
from syncctl.erp import catalog, changes, orders, schema, tickets, tracking
from syncctl.erp.db import absent_database, create_erp_engine, reading, writing
from syncctl.errors import ErpError


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqlErp:
    """Implements syncctl.erp.port.Erp. Thread-safe: every call takes its own pooled
    connection. `clock` stamps what syncctl writes (imported_at, moves, updated_at)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def close(self) -> None:
        self._engine.dispose()

    def _now(self) -> datetime:
        return utc(self._clock())

    # -- catalogue ---------------------------------------------------------------
    def warehouses(self) -> set[str]:
        with reading(self._engine) as conn:
            return catalog.warehouse_codes(conn)

    def sellable_products(self, skus: Collection[str] | None = None) -> Iterator[Product]:
        with reading(self._engine) as conn:
            yield from catalog.sellable_products(conn, skus)

    def stock_levels(
        self, warehouses: Collection[str] | None, skus: Collection[str] | None = None
    ) -> Iterator[StockLevel]:
        with reading(self._engine) as conn:
            yield from catalog.stock_levels(conn, warehouses, skus)

    def effective_prices(
        self, price_list: str, as_of: datetime, skus: Collection[str] | None = None
    ) -> Iterator[EffectivePrice]:
        with reading(self._engine) as conn:
            yield from catalog.effective_prices(conn, price_list, utc(as_of), skus)

    def next_price_change(self, price_list: str, after: datetime) -> datetime | None:
        with reading(self._engine) as conn:
            return catalog.next_price_change(conn, price_list, utc(after))

    def changed_products(self, since: datetime, limit: int) -> list[str]:
        with reading(self._engine) as conn:
            return changes.changed_products(conn, utc(since), limit)

    def changed_stock(self, warehouses: Collection[str] | None, since: datetime, limit: int) -> list[str]:
        with reading(self._engine) as conn:
            return changes.changed_stock(conn, warehouses, utc(since), limit)

    def changed_prices(self, price_list: str, since: datetime, until: datetime, limit: int) -> list[str]:
        with reading(self._engine) as conn:
            return changes.changed_prices(conn, price_list, utc(since), utc(until), limit)

    def sellable_skus(self, after: str | None, limit: int) -> list[str]:
        with reading(self._engine) as conn:
            return catalog.sellable_skus(conn, after, limit)

    # -- orders --------------------------------------------------------------------
    def known_orders(self, channel: str, channel_order_ids: Collection[str]) -> set[str]:
        with reading(self._engine) as conn:
            return orders.known_orders(conn, channel, channel_order_ids)

    def order_statuses(self, channel: str, channel_order_ids: Collection[str]) -> dict[str, OrderStatus]:
        with reading(self._engine) as conn:
            return orders.order_statuses(conn, channel, channel_order_ids)


    def import_orders(
        self, channel: str, batch: Sequence[Order], *, debit_warehouse: str | None, debits_stock: bool
    ) -> list[ImportOutcome | ErpError]:
        with writing(self._engine) as conn:
            return orders.import_orders(
                conn, channel, batch, debit_warehouse=debit_warehouse, debits_stock=debits_stock, now=self._now()
            )

    def order_updates(
        self, channel: str, channel_order_ids: Collection[str] | None = None
    ) -> Iterator[OrderUpdate]:
        with reading(self._engine) as conn:
            yield from orders.order_updates(conn, channel, channel_order_ids)

    # -- tracking ------------------------------------------------------------------
    def shipments_to_track(self, carrier: str) -> Iterator[Shipment]:
        with reading(self._engine) as conn:
            yield from tracking.shipments_to_track(conn, carrier)

    def record_tracking(
        self,
        shipment_id: int,
        events: Sequence[TrackingEvent],
        status: DeliveryStatus | None,
        delivered_at: datetime | None,
    ) -> int:
        with writing(self._engine) as conn:
            return tracking.record_tracking(conn, shipment_id, events, status, delivered_at, self._now())

    # -- tickets -------------------------------------------------------------------
    def import_ticket(self, channel: str, ticket: Ticket) -> tuple[int, int]:
        with writing(self._engine) as conn:
            return tickets.import_ticket(conn, channel, ticket, self._now())

    def pending_replies(self, channel: str) -> Iterator[tuple[str, TicketMessage]]:
        with reading(self._engine) as conn:
            yield from tickets.pending_replies(conn, channel)

    def sent_reply_ids(self, channel: str, channel_ticket_id: str) -> set[str]:
        with reading(self._engine) as conn:
            return tickets.sent_reply_ids(conn, channel, channel_ticket_id)

    def mark_reply_sent(self, message_id: int, channel_message_id: str, sent_at: datetime) -> None:
        with writing(self._engine) as conn:
            tickets.mark_reply_sent(conn, message_id, channel_message_id, sent_at)


def open_erp(url: str, *, clock: Callable[[], datetime] = _utc_now) -> SqlErp:
    return SqlErp(create_erp_engine(url), clock=clock)


def init_schema(url: str) -> None:
    """Create the integration schema (tables + the stock_balances view) on an empty database."""
    engine = create_erp_engine(url)
    try:
        with writing(engine) as conn:
            schema.create(conn)
    finally:
        engine.dispose()


def check_schema(url: str) -> list[str]:
    """One message per missing table/view or column the contract names; [] when complete."""
    absent = absent_database(url)
    if absent is not None:
        return [absent]
    engine = create_erp_engine(url)
    try:
        with reading(engine) as conn:
            return schema.problems(conn)
    finally:
        engine.dispose()
