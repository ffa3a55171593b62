"""What jobs may ask of the ERP. Jobs see only this; the SQL adapter (SQLite or
PostgreSQL) implements it."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from syncctl.domain import (
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
)
from syncctl.errors import ErpError


class Erp(Protocol):
    def close(self) -> None: ...

    def warehouses(self) -> set[str]: ...

    def sellable_products(self, skus: Collection[str] | None = None) -> Iterator[Product]:
        """Every row that is not a parent of other rows (a variation or a standalone
        product), ordered by sku, streamed in batches; variations carry parent_name."""
        ...

    def stock_levels(
        self, warehouses: Collection[str] | None, skus: Collection[str] | None = None
    ) -> Iterator[StockLevel]:
        """Per sellable SKU, ordered by sku: the sum over `warehouses` (None: all) of
        `stock_balances` (latest approved count + moves after it); 0 when it has none.
        Not clamped: the job applies reserve and the floor."""
        ...

    def effective_prices(
        self, price_list: str, as_of: datetime, skus: Collection[str] | None = None
    ) -> Iterator[EffectivePrice]:
        """Per SKU with a price on `price_list`, ordered by sku: the row of `prices`, or the
        latest `price_schedules` row started by `as_of` when it started after that row's
        updated_at; the sale price only while its window holds at `as_of`."""
        ...

    def next_price_change(self, price_list: str, after: datetime) -> datetime | None:
        """The first schedule start or sale start/end strictly after `after`."""
        ...

    # What may have changed (incremental runs): at most `limit` SKUs each, in no order;
    # `limit` of them means there may be more.
    def changed_products(self, since: datetime, limit: int) -> list[str]:
        """Rows whose updated_at is after `since`, and the variations of such parents."""
        ...

    def changed_stock(self, warehouses: Collection[str] | None, since: datetime, limit: int) -> list[str]:
        """SKUs with a count (updated_at or approved_at) or a move (created_at) after
        `since` in `warehouses` (None: any), and products whose updated_at is after it."""
        ...

    def changed_prices(self, price_list: str, since: datetime, until: datetime, limit: int) -> list[str]:
        """SKUs whose `prices` row's updated_at is after `since`, or whose schedule start or
        sale start/end falls in (since, until]."""
        ...

    def sellable_skus(self, after: str | None, limit: int) -> list[str]:
        """The next `limit` sellable SKUs after `after` (None: from the first), ordered
        as `sellable_products` orders them."""
        ...

    def known_orders(self, channel: str, channel_order_ids: Collection[str]) -> set[str]: ...

    def order_statuses(self, channel: str, channel_order_ids: Collection[str]) -> dict[str, OrderStatus]:
        """The status of each of these orders the ERP has (one read, however many)."""
        ...

    def import_orders(
        self, channel: str, batch: Sequence[Order], *, debit_warehouse: str | None, debits_stock: bool
    ) -> list[ImportOutcome | ErpError]:
        """Each order of `batch`, in order, all in one transaction (a commit per order
        would cost more than its import). New order: insert order + items and (unless
        `debits_stock`) one stock move per line on `debit_warehouse` (reason 'sale'); a
        cancelled order never imported is not created. Known order: update status;
        cancellation before invoicing returns the stock (reason 'cancel', once); after
        invoicing it is only flagged. Two callers importing the same order produce one
        row and one debit. Each order is undone alone when the database refuses it: its
        ErpError takes its outcome's place and the rest commit. Raises ErpError when the
        transaction as a whole fails (none is in)."""
        ...

    def order_updates(
        self, channel: str, channel_order_ids: Collection[str] | None = None
    ) -> Iterator[OrderUpdate]:
        """Orders of `channel` that have an invoice or a shipment, with their lines,
        invoice, latest shipment and its events; ordered by order id."""
        ...

    def shipments_to_track(self, carrier: str) -> Iterator[Shipment]:
        """Shipments of `carrier` with a tracking code whose status is not final."""
        ...

    def record_tracking(
        self,
        shipment_id: int,
        events: Sequence[TrackingEvent],
        status: DeliveryStatus | None,
        delivered_at: datetime | None,
    ) -> int:
        """Append new events (unique key: nothing twice), set the status; returns how many were new."""
        ...

    def import_ticket(self, channel: str, ticket: Ticket) -> tuple[int, int]:
        """Upsert the ticket and append its unseen `in` messages (by channel_message_id);
        returns (ERP ticket id, new messages)."""
        ...

    def pending_replies(self, channel: str) -> Iterator[tuple[str, TicketMessage]]:
        """(channel_ticket_id, message) for `out` messages not yet sent, on tickets that
        came from `channel`, oldest first."""
        ...

    def sent_reply_ids(self, channel: str, channel_ticket_id: str) -> set[str]:
        """The channel's ids of the replies the ERP holds as sent on that ticket."""
        ...

    def mark_reply_sent(self, message_id: int, channel_message_id: str, sent_at: datetime) -> None: ...
