"""Channel orders in the ERP: importing them (with their stock debit) and reading
back what push-invoices sends for them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    Row,
    Select,
    bindparam,
    exists,
    insert,
    or_,
    select,
    update,
)

from syncctl.domain import (
    ImportOutcome,
    Invoice,
    Order,
    OrderLine,
    OrderStatus,
    OrderUpdate,
    Shipment,
    TrackingEvent,
)
from syncctl.erp.db import IN_CHUNK, bytewise, chunked, erp_errors, insert_ignoring
from syncctl.erp.schema import (
    invoices,
    order_items,
    orders,
    shipment_events,
    shipments,
    stock_moves,
)
from syncctl.erp.tracking import event_from_row, shipment_from_row
from syncctl.errors import ConfigError, ErpError

CANCELLED_AFTER_INVOICING = "cancelled on the channel after invoicing: review the NF-e and the stock by hand"
_PROGRESS = (
    OrderStatus.approved,
    OrderStatus.handling,
    OrderStatus.invoiced,
    OrderStatus.shipped,
    OrderStatus.delivered,
)
_INVOICED = frozenset(_PROGRESS[_PROGRESS.index(OrderStatus.invoiced) :])


def known_orders(conn: Connection, channel: str, channel_order_ids: Collection[str]) -> set[str]:
    return set(order_statuses(conn, channel, channel_order_ids))


def order_statuses(conn: Connection, channel: str, channel_order_ids: Collection[str]) -> dict[str, OrderStatus]:
    """The status of each of these orders the ERP has."""
    statuses: dict[str, OrderStatus] = {}
    for chunk in chunked(set(channel_order_ids)):
        rows = conn.execute(
            select(orders.c.channel_order_id, orders.c.status).where(
                orders.c.channel == channel, orders.c.channel_order_id.in_(chunk)
            )
        )
        statuses.update((channel_order_id, OrderStatus(status)) for channel_order_id, status in rows)
    return statuses


def import_orders(
    conn: Connection,
    channel: str,
    batch: Sequence[Order],
    *,
    debit_warehouse: str | None,
    debits_stock: bool,
    now: datetime,
) -> list[ImportOutcome | ErpError]:
    """Run inside one writing transaction (see Erp.import_orders). A savepoint for each
    order would cost two statements more per order: the batch goes under one, and only
    when the database refuses one of its orders is the batch imported again, each order
    under a savepoint of its own, to undo that one alone."""
    rules: dict[str, Any] = {"debit_warehouse": debit_warehouse, "debits_stock": debits_stock, "now": now}
    try:
        with erp_errors(), conn.begin_nested():
            return _import_in_turn(conn, channel, batch, isolated=False, **rules)
    except ErpError:
        return _import_in_turn(conn, channel, batch, isolated=True, **rules)


def _import_in_turn(
    conn: Connection, channel: str, batch: Sequence[Order], *, isolated: bool, **rules: Any
) -> list[ImportOutcome | ErpError]:
    """Each order in turn; `isolated`: each under a savepoint, an order the database
    refuses undone and its error in its outcome's place (else the error is raised)."""
    # One look for the whole batch. It stands for an order's first entry only: a later
    # entry of the same order must see what the earlier one did, so it looks again.
    unseen = _find_all(conn, channel, {order.channel_order_id for order in batch})
    outcomes: list[ImportOutcome | ErpError] = []
    for order in batch:
        try:
            with erp_errors(), conn.begin_nested() if isolated else nullcontext():
                if order.channel_order_id in unseen:
                    existing = unseen.pop(order.channel_order_id)
                else:
                    existing = _find(conn, channel, order.channel_order_id)
                outcomes.append(_import_found(conn, channel, order, existing, **rules))
        except ErpError as exc:
            if not isolated:
                raise
            outcomes.append(exc)
    return outcomes


def _import_found(
    conn: Connection,
    channel: str,
    order: Order,
    existing: Row[Any] | None,
    *,
    debit_warehouse: str | None,
    debits_stock: bool,
    now: datetime,
) -> ImportOutcome:
    """Import `order`, `existing` being its row as last looked up (None: absent)."""
    if existing is None:
        if order.status is OrderStatus.canceled:
            return ImportOutcome(order_id=None)
        if debit_warehouse is None and not debits_stock:
            raise ConfigError(f"channel {channel} imports orders but has no stock.debit_warehouse")
        order_id = _insert(conn, channel, order, debit_warehouse, now)
        if order_id is not None:
            _insert_lines(conn, order_id, order.lines)
            if debit_warehouse is not None and not debits_stock:
                _debit(conn, order_id, debit_warehouse, order.lines, now)
            return ImportOutcome(order_id=order_id, created=True)
        # Another process inserted it between our look and our insert: theirs stands.
        existing = _find(conn, channel, order.channel_order_id)
        if existing is None:
            raise ErpError(f"order {channel}/{order.channel_order_id} conflicts with a row that is not there")
    return _follow_status(conn, existing, order, debits_stock=debits_stock, now=now)


def order_updates(
    conn: Connection, channel: str, channel_order_ids: Collection[str] | None
) -> Iterator[OrderUpdate]:
    for chunk in _orders_with_news(conn, channel, channel_order_ids):
        yield from _updates(conn, chunk)


# -- importing -------------------------------------------------------------------
# The statements an import runs are built once, their values bound at execution:
# building them anew for each order cost as much as running them.
_FIND = (
    select(orders.c.id, orders.c.status)
    .where(orders.c.channel == bindparam("channel"), orders.c.channel_order_id == bindparam("channel_order_id"))
    # FOR UPDATE (PostgreSQL) keeps two callers from both returning a cancelled order's
    # stock; SQLite needs nothing more, its writer holds the whole database.
    .with_for_update()
)
# A batch's orders, keyed by channel_order_id; locked as _FIND locks one.
_FIND_ALL = (
    select(orders.c.channel_order_id, orders.c.id, orders.c.status)
    .where(
        orders.c.channel == bindparam("channel"),
        orders.c.channel_order_id.in_(bindparam("channel_order_ids", expanding=True)),
    )
    .with_for_update()
)
_SET_STATUS = update(orders).where(orders.c.id == bindparam("order_id"))  # SET: the columns given
_INSERT_ITEMS = insert(order_items)
_INSERT_MOVES = insert(stock_moves)
_insert_order_by_dialect: dict[str, Executable] = {}


def _find(conn: Connection, channel: str, channel_order_id: str) -> Row[Any] | None:
    return conn.execute(_FIND, {"channel": channel, "channel_order_id": channel_order_id}).one_or_none()


def _find_all(conn: Connection, channel: str, channel_order_ids: Collection[str]) -> dict[str, Row[Any] | None]:
    """Each of these orders' row, None for those the ERP does not have."""
    found: dict[str, Row[Any] | None] = dict.fromkeys(channel_order_ids)
    for chunk in chunked(channel_order_ids):
        for row in conn.execute(_FIND_ALL, {"channel": channel, "channel_order_ids": chunk}):
            found[row.channel_order_id] = row
    return found


def _insert(
    conn: Connection, channel: str, order: Order, debit_warehouse: str | None, now: datetime
) -> int | None:
    """The new order's id, or None when the row already exists (ON CONFLICT DO NOTHING)."""
    values = {
        "channel": channel,
        "channel_order_id": order.channel_order_id,
        "status": order.status.value,
        "placed_at": order.placed_at,
        "customer_name": order.customer_name,
        "customer_document": order.customer_document,
        "customer_email": order.customer_email,
        "shipping_address": order.shipping_address,
        "total": order.total,
        "shipping_cost": order.shipping_cost,
        "discount": order.discount,
        "debit_warehouse": debit_warehouse,
        "raw": order.raw,
        "imported_at": now,
        "updated_at": now,
    }
    return conn.execute(_insert_order(conn), values).scalar_one_or_none()


def _insert_order(conn: Connection) -> Executable:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, for the connection's backend."""
    dialect = conn.dialect.name
    if dialect not in _insert_order_by_dialect:
        _insert_order_by_dialect[dialect] = insert_ignoring(conn, orders).returning(orders.c.id)
    return _insert_order_by_dialect[dialect]


def _insert_lines(conn: Connection, order_id: int, lines: Sequence[OrderLine]) -> None:
    if lines:
        conn.execute(
            _INSERT_ITEMS,
            [
                {
                    "order_id": order_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "channel_item_id": line.channel_item_id,
                }
                for line in lines
            ],
        )


def _debit(
    conn: Connection, order_id: int, warehouse: str, lines: Sequence[OrderLine], now: datetime
) -> None:
    moves = [(warehouse, line.sku, -line.quantity) for line in lines]
    _write_moves(conn, order_id, moves, reason="sale", now=now)


def _follow_status(
    conn: Connection, existing: Row[Any], order: Order, *, debits_stock: bool, now: datetime
) -> ImportOutcome:
    order_id = existing.id
    old = OrderStatus(existing.status)
    if not _moves_forward(old, order.status):
        return ImportOutcome(order_id=order_id)
    flag = None
    if order.status is OrderStatus.canceled:
        if old in _INVOICED or _has_invoice(conn, order_id):
            flag = CANCELLED_AFTER_INVOICING
        elif not debits_stock:
            _return_stock(conn, order_id, now)
    changes: dict[str, Any] = {"order_id": order_id, "status": order.status.value, "updated_at": now}
    if order.raw is not None:
        changes["raw"] = order.raw
    conn.execute(_SET_STATUS, changes)
    return ImportOutcome(order_id=order_id, status_changed=True, flag=flag)


def _moves_forward(old: OrderStatus, new: OrderStatus) -> bool:
    """Statuses only move forward, and a cancellation is final: a channel still
    reporting an earlier status (the ERP invoiced before the channel heard of it)
    changes nothing."""
    if old is OrderStatus.canceled:
        return False
    if new is OrderStatus.canceled:
        return True
    return _PROGRESS.index(new) > _PROGRESS.index(old)


def _has_invoice(conn: Connection, order_id: int) -> bool:
    return bool(conn.scalar(select(exists().where(invoices.c.order_id == order_id))))


def _return_stock(conn: Connection, order_id: int, now: datetime) -> None:
    """Put back exactly what the sale moves took, once."""
    returned = conn.scalar(
        select(exists().where(stock_moves.c.order_id == order_id, stock_moves.c.reason == "cancel"))
    )
    if returned:
        return
    sold = conn.execute(
        select(stock_moves.c.warehouse, stock_moves.c.sku, stock_moves.c.delta)
        .where(stock_moves.c.order_id == order_id, stock_moves.c.reason == "sale")
        .order_by(stock_moves.c.id)
    )
    moves = [(warehouse, sku, -delta) for warehouse, sku, delta in sold]
    _write_moves(conn, order_id, moves, reason="cancel", now=now)


def _write_moves(
    conn: Connection,
    order_id: int,
    moves: Sequence[tuple[str, str, int]],
    *,
    reason: str,
    now: datetime,
) -> None:
    if moves:
        conn.execute(
            _INSERT_MOVES,
            [
                {
                    "warehouse": warehouse,
                    "sku": sku,
                    "delta": delta,
                    "reason": reason,
                    "order_id": order_id,
                    "created_at": now,
                }
                for warehouse, sku, delta in moves
            ],
        )


# -- reading back ------------------------------------------------------------------
def _with_news(channel: str) -> Select[Any]:
    """Orders of `channel` that have an invoice or a shipment."""
    return (
        select(orders.c.id, orders.c.channel_order_id, orders.c.status, orders.c.shipping_cost)
        .where(
            orders.c.channel == channel,
            or_(
                exists().where(invoices.c.order_id == orders.c.id),
                exists().where(shipments.c.order_id == orders.c.id),
            ),
        )
        .order_by(orders.c.id)
    )


def _orders_with_news(
    conn: Connection, channel: str, channel_order_ids: Collection[str] | None
) -> Iterator[Sequence[Row[Any]]]:
    """Chunks of at most IN_CHUNK order rows, in order id order."""
    if channel_order_ids is None:
        result = conn.execute(_with_news(channel), execution_options={"yield_per": IN_CHUNK})
        yield from result.partitions()
        return
    # The caller holds the ids already, so holding their rows to sort them is as cheap.
    found = [
        row
        for chunk in chunked(set(channel_order_ids))
        for row in conn.execute(_with_news(channel).where(orders.c.channel_order_id.in_(chunk)))
    ]
    yield from chunked(sorted(found, key=lambda row: row.id))


def _updates(conn: Connection, order_rows: Sequence[Row[Any]]) -> Iterator[OrderUpdate]:
    ids = [row.id for row in order_rows]
    lines = _lines_by_order(conn, ids)
    invoice_of = _invoices_by_order(conn, ids)
    shipment_of = _latest_shipments(conn, ids)
    events_of = _events_by_shipment(conn, [shipment.id for shipment in shipment_of.values()])
    for row in order_rows:
        shipment = shipment_of.get(row.id)
        yield OrderUpdate(
            order_id=row.id,
            channel_order_id=row.channel_order_id,
            status=OrderStatus(row.status),
            lines=tuple(lines[row.id]),
            shipping_cost=row.shipping_cost,
            invoice=invoice_of.get(row.id),
            shipment=shipment,
            events=tuple(events_of[shipment.id]) if shipment else (),
        )


def _lines_by_order(conn: Connection, order_ids: list[int]) -> dict[int, list[OrderLine]]:
    lines: dict[int, list[OrderLine]] = defaultdict(list)
    rows = conn.execute(
        select(order_items)
        .where(order_items.c.order_id.in_(order_ids))
        # order_items has no key of its own; this keeps the order of lines stable.
        .order_by(order_items.c.order_id, bytewise(order_items.c.channel_item_id), bytewise(order_items.c.sku))
    )
    for row in rows:
        lines[row.order_id].append(
            OrderLine(
                sku=row.sku,
                quantity=row.quantity,
                unit_price=row.unit_price,
                channel_item_id=row.channel_item_id,
            )
        )
    return lines


def _invoices_by_order(conn: Connection, order_ids: list[int]) -> dict[int, Invoice]:
    rows = conn.execute(select(invoices).where(invoices.c.order_id.in_(order_ids)))
    return {
        row.order_id: Invoice(
            nfe_key=row.nfe_key,
            number=row.number,
            series=row.series,
            issued_at=row.issued_at,
            total=row.total,
            xml=row.xml,
        )
        for row in rows
    }


def _latest_shipments(conn: Connection, order_ids: list[int]) -> dict[int, Shipment]:
    """Per order, the shipment with the latest shipped_at (then the highest id); one not
    shipped yet counts as the oldest."""
    rows = conn.execute(
        select(shipments)
        .where(shipments.c.order_id.in_(order_ids))
        .order_by(shipments.c.order_id, shipments.c.shipped_at.asc().nulls_first(), shipments.c.id)
    )
    return {row.order_id: shipment_from_row(row) for row in rows}  # the last of each order wins


def _events_by_shipment(conn: Connection, shipment_ids: list[int]) -> dict[int, list[TrackingEvent]]:
    events: dict[int, list[TrackingEvent]] = defaultdict(list)
    if not shipment_ids:
        return events
    rows = conn.execute(
        select(shipment_events)
        .where(shipment_events.c.shipment_id.in_(shipment_ids))
        .order_by(shipment_events.c.shipment_id, shipment_events.c.occurred_at, bytewise(shipment_events.c.code))
    )
    for row in rows:
        events[row.shipment_id].append(event_from_row(row))
    return events
