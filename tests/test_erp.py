"""The ERP adapter over the integration schema (contract §5).

Every test taking `erp_url` (or `erp_database`, an empty database) runs on each
backend: a SQLite file, and a schema of its own on a real PostgreSQL server.
"""

from __future__ import annotations

import inspect
import multiprocessing
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, Table, event, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from syncctl.domain import (
    DeliveryStatus,
    EffectivePrice,
    Order,
    OrderLine,
    OrderStatus,
    StockLevel,
    Ticket,
    TicketMessage,
    TrackingEvent,
)
from syncctl.erp import Erp, SqlErp, check_schema, init_schema, open_erp
from syncctl.erp import orders as erp_orders
from syncctl.erp.db import create_erp_engine, engine_url
from syncctl.erp.orders import CANCELLED_AFTER_INVOICING
from syncctl.erp.schema import (
    inventories,
    invoices,
    metadata,
    order_items,
    orders,
    price_schedules,
    prices,
    products,
    shipment_events,
    shipments,
    stock_balances,
    stock_moves,
    ticket_messages,
    tickets,
    warehouses,
)
from syncctl.errors import ErpError

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SAO_PAULO = timezone(timedelta(hours=-3))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def erp_url(erp_with_schema: str) -> str:
    """A database with the integration schema and no rows (conftest's `erp_with_schema`)."""
    return erp_with_schema


@pytest.fixture
def db(erp_url: str) -> Iterator[Engine]:
    """An engine the tests use to play the ERP's part."""
    engine = create_erp_engine(erp_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def erp(db: Engine, erp_url: str, clock: Clock) -> Iterator[SqlErp]:
    opened = SqlErp(create_erp_engine(erp_url), clock=clock)
    yield opened
    opened.close()


def add(db: Engine, table: Table, *rows: dict[str, Any]) -> None:
    """Insert rows one by one: an executemany would take its columns from the first row."""
    with db.begin() as conn:
        for row in rows:
            conn.execute(insert(table).values(row))


def rows(db: Engine, table: Table, *where: Any) -> list[Any]:
    order = list(table.primary_key) or list(table.columns)  # the same order on every backend
    with db.connect() as conn:
        return list(conn.execute(select(table).where(*where).order_by(*order)))


def make_order(
    channel_order_id: str = "V-1",
    status: OrderStatus = OrderStatus.approved,
    lines: tuple[OrderLine, ...] = (
        OrderLine(sku="SKU-A", quantity=2, unit_price=Decimal("10.10"), channel_item_id="1"),
        OrderLine(sku="SKU-B", quantity=1, unit_price=Decimal("0.30"), channel_item_id="2"),
    ),
    raw: str | None = '{"status": "ready-for-handling"}',
) -> Order:
    return Order(
        channel_order_id=channel_order_id,
        status=status,
        placed_at=at(-1),
        lines=lines,
        total=Decimal("25.50"),
        shipping_cost=Decimal("5.00"),
        customer_name="Maria",
        raw=raw,
    )


def stock_of(erp: SqlErp, warehouses: list[str] | None = None) -> dict[str, int]:
    return {level.sku: level.quantity for level in erp.stock_levels(warehouses)}


def test_sql_erp_has_every_method_of_the_port_with_its_signature() -> None:
    port_methods = {
        name: member
        for name, member in vars(Erp).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }

    assert port_methods
    for name, member in port_methods.items():
        assert inspect.signature(getattr(SqlErp, name)) == inspect.signature(member), name


# -- schema --------------------------------------------------------------------------
def test_init_is_idempotent_and_check_finds_the_schema_complete(erp_database: str) -> None:
    init_schema(erp_database)
    init_schema(erp_database)

    assert check_schema(erp_database) == []


def test_check_names_each_missing_table_view_and_column(db: Engine, erp_url: str) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("DROP VIEW stock_balances")
        conn.exec_driver_sql("ALTER TABLE orders DROP COLUMN debit_warehouse")
        conn.exec_driver_sql("DROP TABLE ticket_messages")

    assert sorted(check_schema(erp_url)) == [
        "table orders: missing column debit_warehouse",
        "table ticket_messages: missing",
        "view stock_balances: missing",
    ]


def test_check_names_a_missing_upsert_key(db: Engine, erp_url: str) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE tickets RENAME TO old_tickets")
        conn.exec_driver_sql(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, channel TEXT, channel_ticket_id TEXT,"
            " order_id INTEGER, subject TEXT, status TEXT, opened_at TEXT, updated_at TEXT)"
        )

    assert check_schema(erp_url) == ["table tickets: missing unique key (channel, channel_ticket_id)"]


def test_check_of_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path: Any) -> None:
    path = tmp_path / "nowhere.db"

    assert check_schema(f"sqlite:///{path}") == [
        f"database {path}: does not exist (create it with `syncctl erp init`)"
    ]
    assert not path.exists()


def test_a_missing_table_is_an_erp_error(erp_database: str) -> None:
    erp = open_erp(erp_database)
    try:
        with pytest.raises(ErpError, match='no such table: warehouses|relation "warehouses" does not exist'):
            erp.warehouses()
    finally:
        erp.close()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://erp@db.internal/erp", "postgresql+psycopg"),
        ("postgres://erp@db.internal/erp", "postgresql+psycopg"),
        ("postgresql+psycopg2://erp@db.internal/erp", "postgresql+psycopg2"),
        ("sqlite:///erp.db", "sqlite"),
    ],
)
def test_a_plain_postgresql_url_means_psycopg_3(url: str, driver: str) -> None:
    assert engine_url(url).drivername == driver


def test_a_missing_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if syncctl[postgresql] were not installed

    with pytest.raises(ErpError, match=r"driver psycopg is not installed .*syncctl\[postgresql\]"):
        create_erp_engine("postgresql://erp@127.0.0.1/erp")


def test_the_schema_compiles_for_postgresql_with_exact_types() -> None:
    dialect = postgresql.dialect()
    ddl = {table.name: str(CreateTable(table).compile(dialect=dialect)) for table in metadata.sorted_tables}

    assert "total NUMERIC(14, 2) NOT NULL" in ddl["orders"]
    assert "placed_at TIMESTAMP WITH TIME ZONE NOT NULL" in ddl["orders"]
    assert "UNIQUE (channel, channel_order_id)" in ddl["orders"]
    balances = str(select(stock_balances).compile(dialect=dialect))
    assert "FROM stock_balances" in balances


# -- stock ------------------------------------------------------------------------------
@pytest.fixture
def catalogue(db: Engine) -> None:
    add(db, warehouses, {"code": "CD-SP", "name": "CD"}, {"code": "LOJA-01", "name": "Loja"})
    add(
        db,
        products,
        {"sku": "P1", "name": "Camiseta"},
        {"sku": "P1-M", "parent_sku": "P1", "name": "Camiseta M", "weight_kg": Decimal("0.250")},
        {"sku": "P1-G", "parent_sku": "P1", "name": "Camiseta G"},
        {"sku": "SKU-A", "name": "Caneca", "ean": "7891234567895", "active": False},
        {"sku": "SKU-B", "name": "Boné"},
    )


def test_sellable_products_leave_parents_out_and_name_them_on_variations(
    erp: SqlErp, catalogue: None
) -> None:
    found = list(erp.sellable_products())

    assert [product.sku for product in found] == ["P1-G", "P1-M", "SKU-A", "SKU-B"]
    by_sku = {product.sku: product for product in found}
    assert by_sku["P1-M"].parent_name == "Camiseta"
    assert by_sku["P1-M"].product_ref == "P1"
    assert by_sku["P1-M"].weight_kg == Decimal("0.250")
    assert by_sku["SKU-A"].parent_name is None
    assert by_sku["SKU-A"].ean == "7891234567895"
    assert by_sku["SKU-A"].active is False
    assert [product.sku for product in erp.sellable_products(["SKU-B", "P1", "P1-M"])] == ["P1-M", "SKU-B"]


def test_stock_is_the_latest_approved_count_plus_later_moves(
    erp: SqlErp, db: Engine, catalogue: None
) -> None:
    add(
        db,
        inventories,
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 99, "status": "approved", "approved_at": at(0)},
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 10, "status": "approved", "approved_at": at(2)},
    )
    add(
        db,
        stock_moves,
        {"warehouse": "CD-SP", "sku": "SKU-A", "delta": -4, "reason": "sale", "created_at": at(1)},
        {"warehouse": "CD-SP", "sku": "SKU-A", "delta": -5, "reason": "sale", "created_at": at(2)},
        {"warehouse": "CD-SP", "sku": "SKU-A", "delta": -3, "reason": "sale", "created_at": at(3)},
    )

    assert stock_of(erp)["SKU-A"] == 7  # 10 counted at 2h, minus the 3 moved after it
    assert rows(db, stock_balances) == [("SKU-A", "CD-SP", 7, at(3))]


def test_equal_approval_times_take_the_latest_count(erp: SqlErp, db: Engine, catalogue: None) -> None:
    add(
        db,
        inventories,
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 5, "status": "approved", "approved_at": at(1)},
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 8, "status": "approved", "approved_at": at(1)},
    )

    assert stock_of(erp)["SKU-A"] == 8


def test_a_newer_draft_count_changes_nothing(erp: SqlErp, db: Engine, catalogue: None) -> None:
    add(
        db,
        inventories,
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 10, "status": "approved", "approved_at": at(1)},
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 500, "status": "draft", "updated_at": at(2)},
    )

    assert stock_of(erp)["SKU-A"] == 10


def test_moves_without_an_approved_count_count_from_zero(erp: SqlErp, db: Engine, catalogue: None) -> None:
    add(
        db,
        stock_moves,
        {"warehouse": "CD-SP", "sku": "SKU-B", "delta": -2, "reason": "sale", "created_at": at(1)},
    )

    assert stock_of(erp)["SKU-B"] == -2  # not clamped: the job applies the floor


def test_stock_sums_only_the_listed_warehouses_and_reports_zero_without_balance(
    erp: SqlErp, db: Engine, catalogue: None
) -> None:
    add(
        db,
        inventories,
        {"warehouse": "CD-SP", "sku": "SKU-A", "quantity": 10, "status": "approved", "approved_at": at(1)},
        {"warehouse": "LOJA-01", "sku": "SKU-A", "quantity": 4, "status": "approved", "approved_at": at(1)},
    )

    assert list(erp.stock_levels(["CD-SP"])) == [
        StockLevel("P1-G", 0),
        StockLevel("P1-M", 0),
        StockLevel("SKU-A", 10),
        StockLevel("SKU-B", 0),
    ]
    assert stock_of(erp, None)["SKU-A"] == 14
    assert list(erp.stock_levels(["CD-SP", "LOJA-01"], skus=["SKU-A", "P1"])) == [StockLevel("SKU-A", 14)]


def test_skus_come_in_code_point_order_whatever_the_database_collation(erp: SqlErp, db: Engine) -> None:
    skus = ["sku-b", "SKU-A", "SKU_C", "SKUD", "Sku-e"]  # pt_BR: SKU_C, SKU-A, sku-b, Sku-e, SKUD
    add(db, products, *({"sku": sku, "name": sku} for sku in skus))
    add(db, prices, *(price_row(sku) for sku in skus))
    expected = sorted(skus)

    assert [product.sku for product in erp.sellable_products()] == expected
    assert [level.sku for level in erp.stock_levels(None)] == expected
    assert [level.sku for level in erp.stock_levels(None, skus=skus)] == expected
    assert [price.sku for price in erp.effective_prices("default", at(1))] == expected


def test_large_sku_filters_go_in_chunks_and_stay_in_sku_order(db: Engine, erp_url: str) -> None:
    skus = [f"SKU-{number:05d}" for number in range(1200)]
    with db.begin() as conn:
        conn.execute(insert(products), [{"sku": sku, "name": sku} for sku in skus])
    engine = create_erp_engine(erp_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    erp = SqlErp(engine)
    try:
        levels = list(erp.stock_levels(None, skus=list(reversed(skus))))
    finally:
        erp.close()

    assert [level.sku for level in levels] == skus
    assert sum(sql.lstrip().startswith("SELECT") for sql in statements) == 3  # 500 + 500 + 200


def test_a_read_sees_one_snapshot_while_the_erp_writes(erp: SqlErp, db: Engine) -> None:
    skus = [f"SKU-{number:04d}" for number in range(600)]  # two chunks: two queries
    with db.begin() as conn:
        conn.execute(insert(products), [{"sku": sku, "name": sku} for sku in skus])
    levels = erp.stock_levels(None, skus=skus)

    first = next(levels)  # the first chunk's query ran; the second's has not
    add(db, inventories, {"warehouse": "CD-SP", "sku": skus[-1], "quantity": 9, "status": "approved", "approved_at": at(0)})

    assert first == StockLevel(skus[0], 0)
    assert [level.quantity for level in levels][-1] == 0  # as when the read began
    assert stock_of(erp)[skus[-1]] == 9


# -- prices --------------------------------------------------------------------------
def price_row(sku: str = "SKU-A", **values: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "price_list": "default",
        "list_price": Decimal("100.00"),
        "updated_at": at(0),
    } | values


def schedule_row(
    starts_at: datetime, list_price: str, sale_price: str | None = None, **values: Any
) -> dict[str, Any]:
    return {
        "sku": "SKU-A",
        "price_list": "default",
        "list_price": Decimal(list_price),
        "sale_price": None if sale_price is None else Decimal(sale_price),
        "starts_at": starts_at,
    } | values


def price_at(erp: SqlErp, as_of: datetime, sku: str = "SKU-A") -> EffectivePrice | None:
    return next((price for price in erp.effective_prices("default", as_of) if price.sku == sku), None)


def test_a_started_schedule_replaces_the_price_and_its_sale_is_open_ended(erp: SqlErp, db: Engine) -> None:
    add(db, prices, price_row(sale_price=Decimal("80.00"), sale_starts_at=at(0)))
    add(db, price_schedules, schedule_row(at(1), "90.00"), schedule_row(at(2), "95.00", "85.00"))

    assert price_at(erp, at(0.5)) == EffectivePrice("SKU-A", Decimal("100.00"), Decimal("80.00"), at(0))
    assert price_at(erp, at(1)) == EffectivePrice("SKU-A", Decimal("90.00"))
    assert price_at(erp, at(3)) == EffectivePrice("SKU-A", Decimal("95.00"), Decimal("85.00"))


def test_a_schedule_in_the_future_changes_nothing_yet(erp: SqlErp, db: Engine) -> None:
    add(db, prices, price_row())
    add(db, price_schedules, schedule_row(at(5), "90.00"))

    assert price_at(erp, at(4)) == EffectivePrice("SKU-A", Decimal("100.00"))


def test_an_edit_after_the_schedule_started_wins(erp: SqlErp, db: Engine) -> None:
    add(db, prices, price_row(list_price=Decimal("120.00"), updated_at=at(2)))
    add(db, price_schedules, schedule_row(at(1), "90.00"))

    assert price_at(erp, at(3)) == EffectivePrice("SKU-A", Decimal("120.00"))


def test_a_schedule_without_a_price_row_is_a_price(erp: SqlErp, db: Engine) -> None:
    add(db, price_schedules, schedule_row(at(1), "90.00", sku="SKU-B"))
    add(db, price_schedules, schedule_row(at(1), "70.00", sku="SKU-C", price_list="walmart-usd"))

    assert list(erp.effective_prices("default", at(2))) == [EffectivePrice("SKU-B", Decimal("90.00"))]
    assert list(erp.effective_prices("default", at(0))) == []


@pytest.mark.parametrize(
    ("as_of", "on_sale"),
    [(at(0.9), False), (at(1), True), (at(2.5), True), (at(4), False), (at(5), False)],
    ids=["before", "at-start", "during", "at-end", "after"],
)
def test_the_sale_holds_from_its_start_until_just_before_its_end(
    erp: SqlErp, db: Engine, as_of: datetime, on_sale: bool
) -> None:
    add(db, prices, price_row(sale_price=Decimal("79.90"), sale_starts_at=at(1), sale_ends_at=at(4)))

    sale = EffectivePrice("SKU-A", Decimal("100.00"), Decimal("79.90"), at(1), at(4))
    assert price_at(erp, as_of) == (sale if on_sale else EffectivePrice("SKU-A", Decimal("100.00")))


def test_open_sale_windows_and_sales_above_the_list_price_are_carried(erp: SqlErp, db: Engine) -> None:
    add(
        db,
        prices,
        price_row("OPEN-START", sale_price=Decimal("90.00"), sale_ends_at=at(4)),
        price_row("OPEN-END", sale_price=Decimal("120.00"), sale_starts_at=at(-1)),
    )

    found = {price.sku: price for price in erp.effective_prices("default", at(1))}
    assert found["OPEN-START"].sale_price == Decimal("90.00")
    assert found["OPEN-START"].sale_ends_at == at(4)
    assert found["OPEN-END"].sale_price == Decimal("120.00")  # the job decides what to do with it


def test_next_price_change_is_the_first_edge_strictly_after(erp: SqlErp, db: Engine) -> None:
    add(db, prices, price_row(sale_price=Decimal("80.00"), sale_starts_at=at(3), sale_ends_at=at(8)))
    add(db, price_schedules, schedule_row(at(5), "90.00"), schedule_row(at(1), "70.00", price_list="other"))

    assert erp.next_price_change("default", at(0)) == at(3)
    assert erp.next_price_change("default", at(3)) == at(5)
    assert erp.next_price_change("default", at(5)) == at(8)
    assert erp.next_price_change("default", at(8)) is None


# -- exact values ------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        Decimal("0.10") + Decimal("0.20"),
        Decimal("0.01"),
        Decimal("999999999999.99"),
        Decimal("1234567890.05"),
        Decimal("0.00"),
    ],
)
def test_money_round_trips_exactly(erp: SqlErp, db: Engine, value: Decimal) -> None:
    add(db, prices, price_row(list_price=value))

    read = price_at(erp, at(1))
    assert read is not None
    assert read.list_price == value
    assert str(read.list_price) == str(value.quantize(Decimal("0.01")))


def test_money_from_an_erp_that_stored_binary_floats_reads_back_as_typed(erp: SqlErp, db: Engine) -> None:
    add(db, prices, price_row())
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE prices SET list_price = 0.1 + 0.2")  # 0.30000000000000004

    read = price_at(erp, at(1))
    assert read is not None and str(read.list_price) == "0.30"


def test_times_come_back_as_aware_utc_instants(erp: SqlErp, db: Engine) -> None:
    add(
        db,
        price_schedules,
        schedule_row(datetime(2026, 11, 26, 9, 0, tzinfo=SAO_PAULO), "1.00"),  # 12:00 UTC
        schedule_row(datetime(2026, 11, 26, 13, 0), "2.00", sku="SKU-B"),  # naive: UTC
    )

    assert erp.next_price_change("default", at(-1)) == at(0)
    assert erp.next_price_change("default", at(0)) == at(1)
    found = erp.next_price_change("default", at(0))
    assert found is not None and found.tzinfo is not None and found.utcoffset() == timedelta(0)


# -- orders --------------------------------------------------------------------------
@pytest.fixture
def stocked(db: Engine, catalogue: None) -> None:
    add(
        db,
        inventories,
        *(
            {"warehouse": warehouse, "sku": sku, "quantity": 10, "status": "approved", "approved_at": at(-10)}
            for warehouse in ("CD-SP", "LOJA-01")
            for sku in ("SKU-A", "SKU-B")
        ),
    )


def moves_of(db: Engine, order_id: int | None) -> list[tuple[str, str, int, str]]:
    with db.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(stock_moves.c.warehouse, stock_moves.c.sku, stock_moves.c.delta, stock_moves.c.reason)
                .where(stock_moves.c.order_id == order_id)
                .order_by(stock_moves.c.id)
            )
        ]


def import_(erp: SqlErp, order: Order, *, debits_stock: bool = False, channel: str = "vtex-main") -> Any:
    [outcome] = erp.import_orders(channel, [order], debit_warehouse="CD-SP", debits_stock=debits_stock)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def test_a_new_order_is_stored_with_its_lines_and_debits_the_debit_warehouse(
    erp: SqlErp, db: Engine, stocked: None
) -> None:
    outcome = import_(erp, make_order())

    assert outcome.created and outcome.order_id is not None and outcome.flag is None
    (row,) = rows(db, orders)
    assert (row.channel, row.channel_order_id, row.status) == ("vtex-main", "V-1", "approved")
    assert (row.debit_warehouse, row.imported_at, row.updated_at) == ("CD-SP", T0, T0)
    assert (row.total, row.shipping_cost, row.discount) == (
        Decimal("25.50"),
        Decimal("5.00"),
        Decimal("0.00"),
    )
    items = rows(db, order_items)
    assert [(item.sku, item.quantity, item.unit_price) for item in items] == [
        ("SKU-A", 2, Decimal("10.10")),
        ("SKU-B", 1, Decimal("0.30")),
    ]
    assert moves_of(db, outcome.order_id) == [("CD-SP", "SKU-A", -2, "sale"), ("CD-SP", "SKU-B", -1, "sale")]
    assert stock_of(erp, ["CD-SP"])["SKU-A"] == 8
    assert stock_of(erp, ["LOJA-01"])["SKU-A"] == 10
    assert erp.known_orders("vtex-main", ["V-1", "V-2"]) == {"V-1"}
    assert erp.known_orders("ml-main", ["V-1"]) == set()


def test_importing_the_same_order_again_writes_nothing(
    erp: SqlErp, db: Engine, clock: Clock, stocked: None
) -> None:
    first = import_(erp, make_order())
    clock.now = at(1)

    again = import_(erp, make_order())

    assert (again.order_id, again.created, again.status_changed) == (first.order_id, False, False)
    assert len(rows(db, orders)) == 1
    assert rows(db, orders)[0].updated_at == T0
    assert len(moves_of(db, first.order_id)) == 2


def test_a_later_status_updates_the_order_and_an_earlier_one_is_ignored(
    erp: SqlErp, db: Engine, clock: Clock, stocked: None
) -> None:
    first = import_(erp, make_order())
    clock.now = at(1)

    handling = import_(erp, make_order(status=OrderStatus.handling, raw='{"status": "handling"}'))
    stale = import_(erp, make_order(status=OrderStatus.approved))

    assert (handling.order_id, handling.created, handling.status_changed) == (first.order_id, False, True)
    assert stale.status_changed is False
    (row,) = rows(db, orders)
    assert (row.status, row.updated_at, row.raw) == ("handling", at(1), '{"status": "handling"}')


def test_a_cancellation_before_invoicing_returns_the_stock_once(
    erp: SqlErp, db: Engine, clock: Clock, stocked: None
) -> None:
    first = import_(erp, make_order())
    clock.now = at(1)

    cancelled = import_(erp, make_order(status=OrderStatus.canceled))
    again = import_(erp, make_order(status=OrderStatus.canceled))

    assert cancelled.status_changed and cancelled.flag is None
    assert again.status_changed is False
    assert moves_of(db, first.order_id)[2:] == [
        ("CD-SP", "SKU-A", 2, "cancel"),
        ("CD-SP", "SKU-B", 1, "cancel"),
    ]
    assert stock_of(erp, ["CD-SP"])["SKU-A"] == 10
    assert rows(db, orders)[0].status == "canceled"


def test_a_cancellation_after_the_invoice_is_flagged_and_keeps_the_stock(
    erp: SqlErp, db: Engine, stocked: None
) -> None:
    first = import_(erp, make_order(status=OrderStatus.handling))
    add(db, invoices, invoice_row(first.order_id))

    outcome = import_(erp, make_order(status=OrderStatus.canceled))

    assert (outcome.status_changed, outcome.flag) == (True, CANCELLED_AFTER_INVOICING)
    assert rows(db, orders)[0].status == "canceled"
    assert [move[3] for move in moves_of(db, first.order_id)] == ["sale", "sale"]


def test_a_cancellation_of_an_order_already_shipped_is_flagged(
    erp: SqlErp, db: Engine, stocked: None
) -> None:
    first = import_(erp, make_order(status=OrderStatus.shipped))

    outcome = import_(erp, make_order(status=OrderStatus.canceled))

    assert outcome.flag == CANCELLED_AFTER_INVOICING
    assert len(moves_of(db, first.order_id)) == 2


def test_an_order_cancelled_before_it_was_ever_imported_is_not_created(
    erp: SqlErp, db: Engine, stocked: None
) -> None:
    outcome = import_(erp, make_order(status=OrderStatus.canceled))

    assert (outcome.order_id, outcome.created) == (None, False)
    assert rows(db, orders) == []
    assert rows(db, stock_moves) == []


def test_an_erp_that_debits_stock_itself_gets_no_moves(erp: SqlErp, db: Engine, stocked: None) -> None:
    import_(erp, make_order(), debits_stock=True)
    import_(erp, make_order(status=OrderStatus.canceled), debits_stock=True)

    assert rows(db, stock_moves) == []
    assert rows(db, orders)[0].status == "canceled"


def test_concurrent_imports_of_the_same_orders_store_each_once(
    erp: SqlErp, db: Engine, erp_url: str, stocked: None
) -> None:
    other_process = SqlErp(create_erp_engine(erp_url))
    racers = [erp, erp, other_process]  # two threads sharing an engine, and a second engine
    start = threading.Barrier(len(racers))
    created: list[bool] = []

    def race(racer: SqlErp) -> None:
        start.wait()
        for number in range(20):
            created.append(import_(racer, make_order(f"V-{number}")).created)

    threads = [threading.Thread(target=race, args=(racer,)) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other_process.close()

    assert sorted(created) == [False] * 40 + [True] * 20
    assert len(rows(db, orders)) == 20
    assert len(rows(db, order_items)) == 40
    assert len(rows(db, stock_moves)) == 40


# Racing processes fork from a server process that imported this module once (and
# holds no connection), so each starts at once instead of importing everything again.
RACERS = multiprocessing.get_context("forkserver")
RACERS.set_forkserver_preload([__name__])


def import_in_a_process_of_its_own(url: str, rounds: list[list[Order]], start: Any, results: Any) -> None:
    """A separate OS process, sharing nothing with the test but the database."""
    erp = open_erp(url)
    try:
        outcomes = []
        for orders_of_round in rounds:
            start.wait()
            outcomes.append([(outcome.created, outcome.status_changed) for outcome in map(
                lambda order: import_(erp, order), orders_of_round
            )])
        results.put(outcomes)
    finally:
        erp.close()


def test_two_processes_importing_then_cancelling_the_same_orders_store_debit_and_return_once(
    db: Engine, erp_url: str, stocked: None
) -> None:
    numbers = range(20)
    rounds = [
        [make_order(f"V-{number}") for number in numbers],
        [make_order(f"V-{number}", status=OrderStatus.canceled) for number in numbers],
    ]
    start, results = RACERS.Barrier(2, timeout=60), RACERS.Queue()
    racers = [
        RACERS.Process(target=import_in_a_process_of_its_own, args=(erp_url, rounds, start, results))
        for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    imported, cancelled = zip(*(results.get(timeout=60) for _ in racers), strict=True)
    for racer in racers:
        racer.join(timeout=60)

    assert [racer.exitcode for racer in racers] == [0, 0]
    assert sorted(created for outcomes in imported for created, _ in outcomes) == [False] * 20 + [True] * 20
    assert sorted(changed for outcomes in cancelled for _, changed in outcomes) == [False] * 20 + [True] * 20
    assert len(rows(db, orders)) == 20
    assert len(rows(db, order_items)) == 40
    assert Counter(move.reason for move in rows(db, stock_moves)) == {"sale": 40, "cancel": 40}


def import_all(erp: SqlErp, batch: list[Order]) -> list[Any]:
    return erp.import_orders("vtex-main", batch, debit_warehouse="CD-SP", debits_stock=False)


def test_a_batch_is_imported_in_order_and_a_later_entry_sees_what_an_earlier_one_did(
    erp: SqlErp, db: Engine, stocked: None
) -> None:
    known = import_(erp, make_order("V-0"))

    created, followed, cancelled, again = import_all(erp, [
        make_order("V-1"),
        make_order("V-0", status=OrderStatus.handling),
        make_order("V-1", status=OrderStatus.canceled),  # the batch's look said V-1 was not there
        make_order("V-1", status=OrderStatus.canceled),
    ])

    assert (created.created, followed.order_id, followed.status_changed) == (True, known.order_id, True)
    assert (cancelled.order_id, cancelled.status_changed) == (created.order_id, True)
    assert (again.created, again.status_changed) == (False, False)
    assert [(row.channel_order_id, row.status) for row in rows(db, orders)] == [
        ("V-0", "handling"), ("V-1", "canceled"),
    ]
    assert [move[3] for move in moves_of(db, created.order_id)] == ["sale", "sale", "cancel", "cancel"]


def test_an_order_of_a_batch_the_database_refuses_is_undone_alone(erp: SqlErp, db: Engine, stocked: None) -> None:
    bad_line = OrderLine(sku="SKU-A", quantity=None, unit_price=Decimal("1.00"))  # type: ignore[arg-type]

    first, refused, last = import_all(erp, [make_order("V-1"), make_order("V-2", lines=(bad_line,)), make_order("V-3")])

    assert first.created and last.created
    assert isinstance(refused, ErpError) and "ERP database" in str(refused)
    assert [row.channel_order_id for row in rows(db, orders)] == ["V-1", "V-3"]  # V-2's row undone too
    assert len(rows(db, order_items)) == 4 and len(rows(db, stock_moves)) == 4


def test_an_order_inserted_by_another_process_after_our_look_is_only_followed(
    erp: SqlErp, db: Engine, stocked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = import_(erp, make_order())
    real_find = erp_orders._find
    looks_again: list[Any] = []

    def batch_look_misses(conn: Any, channel: str, ids: Any) -> Any:  # the other process commits just after it
        return dict.fromkeys(ids)

    def look_again(*args: Any) -> Any:
        looks_again.append(args)
        return real_find(*args)

    monkeypatch.setattr(erp_orders, "_find_all", batch_look_misses)
    monkeypatch.setattr(erp_orders, "_find", look_again)

    outcome = import_(erp, make_order(status=OrderStatus.handling))

    assert len(looks_again) == 1  # the insert met the conflict and looked again
    assert (outcome.order_id, outcome.created, outcome.status_changed) == (first.order_id, False, True)
    assert len(rows(db, order_items)) == 2
    assert len(moves_of(db, first.order_id)) == 2


# -- order updates ---------------------------------------------------------------------
def invoice_row(order_id: int | None) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "nfe_key": "3" * 44,
        "number": "1001",
        "series": "1",
        "issued_at": at(2),
        "total": Decimal("25.50"),
        "xml": "<nfeProc/>",
    }


def test_order_updates_carry_lines_invoice_latest_shipment_and_its_events(
    erp: SqlErp, db: Engine, stocked: None
) -> None:
    invoiced = import_(erp, make_order("V-1")).order_id
    shipped = import_(erp, make_order("V-2")).order_id
    import_(erp, make_order("V-3"))  # nothing to send yet
    elsewhere = import_(erp, make_order("V-4"), channel="ml-main")
    add(db, invoices, invoice_row(invoiced), invoice_row(elsewhere.order_id))
    add(
        db,
        shipments,
        {"id": 1, "order_id": shipped, "carrier": "correios", "tracking_code": "OLD", "shipped_at": at(3)},
        {"id": 2, "order_id": shipped, "carrier": "correios", "tracking_code": "NEW", "shipped_at": at(4)},
        {"id": 3, "order_id": shipped, "carrier": "correios", "tracking_code": "LABEL"},  # not shipped yet
    )
    add(
        db,
        shipment_events,
        {"shipment_id": 2, "occurred_at": at(6), "status": "in_transit", "code": "RO"},
        {"shipment_id": 2, "occurred_at": at(5), "status": "posted", "code": "PO", "location": "SP"},
        {"shipment_id": 1, "occurred_at": at(5), "status": "posted", "code": "PO"},
    )

    updates = list(erp.order_updates("vtex-main"))

    assert [update.channel_order_id for update in updates] == ["V-1", "V-2"]
    first, second = updates
    assert first.invoice is not None and first.invoice.nfe_key == "3" * 44
    assert first.invoice.total == Decimal("25.50") and first.invoice.issued_at == at(2)
    assert first.shipment is None and first.events == ()
    assert [line.sku for line in first.lines] == ["SKU-A", "SKU-B"]
    assert first.shipping_cost == Decimal("5.00") and first.status is OrderStatus.approved
    assert second.invoice is None
    assert second.shipment is not None and second.shipment.tracking_code == "NEW"
    assert [(event.code, event.location) for event in second.events] == [("PO", "SP"), ("RO", None)]
    assert [update.order_id for update in erp.order_updates("vtex-main", ["V-2", "V-3"])] == [shipped]


def test_order_lines_come_back_in_code_point_order(erp: SqlErp, db: Engine, stocked: None) -> None:
    lines = tuple(OrderLine(sku=sku, quantity=1, unit_price=Decimal("1.00")) for sku in ("sku-b", "SKU_C", "SKU-A"))
    order_id = import_(erp, make_order(lines=lines)).order_id
    add(db, invoices, invoice_row(order_id))

    [update] = erp.order_updates("vtex-main")

    assert [line.sku for line in update.lines] == ["SKU-A", "SKU_C", "sku-b"]


# -- tracking --------------------------------------------------------------------------
@pytest.fixture
def shipment(erp: SqlErp, db: Engine, stocked: None) -> int:
    order_id = import_(erp, make_order()).order_id
    add(
        db,
        shipments,
        {"id": 1, "order_id": order_id, "carrier": "correios", "tracking_code": "AA1BR", "shipped_at": at(1)},
        {"id": 2, "order_id": order_id, "carrier": "correios", "tracking_code": None},
        {"id": 3, "order_id": order_id, "carrier": "jadlog", "tracking_code": "J1"},
        {
            "id": 4,
            "order_id": order_id,
            "carrier": "correios",
            "tracking_code": "AA4BR",
            "delivery_status": "returned",
        },
    )
    return 1


def test_shipments_to_track_have_a_code_and_no_final_status(erp: SqlErp, shipment: int) -> None:
    assert [found.id for found in erp.shipments_to_track("correios")] == [shipment]
    assert [found.tracking_code for found in erp.shipments_to_track("jadlog")] == ["J1"]


def test_tracking_events_are_stored_once_and_the_status_is_set(
    erp: SqlErp, db: Engine, clock: Clock, shipment: int
) -> None:
    events = [
        TrackingEvent(at(2), DeliveryStatus.posted, "PO", "Objeto postado", "SAO PAULO - SP"),
        TrackingEvent(at(3), DeliveryStatus.in_transit, "RO", "Em trânsito"),
    ]
    clock.now = at(4)
    assert erp.record_tracking(shipment, events, DeliveryStatus.in_transit, None) == 2
    clock.now = at(5)
    assert erp.record_tracking(shipment, events, DeliveryStatus.in_transit, None) == 0
    (row,) = rows(db, shipments, shipments.c.id == shipment)
    assert (row.delivery_status, row.updated_at) == ("in_transit", at(4))  # the no-news run wrote nothing

    delivered = [*events, TrackingEvent(at(6), DeliveryStatus.delivered, "BDE", "Entregue")]
    assert erp.record_tracking(shipment, delivered, DeliveryStatus.delivered, at(6)) == 1

    assert len(rows(db, shipment_events)) == 3
    (row,) = rows(db, shipments, shipments.c.id == shipment)
    assert (row.delivery_status, row.delivered_at, row.updated_at) == ("delivered", at(6), at(5))
    assert list(erp.shipments_to_track("correios")) == []


def test_tracking_an_unknown_shipment_is_an_erp_error(erp: SqlErp, shipment: int) -> None:
    with pytest.raises(ErpError, match="shipment 99"):
        erp.record_tracking(99, [], DeliveryStatus.posted, None)


# -- tickets ---------------------------------------------------------------------------
def customer_says(message_id: str | None, body: str, hours: float) -> TicketMessage:
    return TicketMessage(
        direction="in", body=body, created_at=at(hours), author="cliente", channel_message_id=message_id
    )


def ticket(*messages: TicketMessage, status: str = "open") -> Ticket:
    return Ticket(
        channel_ticket_id="Q-1",
        subject="Onde está meu pedido?",
        status=status,
        opened_at=at(1),
        channel_order_id="V-1",
        messages=messages,
    )


def test_tickets_are_upserted_with_their_unseen_customer_messages(
    erp: SqlErp, db: Engine, clock: Clock, stocked: None
) -> None:
    order_id = import_(erp, make_order()).order_id
    agent_echo = TicketMessage(direction="out", body="Olá", created_at=at(1.5), channel_message_id="m-0")
    first = erp.import_ticket("vtex-main", ticket(customer_says("m-1", "Cadê?", 1), agent_echo))
    clock.now = at(3)
    second = erp.import_ticket(
        "vtex-main",
        ticket(customer_says("m-1", "Cadê?", 1), customer_says("m-2", "Alô?", 2), status="answered"),
    )
    third = erp.import_ticket("vtex-main", ticket(customer_says(None, "Sem id", 2.5), status="answered"))
    fourth = erp.import_ticket("vtex-main", ticket(customer_says(None, "Sem id", 2.5), status="answered"))

    assert first[1] == 1 and second == (first[0], 1) and third[1] == 1 and fourth[1] == 0
    (row,) = rows(db, tickets)
    assert (row.order_id, row.status, row.updated_at) == (order_id, "answered", at(3))
    assert [message.body for message in rows(db, ticket_messages)] == ["Cadê?", "Alô?", "Sem id"]


def test_pending_replies_are_unsent_agent_messages_of_the_channel_oldest_first(
    erp: SqlErp, db: Engine, clock: Clock
) -> None:
    ours, _ = erp.import_ticket("vtex-main", ticket(customer_says("m-1", "Cadê?", 1)))
    theirs, _ = erp.import_ticket("ml-main", ticket(customer_says("m-1", "Oi", 1)))
    replies = [
        {"ticket_id": ours, "direction": "out", "body": "Segunda", "created_at": at(3)},
        {"ticket_id": ours, "direction": "out", "body": "Primeira", "created_at": at(2)},
        {"ticket_id": theirs, "direction": "out", "body": "Outro canal", "created_at": at(2)},
    ]
    add(db, ticket_messages, *replies)

    pending = list(erp.pending_replies("vtex-main"))

    assert [(ticket_id, message.body) for ticket_id, message in pending] == [
        ("Q-1", "Primeira"),
        ("Q-1", "Segunda"),
    ]
    first_id = pending[0][1].id
    assert first_id is not None
    erp.mark_reply_sent(first_id, "m-9", at(4))
    assert [message.body for _, message in erp.pending_replies("vtex-main")] == ["Segunda"]
    (sent,) = rows(db, ticket_messages, ticket_messages.c.id == first_id)
    assert (sent.channel_message_id, sent.sent_at) == ("m-9", at(4))


def test_a_status_only_change_on_a_ticket_updates_it(erp: SqlErp, db: Engine, clock: Clock) -> None:
    erp.import_ticket("vtex-main", ticket())
    clock.now = at(2)
    assert erp.import_ticket("vtex-main", ticket(status="closed"))[1] == 0

    (row,) = rows(db, tickets)
    assert (row.status, row.updated_at, row.order_id) == ("closed", at(2), None)


def test_unchanged_tickets_are_not_touched(erp: SqlErp, db: Engine, clock: Clock) -> None:
    erp.import_ticket("vtex-main", ticket(customer_says("m-1", "Cadê?", 1)))
    clock.now = at(2)
    erp.import_ticket("vtex-main", ticket(customer_says("m-1", "Cadê?", 1)))

    assert rows(db, tickets)[0].updated_at == T0
    with db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ticket_messages)) == 1
