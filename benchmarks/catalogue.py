"""A synthetic embedded ERP of N sellable SKUs, written with bulk inserts.

Deterministic for a given (size, seed). Shape, per 10 SKUs: 6 are variations (three
per parent row), 4 standalone; each SKU has an approved count in two or three of the
three warehouses (1 % also a draft recount that must never count), a third have
moves after their count, every SKU has a price; 10 % run a promotion (a few start or
end days from now), 5 % have a started price schedule and 1 % one starting in a week.
Every timestamp is at least a day old, so the catalogue is "quiet" at `now`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert

from syncctl.erp import init_schema, schema
from syncctl.erp.db import chunked, create_erp_engine, writing
from syncctl.gtin import check_digit

WAREHOUSES = ("CD-SP", "LOJA-01", "DEPOSITO-RJ")
PRICE_LIST = "default"
BATCH = 20_000  # rows per executemany
_GENERATED = {"inventories": ("id",), "stock_moves": ("id",), "price_schedules": ("id",)}


def sku_code(index: int) -> str:
    return f"SKU{index:08d}"


def ean13(index: int) -> str:
    """A valid EAN-13 per SKU: 789 (Brazil), nine digits of the index, the check digit."""
    body = f"789{index:09d}"
    return f"{body}{check_digit(body)}"


def build_erp(url: str, size: int, now: datetime, seed: int = 6) -> None:
    """Create the schema at `url` (an empty database) and fill it with `size` sellable SKUs."""
    init_schema(url)
    rng = random.Random(seed)
    engine = create_erp_engine(url)
    try:
        with writing(engine) as conn:
            conn.execute(insert(schema.warehouses), [{"code": code, "name": code} for code in WAREHOUSES])
            for table, rows in (
                (schema.products, _products(size, now)),
                (schema.inventories, _counts(size, now, rng)),
                (schema.stock_moves, _moves(size, now, rng)),
                (schema.prices, _prices(size, now, rng)),
                (schema.price_schedules, _schedules(size, now, rng)),
            ):
                _bulk(conn, table, rows)
    finally:
        engine.dispose()


def _bulk(conn: Connection, table: Table, rows: Iterator[dict[str, Any]]) -> None:
    """executemany straight on the driver. Values still go through each column's type
    (exact money, UTC text on SQLite), memoized: a catalogue repeats few distinct ones."""
    columns = [column for column in table.columns if column.name not in _GENERATED.get(table.name, ())]
    dialect = conn.dialect
    compiled = insert(table).values({column.name: None for column in columns}).compile(dialect=dialect)
    binds = {column.name: _memoized(column.type.dialect_impl(dialect).bind_processor(dialect)) for column in columns}
    if dialect.positional:
        ordered = [(name, binds[name]) for name in compiled.positiontup or ()]
        shape: Callable[[dict[str, Any]], Any] = lambda row: tuple([bind(row.get(name)) for name, bind in ordered])
    else:
        shape = lambda row: {name: bind(row.get(name)) for name, bind in binds.items()}
    for batch in chunked(rows, BATCH):
        conn.exec_driver_sql(str(compiled), [shape(row) for row in batch])


def _memoized(bind: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    if bind is None:
        return lambda value: value
    return functools.lru_cache(maxsize=65536)(bind)


def _products(size: int, now: datetime) -> Iterator[dict[str, Any]]:
    edited = now - timedelta(days=30)
    base = {
        "ean": None, "brand": "Marca", "description": "Produto de teste", "weight_kg": Decimal("0.350"),
        "height_cm": Decimal(4), "width_cm": Decimal(20), "length_cm": Decimal(30),
        "active": True, "updated_at": edited,
    }
    for index in range(size):
        sku = sku_code(index)
        if index % 10 < 6:  # variations: SKUs 0-2 and 3-5 of every ten share a parent
            parent = f"PRD{index // 3:08d}"
            if index % 3 == 0:
                yield {**base, "sku": parent, "parent_sku": None, "name": f"Camiseta {index // 3}"}
            yield {**base, "sku": sku, "parent_sku": parent, "name": f"Camiseta {index // 3} {'PMG'[index % 3]}",
                   "ean": ean13(index)}
        else:
            yield {**base, "sku": sku, "parent_sku": None, "name": f"Acessório {index}", "ean": ean13(index)}


def _counts(size: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    counted = now - timedelta(days=7)
    for index in range(size):
        sku = sku_code(index)
        for warehouse in WAREHOUSES[: 2 + index % 2]:
            yield {"warehouse": warehouse, "sku": sku, "quantity": rng.randrange(0, 200), "status": "approved",
                   "approved_at": counted, "updated_at": counted}
        if index % 100 == 0:
            yield {"warehouse": "CD-SP", "sku": sku, "quantity": 9999, "status": "draft",
                   "approved_at": None, "updated_at": counted}


def _moves(size: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    for index in range(0, size, 3):
        yield {"warehouse": "CD-SP", "sku": sku_code(index), "delta": -rng.randrange(1, 4), "reason": "sale",
               "order_id": None, "created_at": now - timedelta(days=2, minutes=rng.randrange(0, 1440))}


def _prices(size: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    edited = now - timedelta(days=10)
    for index in range(size):
        list_price = Decimal(rng.randrange(1990, 49990)) / 100
        row = {"sku": sku_code(index), "price_list": PRICE_LIST, "list_price": list_price, "sale_price": None,
               "sale_starts_at": None, "sale_ends_at": None, "updated_at": edited}
        if index % 10 == 1:  # a promotion: most running, some starting or ending in a few days
            starts = now - timedelta(days=3) if index % 100 != 11 else now + timedelta(days=3)
            ends = now + timedelta(days=5 + index % 7)
            row |= {"sale_price": (list_price * Decimal("0.85")).quantize(Decimal("0.01")),
                    "sale_starts_at": starts, "sale_ends_at": ends}
        yield row


def _schedules(size: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    for index in range(2, size, 20):  # 5 %: started two days ago (after the row's last edit)
        yield {"sku": sku_code(index), "price_list": PRICE_LIST,
               "list_price": Decimal(rng.randrange(1990, 49990)) / 100, "sale_price": None,
               "starts_at": now - timedelta(days=2)}
    for index in range(7, size, 100):  # 1 %: starting in a week
        yield {"sku": sku_code(index), "price_list": PRICE_LIST,
               "list_price": Decimal(rng.randrange(1990, 49990)) / 100, "sale_price": None,
               "starts_at": now + timedelta(days=7)}
