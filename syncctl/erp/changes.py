"""Which SKUs may push differently than at an earlier moment, for incremental runs
(jobs/incremental.py): the rows the ERP stamped after `since`, and the price edges
(a schedule starting, a sale window opening or closing) that fell in (since, until].

Each arm of each query reaches its timestamp through an index, so the cost follows
the number of changes, not the catalogue. Results are capped at `limit` SKUs: a
caller that gets `limit` of them scans everything instead. What no timestamp shows
(a deleted row, an edit that left updated_at alone) is for the rolling sweep.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, select, union

from syncctl.erp.schema import (
    inventories,
    price_schedules,
    prices,
    products,
    stock_moves,
)


def changed_products(conn: Connection, since: datetime, limit: int) -> list[str]:
    """Rows edited after `since`, and the variations of edited parents (they carry the
    parent's name)."""
    edited = select(products.c.sku).where(products.c.updated_at > since)
    children = select(products.c.sku).where(products.c.parent_sku.in_(edited))
    return _first(conn, [edited, children], limit)


def changed_stock(
    conn: Connection, warehouses: Collection[str] | None, since: datetime, limit: int
) -> list[str]:
    """SKUs with a count edited or approved, or a move made, after `since` (in
    `warehouses`; None: any), and products edited after it: a new SKU goes out with
    its balance, 0 when it has none."""
    arms = [
        _in(select(inventories.c.sku).where(inventories.c.updated_at > since), inventories.c.warehouse, warehouses),
        _in(select(inventories.c.sku).where(inventories.c.approved_at > since), inventories.c.warehouse, warehouses),
        _in(select(stock_moves.c.sku).where(stock_moves.c.created_at > since), stock_moves.c.warehouse, warehouses),
        select(products.c.sku).where(products.c.updated_at > since),
    ]
    return _first(conn, arms, limit)


def changed_prices(
    conn: Connection, price_list: str, since: datetime, until: datetime, limit: int
) -> list[str]:
    """SKUs of `price_list` whose price row was edited after `since`, or whose schedule
    started, or sale window opened or closed, in (since, until]."""
    edges = (prices.c.sale_starts_at, prices.c.sale_ends_at, price_schedules.c.starts_at)
    arms = [select(prices.c.sku).where(prices.c.price_list == price_list, prices.c.updated_at > since)]
    arms += [
        select(edge.table.c.sku).where(edge.table.c.price_list == price_list, edge > since, edge <= until)
        for edge in edges
    ]
    return _first(conn, arms, limit)


def _in(statement: Select[Any], column: ColumnElement[str], values: Collection[str] | None) -> Select[Any]:
    return statement if values is None else statement.where(column.in_(list(values)))


def _first(conn: Connection, arms: list[Select[Any]], limit: int) -> list[str]:
    """Distinct SKUs of the arms (UNION dedups), at most `limit`."""
    return list(conn.scalars(union(*arms).limit(limit)))
