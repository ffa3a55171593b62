"""PostgreSQL only: `erp init`/`erp check` on a server, an ERP's own views, and the
least-privilege role of the README's "ERP on PostgreSQL" running every job.

The adapter tests (test_erp.py) and the job suite (test_jobs.py) run on PostgreSQL
too, through conftest's `erp_backend`; these need what only a server has: schemas
of views, roles and grants. The README's SQL is run as written (names substituted),
so the documentation cannot drift from what works.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from conftest import T0, Shop
from syncctl.cli import app
from syncctl.demo import seed_erp
from syncctl.domain import DeliveryStatus, Ticket, TicketMessage, TrackingEvent
from syncctl.erp import check_schema, init_schema, open_erp
from syncctl.erp.db import shown_url
from syncctl.jobs.result import Outcome

pytestmark = pytest.mark.parametrize("erp_backend", ["postgresql"], indirect=True)

README = Path(__file__).parent.parent / "README.md"
runner = CliRunner()


def readme_sql(starting: str) -> str:
    """The README's ```sql block that starts with `starting`."""
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return next(block for block in blocks if block.startswith(starting))


def statements(sql: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [statement.strip() for statement in without_comments.split(";") if statement.strip()]


def schema_of(url: str) -> str:
    return make_url(url).query["options"].removeprefix("-csearch_path=")


@contextmanager
def owner(url: str) -> Iterator[Engine]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def test_erp_init_creates_the_schema_on_an_empty_database_and_check_names_what_goes_missing(
    erp_database: str,
) -> None:
    url = erp_database.replace("postgresql+psycopg://", "postgresql://", 1)  # as users write it

    created = runner.invoke(app, ["--json", "erp", "init", "--url", url])
    assert created.exit_code == 0, created.output
    assert json.loads(created.output) == {"url": shown_url(url), "created": True}
    assert ":***@" in shown_url(url)
    complete = runner.invoke(app, ["--json", "erp", "check", "--url", url])
    assert (complete.exit_code, json.loads(complete.output)["problems"]) == (0, [])

    with owner(erp_database) as engine, engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE orders DROP COLUMN debit_warehouse")
        conn.exec_driver_sql("DROP VIEW stock_balances")
    broken = runner.invoke(app, ["erp", "check", "--url", url])

    assert broken.exit_code == 2
    assert "table orders: missing column debit_warehouse" in broken.output.splitlines()
    assert "view stock_balances: missing" in broken.output.splitlines()


def test_init_keeps_an_erps_own_views_and_creates_only_what_is_missing(erp_database: str) -> None:
    with owner(erp_database) as engine, engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE produtos (codigo text PRIMARY KEY, descricao text NOT NULL)")
        conn.exec_driver_sql("INSERT INTO produtos VALUES ('CAM-P', 'Camiseta P')")
        conn.exec_driver_sql(
            "CREATE VIEW products AS SELECT codigo AS sku, NULL::text AS parent_sku, descricao AS name,"
            " NULL::text AS ean, NULL::text AS brand, NULL::text AS description,"
            " NULL::numeric AS weight_kg, NULL::numeric AS height_cm, NULL::numeric AS width_cm,"
            " NULL::numeric AS length_cm, true AS active, NULL::timestamptz AS updated_at FROM produtos"
        )

    init_schema(erp_database)

    with owner(erp_database) as engine, engine.connect() as conn:
        assert "products" in inspect(conn).get_view_names()
    assert check_schema(erp_database) == []
    erp = open_erp(erp_database)
    try:
        assert [(product.sku, product.name) for product in erp.sellable_products()] == [("CAM-P", "Camiseta P")]
    finally:
        erp.close()


def test_the_documented_stock_balances_view_means_what_syncctls_does(erp_with_schema: str) -> None:
    seed_erp(erp_with_schema, T0)
    balances = text("SELECT sku, warehouse, quantity, updated_at FROM stock_balances ORDER BY sku, warehouse")
    with owner(erp_with_schema) as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO stock_moves (warehouse, sku, delta, reason, created_at) VALUES"
                " ('CD-SP', 'BONE-AZUL', -2, 'sale', now()),"  # after a count
                " ('LOJA-01', 'BONE-AZUL', -1, 'sale', now())"  # never counted
            )
            ours = conn.execute(balances).all()
            conn.exec_driver_sql("DROP VIEW stock_balances")
            conn.exec_driver_sql(readme_sql("CREATE VIEW stock_balances"))
        with engine.connect() as conn:
            documented = conn.execute(balances).all()

    assert ("BONE-AZUL", "LOJA-01", -1) in [row[:3] for row in ours]
    assert documented == ours
    assert check_schema(erp_with_schema) == []


# -- the least-privilege role -----------------------------------------------------------------------
@contextmanager
def documented_role(owner_url: str) -> Iterator[str]:
    """A role made by the README's grants block, on this test's schema; its URL (no
    search_path: the block sets the role's own)."""
    schema = schema_of(owner_url)
    role, password = f"syncctl_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    block = readme_sql("CREATE ROLE syncctl")
    block = re.sub(r"\bsyncctl\b", role, block.replace("'change-me'", f"'{password}'"))
    block = re.sub(r"\bintegration\b", schema, block)
    with owner(owner_url) as engine:
        with engine.begin() as conn:
            for statement in statements(block):
                conn.exec_driver_sql(statement)
        try:
            yield make_url(owner_url).set(username=role, password=password, query={}).render_as_string(
                hide_password=False
            )
        finally:
            with engine.begin() as conn:
                for revoke in (f"ALL ON ALL TABLES IN SCHEMA {schema}", f"ALL ON ALL SEQUENCES IN SCHEMA {schema}",
                               f"USAGE ON SCHEMA {schema}"):
                    conn.exec_driver_sql(f"REVOKE {revoke} FROM {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")


def sell(shop: Shop) -> str:
    sku = "BONE-AZUL"
    return shop.fake.add_order(items=[(shop.vtex_sku_id(sku), sku, "Boné Azul", 1, 5990)], shipping_cents=1500)


def test_the_documented_role_reads_the_views_writes_the_staging_tables_and_runs_every_job(shop: Shop) -> None:
    with documented_role(shop.erp_url) as role_url:
        shop.config_erp_url = role_url
        shop.write_config()
        shop.run("push-products")
        kept, cancelled = sell(shop), sell(shop)
        first = shop.run("run-all")
        shop.fake.set_order_status(cancelled, "canceled")
        shop.clock.advance(minutes=1)
        [pulled] = shop.run("pull-orders")
        [order] = shop.erp_rows("orders", channel_order_id=kept)
        shop.erp_insert("invoices", [{
            "order_id": order["id"], "nfe_key": "35261112345678000199550010000012341000012343", "number": "1234",
            "series": "1", "issued_at": T0, "total": order["total"], "xml": "<nfeProc/>", "updated_at": T0,
        }])
        shop.erp_insert("shipments", [{"order_id": order["id"], "carrier": "correios", "tracking_code": "AA123456785BR",
                                       "shipped_at": T0, "updated_at": T0}])
        [invoiced] = shop.run("push-invoices")

        # sync-sac and track: VTEX has no ticket API and the harness no carrier, so
        # their ERP calls are made here, through the port, as the same role.
        erp = open_erp(role_url)
        try:
            [shipment] = erp.shipments_to_track("correios")
            posted = TrackingEvent(T0 + timedelta(hours=1), DeliveryStatus.posted, "PO", "Objeto postado")
            recorded = erp.record_tracking(shipment.id, [posted], DeliveryStatus.posted, None)
            question = TicketMessage(direction="in", body="Cadê?", created_at=T0, channel_message_id="m-1")
            ticket = Ticket("Q-1", "Onde está?", "open", T0, channel_order_id=kept, messages=(question,))
            ticket_id, new_messages = erp.import_ticket("vtex-main", ticket)
            erp.import_ticket("vtex-main", Ticket("Q-1", "Onde está?", "answered", T0, channel_order_id=kept))
            shop.erp_insert("ticket_messages", [{"ticket_id": ticket_id, "direction": "out", "body": "Já saiu",
                                                 "created_at": T0}])
            [(_, reply)] = erp.pending_replies("vtex-main")
            assert reply.id is not None
            erp.mark_reply_sent(reply.id, "m-2", T0)
            left = list(erp.pending_replies("vtex-main"))
        finally:
            erp.close()

        with owner(role_url) as narrow, narrow.begin() as conn, pytest.raises(DBAPIError, match="permission denied"):
            conn.exec_driver_sql("UPDATE products SET name = 'x'")

    assert [(result.job, result.outcome) for result in first] == [
        (job, Outcome.ok) for job in ("pull-orders", "push-products", "push-stock", "push-prices", "push-invoices")
    ]
    assert (pulled.outcome, invoiced.outcome, invoiced.sent) == (Outcome.ok, Outcome.ok, 2)
    assert shop.erp_sql("SELECT reason, SUM(delta) FROM stock_moves GROUP BY reason ORDER BY reason") == [
        ("cancel", 1), ("sale", -2),
    ]
    assert (recorded, new_messages, left) == (1, 1, [])
    assert shop.erp_rows("shipments")[0]["delivery_status"] == "posted"
    assert shop.erp_rows("tickets")[0]["status"] == "answered"
