"""The ERP integration schema of contract §5, as SQLAlchemy tables and one view.

`create` builds it on an empty database (the embedded ERP); `problems` tells what a
database (ours, or a real ERP's views and staging tables) lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    CompoundSelect,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    exists,
    func,
    inspect,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.engine import Inspector
from sqlalchemy.schema import CreateView

from syncctl.domain import DeliveryStatus, OrderStatus
from syncctl.erp.types import MONEY, ExactDecimal, UtcDateTime


def _one_of(column: str, values: Iterable[str]) -> str:
    """A CHECK condition: `column` holds one of `values` (plain words, safe to quote)."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


metadata = MetaData()

# -- read by syncctl ------------------------------------------------------------
products = Table(
    "products",
    metadata,
    Column("sku", String, primary_key=True),
    Column("parent_sku", String, index=True),  # set on variations; the parent is a row too
    Column("name", String, nullable=False),
    Column("ean", String),
    Column("brand", String),
    Column("description", Text),
    Column("weight_kg", ExactDecimal(10, 3)),
    Column("height_cm", ExactDecimal(10, 2)),
    Column("width_cm", ExactDecimal(10, 2)),
    Column("length_cm", ExactDecimal(10, 2)),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("updated_at", UtcDateTime),
    Index("ix_products_updated", "updated_at"),  # incremental runs: what changed since (erp/changes.py)
)

warehouses = Table(
    "warehouses",
    metadata,
    Column("code", String, primary_key=True),
    Column("name", String),
)

inventories = Table(
    "inventories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("warehouse", String, nullable=False),
    Column("sku", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String, nullable=False, server_default="draft"),
    Column("approved_at", UtcDateTime),
    Column("updated_at", UtcDateTime),
    CheckConstraint("status IN ('draft', 'approved')", name="inventories_status"),
    CheckConstraint("status <> 'approved' OR approved_at IS NOT NULL", name="inventories_approved_at"),
    Index("ix_inventories_latest", "sku", "warehouse", "status", "approved_at", "id"),
    Index("ix_inventories_updated", "updated_at"),
    Index("ix_inventories_approved", "approved_at"),
)

stock_moves = Table(
    "stock_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("warehouse", String, nullable=False),
    Column("sku", String, nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", String, nullable=False),  # 'sale' and 'cancel' are syncctl's
    # No foreign key: the ERP's own moves may point at documents that are not channel orders.
    Column("order_id", Integer, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_stock_moves_balance", "sku", "warehouse", "created_at"),
    Index("ix_stock_moves_created", "created_at"),
)

prices = Table(
    "prices",
    metadata,
    Column("sku", String, primary_key=True),
    Column("price_list", String, primary_key=True),
    Column("list_price", MONEY, nullable=False),
    Column("sale_price", MONEY),
    Column("sale_starts_at", UtcDateTime),  # either end of the sale window may be open (NULL)
    Column("sale_ends_at", UtcDateTime),
    Column("updated_at", UtcDateTime),
    Index("ix_prices_list", "price_list", "sku"),
    # next_price_change looks for the first window edge after a moment.
    Index("ix_prices_sale_starts", "price_list", "sale_starts_at"),
    Index("ix_prices_sale_ends", "price_list", "sale_ends_at"),
    Index("ix_prices_updated", "price_list", "updated_at"),
)

price_schedules = Table(
    "price_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sku", String, nullable=False),
    Column("price_list", String, nullable=False),
    Column("list_price", MONEY, nullable=False),
    Column("sale_price", MONEY),
    Column("starts_at", UtcDateTime, nullable=False),
    Index("ix_price_schedules_list", "price_list", "sku", "starts_at"),
    Index("ix_price_schedules_starts", "price_list", "starts_at"),
)

# -- written by syncctl (and read back) -------------------------------------------
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String, nullable=False),
    Column("channel_order_id", String, nullable=False),
    Column("status", String, nullable=False),
    Column("placed_at", UtcDateTime, nullable=False),
    Column("customer_name", String),
    Column("customer_document", String),
    Column("customer_email", String),
    Column("shipping_address", Text),  # JSON text
    Column("total", MONEY, nullable=False),
    Column("shipping_cost", MONEY, nullable=False),
    Column("discount", MONEY, nullable=False),
    Column("debit_warehouse", String),
    Column("raw", Text),  # the channel's own JSON
    Column("imported_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel", "channel_order_id", name="uq_orders_channel_order"),
    CheckConstraint(_one_of("status", OrderStatus), name="orders_status"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, index=True),
    Column("sku", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", MONEY, nullable=False),
    Column("channel_item_id", String),
)

invoices = Table(
    "invoices",
    metadata,
    Column("order_id", Integer, ForeignKey("orders.id"), primary_key=True),  # one NF-e per order
    Column("nfe_key", String, nullable=False),
    Column("number", String, nullable=False),
    Column("series", String),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("total", MONEY, nullable=False),
    Column("xml", Text),
    Column("updated_at", UtcDateTime),
)

shipments = Table(
    "shipments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, index=True),
    Column("carrier", String, index=True),
    Column("tracking_code", String),
    Column("tracking_url", String),
    Column("shipped_at", UtcDateTime),
    Column("delivery_status", String),
    Column("delivered_at", UtcDateTime),
    Column("updated_at", UtcDateTime),
    CheckConstraint(
        f"delivery_status IS NULL OR {_one_of('delivery_status', DeliveryStatus)}",
        name="shipments_delivery_status",
    ),
)

shipment_events = Table(
    "shipment_events",
    metadata,
    Column("shipment_id", Integer, ForeignKey("shipments.id"), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("status", String, nullable=False),
    Column("code", String, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("location", String),
    UniqueConstraint("shipment_id", "occurred_at", "code", name="uq_shipment_events_event"),
    CheckConstraint(_one_of("status", DeliveryStatus), name="shipment_events_status"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String, nullable=False),
    Column("channel_ticket_id", String, nullable=False),
    Column("order_id", Integer, ForeignKey("orders.id")),
    Column("subject", String, nullable=False),
    Column("status", String, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel", "channel_ticket_id", name="uq_tickets_channel_ticket"),
)

ticket_messages = Table(
    "ticket_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("direction", String, nullable=False),
    Column("author", String),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("channel_message_id", String),  # NULL on an `out` message: waiting to be sent
    Column("sent_at", UtcDateTime),
    # NULLs are distinct in a UNIQUE key on SQLite and PostgreSQL alike, so any number of
    # unsent replies may wait while a channel message is stored once.
    UniqueConstraint("ticket_id", "channel_message_id", name="uq_ticket_messages_channel_message"),
    CheckConstraint("direction IN ('in', 'out')", name="ticket_messages_direction"),
    Index("ix_ticket_messages_pending", "direction", "channel_message_id"),
)


def _stock_balances_query() -> CompoundSelect[Any]:
    """Per (sku, warehouse): the latest approved count (by approved_at, then highest id)
    plus the moves created after it; a pair with moves but no approved count counts its
    moves from zero, so a warehouse never counted still reports what was sold from it.
    A move at the very instant of the count is taken as already counted.

    Written as correlated lookups in two UNION ALL arms, not window functions, so a
    filter on sku or warehouse reaches the indexes through the view (SQLite and
    PostgreSQL both push it into each arm)."""
    count = inventories.alias("counted")
    newer = inventories.alias("newer")
    later = stock_moves.alias("later")
    is_latest_count = and_(
        count.c.status == "approved",
        ~exists().where(
            newer.c.sku == count.c.sku,
            newer.c.warehouse == count.c.warehouse,
            newer.c.status == "approved",
            or_(
                newer.c.approved_at > count.c.approved_at,
                and_(newer.c.approved_at == count.c.approved_at, newer.c.id > count.c.id),
            ),
        ),
    )
    after_count = and_(
        later.c.sku == count.c.sku,
        later.c.warehouse == count.c.warehouse,
        later.c.created_at > count.c.approved_at,
    )
    moved_since = select(func.coalesce(func.sum(later.c.delta), 0)).where(after_count).scalar_subquery()
    last_move = select(func.max(later.c.created_at)).where(after_count).scalar_subquery()
    counted = select(
        count.c.sku,
        count.c.warehouse,
        (count.c.quantity + moved_since).label("quantity"),
        func.coalesce(last_move, count.c.approved_at).label("updated_at"),
    ).where(is_latest_count)
    never_counted = (
        select(
            stock_moves.c.sku,
            stock_moves.c.warehouse,
            func.sum(stock_moves.c.delta).label("quantity"),
            func.max(stock_moves.c.created_at).label("updated_at"),
        )
        .where(
            ~exists().where(
                inventories.c.sku == stock_moves.c.sku,
                inventories.c.warehouse == stock_moves.c.warehouse,
                inventories.c.status == "approved",
            )
        )
        .group_by(stock_moves.c.sku, stock_moves.c.warehouse)
    )
    return union_all(counted, never_counted)


stock_balances = CreateView(_stock_balances_query(), "stock_balances", metadata=metadata).table

VIEWS = frozenset({"stock_balances"})


def create(conn: Connection) -> None:
    """Create whatever of the schema is missing; what exists is left alone."""
    metadata.create_all(conn, checkfirst=True)


def problems(conn: Connection) -> list[str]:
    """One message per missing table/view, column or upsert key; [] when complete."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    found: list[str] = []
    for table in metadata.sorted_tables:
        kind = "view" if table.name in VIEWS else "table"
        if table.name not in present:
            found.append(f"{kind} {table.name}: missing")
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in columns]
        found.extend(f"{kind} {table.name}: missing column {name}" for name in missing)
        if not missing:
            found.extend(
                f"{kind} {table.name}: missing unique key ({', '.join(key)})"
                for key in _upsert_keys(table)
                if key not in set(_unique_keys(inspector, table.name))
            )
    return found


def _upsert_keys(table: Table) -> Iterator[tuple[str, ...]]:
    """The unique keys syncctl's upserts name as conflict targets."""
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            yield tuple(column.name for column in constraint.columns)


def _unique_keys(inspector: Inspector, table: str) -> Iterator[tuple[str, ...]]:
    for constraint in inspector.get_unique_constraints(table):
        yield tuple(constraint["column_names"])
    for index in inspector.get_indexes(table):
        if index["unique"]:
            yield tuple(name for name in index["column_names"] if name is not None)
