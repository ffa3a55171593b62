"""Reads of the catalogue: products, warehouses, stock balances and prices.

Every read is one query per chunk of SKUs (or one query for all), streamed and
ordered by sku in code point order on every backend; SKU filters are sorted the
same way before chunking, so chunk after chunk the output stays in sku order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, func, or_, select, union

from syncctl.domain import EffectivePrice, Product, StockLevel
from syncctl.erp.db import bytewise, chunked, stream, stream_as
from syncctl.erp.pricing import ListedPrice, ScheduledPrice, effective_price
from syncctl.erp.schema import price_schedules, prices, products, stock_balances, warehouses

_parent = products.alias("parent")
_child = products.alias("child")


def warehouse_codes(conn: Connection) -> set[str]:
    return set(conn.scalars(select(warehouses.c.code)))


def sellable_products(conn: Connection, skus: Collection[str] | None) -> Iterator[Product]:
    for chunk in _sku_chunks(skus):
        statement = (
            select(products, _parent.c.name.label("parent_name"))
            .select_from(products.outerjoin(_parent, _parent.c.sku == products.c.parent_sku))
            .where(_is_sellable())
            .order_by(bytewise(products.c.sku))
        )
        if chunk is not None:
            statement = statement.where(products.c.sku.in_(chunk))
        yield from stream_as(conn, statement, Product)


def stock_levels(
    conn: Connection, in_warehouses: Collection[str] | None, skus: Collection[str] | None
) -> Iterator[StockLevel]:
    for chunk in _sku_chunks(skus):
        # The filters go inside the aggregate so the backend can push them into the view.
        balance = select(
            stock_balances.c.sku, func.sum(stock_balances.c.quantity).label("quantity")
        ).group_by(stock_balances.c.sku)
        if in_warehouses is not None:
            balance = balance.where(stock_balances.c.warehouse.in_(list(in_warehouses)))
        sellable = select(products.c.sku).where(_is_sellable())
        if chunk is not None:
            balance = balance.where(stock_balances.c.sku.in_(chunk))
            sellable = sellable.where(products.c.sku.in_(chunk))
        totals = balance.subquery("totals")
        listed = sellable.subquery("sellable")
        statement = (
            select(listed.c.sku, func.coalesce(totals.c.quantity, 0))
            .select_from(listed.outerjoin(totals, totals.c.sku == listed.c.sku))
            .order_by(bytewise(listed.c.sku))
        )
        for sku, quantity in stream(conn, statement):
            yield StockLevel(sku=sku, quantity=int(quantity))


def effective_prices(
    conn: Connection, price_list: str, as_of: datetime, skus: Collection[str] | None
) -> Iterator[EffectivePrice]:
    for chunk in _sku_chunks(skus):
        for (
            sku,
            list_price,
            sale_price,
            sale_starts_at,
            sale_ends_at,
            updated_at,
            scheduled_list_price,
            scheduled_sale_price,
            scheduled_at,
        ) in stream(conn, _price_rows(price_list, as_of, chunk)):
            listed = (
                None
                if list_price is None
                else ListedPrice(list_price, sale_price, sale_starts_at, sale_ends_at, updated_at)
            )
            scheduled = (
                None
                if scheduled_at is None
                else ScheduledPrice(scheduled_list_price, scheduled_sale_price, scheduled_at)
            )
            price = effective_price(sku, listed, scheduled, as_of)
            if price is not None:
                yield price


def next_price_change(conn: Connection, price_list: str, after: datetime) -> datetime | None:
    edges = (price_schedules.c.starts_at, prices.c.sale_starts_at, prices.c.sale_ends_at)
    firsts = [
        select(func.min(edge)).where(edge.table.c.price_list == price_list, edge > after).scalar_subquery()
        for edge in edges
    ]
    found = [moment for moment in conn.execute(select(*firsts)).one() if moment is not None]
    return min(found, default=None)


def sellable_skus(conn: Connection, after: str | None, limit: int) -> list[str]:
    """The next `limit` sellable SKUs after `after` (None: from the first), in the
    order the streamed reads use."""
    statement = select(products.c.sku).where(_is_sellable()).order_by(bytewise(products.c.sku)).limit(limit)
    if after is not None:
        statement = statement.where(bytewise(products.c.sku) > after)
    return list(conn.scalars(statement))


def _sku_chunks(skus: Collection[str] | None) -> Iterator[list[str] | None]:
    """None: one pass over everything; else the SKUs sorted, in IN-sized chunks."""
    if skus is None:
        yield None
    else:
        yield from chunked(sorted(set(skus)))


def _is_sellable() -> ColumnElement[bool]:
    """Not the parent of any row: a variation or a standalone product."""
    return ~exists().where(_child.c.parent_sku == products.c.sku)


def _price_rows(price_list: str, as_of: datetime, chunk: list[str] | None) -> Select[Any]:
    """Per SKU with a price row or a started schedule: both side by side (NULLs where
    absent). The latest schedule is found by "no later one started", which index
    lookups answer row by row, where a ranked subquery would be joined by scanning."""
    listed_skus = select(prices.c.sku).where(prices.c.price_list == price_list)
    started = and_(price_schedules.c.price_list == price_list, price_schedules.c.starts_at <= as_of)
    scheduled_skus = select(price_schedules.c.sku).where(started)
    if chunk is not None:
        listed_skus = listed_skus.where(prices.c.sku.in_(chunk))
        scheduled_skus = scheduled_skus.where(price_schedules.c.sku.in_(chunk))
    keys = union(listed_skus, scheduled_skus).subquery("keys")
    later = price_schedules.alias("later")
    is_latest = ~exists().where(
        later.c.sku == price_schedules.c.sku,
        later.c.price_list == price_list,
        later.c.starts_at <= as_of,
        or_(
            later.c.starts_at > price_schedules.c.starts_at,
            and_(later.c.starts_at == price_schedules.c.starts_at, later.c.id > price_schedules.c.id),
        ),
    )
    return (
        select(
            keys.c.sku,
            prices.c.list_price,
            prices.c.sale_price,
            prices.c.sale_starts_at,
            prices.c.sale_ends_at,
            prices.c.updated_at,
            price_schedules.c.list_price.label("scheduled_list_price"),
            price_schedules.c.sale_price.label("scheduled_sale_price"),
            price_schedules.c.starts_at.label("scheduled_at"),
        )
        .select_from(
            keys.outerjoin(
                prices, and_(prices.c.sku == keys.c.sku, prices.c.price_list == price_list)
            ).outerjoin(price_schedules, and_(price_schedules.c.sku == keys.c.sku, started, is_latest))
        )
        .order_by(bytewise(keys.c.sku))
    )
