"""`syncctl demo`: the whole job on a fresh machine, with no account anywhere.

Starts the sandbox VTEX on loopback, creates an embedded ERP with a small
catalogue, and runs run-all through a short story: the first sync, a sale on
VTEX, the warehouse invoicing and shipping it, and a run with nothing to do.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from syncctl import config as config_mod
from syncctl.domain import UTC
from syncctl.erp import init_schema
from syncctl.erp import schema as erp_schema
from syncctl.erp.db import create_erp_engine, writing
from syncctl.jobs import JobOptions
from syncctl.jobs.plan import run_all
from syncctl.jobs.result import JobResult, combine_exit_codes
from syncctl.runtime import Runtime
from syncctl.sandbox.server import serve
from syncctl.sandbox.vtex import FakeVtex

ACCOUNT = "demostore"
CREDENTIALS = {"VTEX_APP_KEY": "vtexappkey-demostore-DEMO", "VTEX_APP_TOKEN": "demo-app-token-not-a-secret"}

CONFIG = """\
# The demo's copy of config.example.yaml, pointed at the sandbox VTEX on loopback.
erp:
  url: sqlite:///erp.db
state:
  path: state.db
channels:
  vtex-main:
    type: vtex
    auto: true
    base_url: {base_url}
    credentials:
      app_key: ${{VTEX_APP_KEY}}
      app_token: ${{VTEX_APP_TOKEN}}
    features: {{products: true, stock: true, prices: true, orders: true, order_updates: true, sac: false}}
    stock:
      from_warehouses: [CD-SP, LOJA-01]
      debit_warehouse: CD-SP
      reserve: 1
    prices:
      price_list: default
      max_drop_pct: 50
    options:
      account: {account}
      warehouse_id: "1_1"
      sales_channel: 1
      category_path: Roupas/Camisetas
"""


@dataclass
class Step:
    title: str
    results: list[JobResult]
    requests: Counter[str]


def seed_erp(url: str, now: datetime) -> None:
    """A T-shirt in three sizes, a cap and a mug; two warehouses with approved counts,
    one draft count that must not count, a promotion and a scheduled price."""
    yesterday, last_week = now - timedelta(days=1), now - timedelta(days=7)
    tshirt = dict(brand="Malha Boa", weight_kg=Decimal("0.250"), height_cm=Decimal("3"), width_cm=Decimal("25"),
                  length_cm=Decimal("30"), active=True, updated_at=last_week)
    products = [
        dict(sku="CAM-BASICA", parent_sku=None, name="Camiseta Básica Algodão", ean=None, description="100% algodão", **tshirt),
        dict(sku="CAM-BASICA-P", parent_sku="CAM-BASICA", name="Camiseta Básica Algodão P", ean="7891234567895", description=None, **tshirt),
        dict(sku="CAM-BASICA-M", parent_sku="CAM-BASICA", name="Camiseta Básica Algodão M", ean="7891234567901", description=None, **tshirt),
        dict(sku="CAM-BASICA-G", parent_sku="CAM-BASICA", name="Camiseta Básica Algodão G", ean="7891234567918", description=None, **tshirt),
        dict(sku="BONE-AZUL", parent_sku=None, name="Boné Azul", ean="7891234567925", description="Aba curva", **tshirt | {"brand": "Topo"}),
        dict(sku="CANECA-300", parent_sku=None, name="Caneca 300 ml", ean="7891234567932", description="Porcelana", **tshirt | {"brand": "Casa", "weight_kg": Decimal("0.400")}),
    ]
    counts = [  # (warehouse, sku, quantity, status)
        ("CD-SP", "CAM-BASICA-P", 10, "approved"), ("CD-SP", "CAM-BASICA-M", 25, "approved"),
        ("CD-SP", "CAM-BASICA-G", 4, "approved"), ("LOJA-01", "CAM-BASICA-P", 3, "approved"),
        ("CD-SP", "BONE-AZUL", 12, "approved"), ("CD-SP", "CANECA-300", 30, "approved"),
        ("CD-SP", "CANECA-300", 999, "draft"),  # a count in progress: never counts
        ("DEPOSITO-RJ", "CAM-BASICA-M", 50, "approved"),  # a warehouse VTEX does not list
    ]
    prices = [
        dict(sku="CAM-BASICA-P", list_price=Decimal("99.90"), sale_price=Decimal("79.90"),
             sale_starts_at=yesterday, sale_ends_at=now + timedelta(days=3)),
        dict(sku="CAM-BASICA-M", list_price=Decimal("99.90")),
        dict(sku="CAM-BASICA-G", list_price=Decimal("109.90")),
        dict(sku="BONE-AZUL", list_price=Decimal("59.90")),
        dict(sku="CANECA-300", list_price=Decimal("39.90")),
    ]
    init_schema(url)
    engine = create_erp_engine(url)
    try:
        with writing(engine) as conn:
            conn.execute(insert(erp_schema.warehouses), [
                {"code": code, "name": name}
                for code, name in (("CD-SP", "CD São Paulo"), ("LOJA-01", "Loja Centro"), ("DEPOSITO-RJ", "Depósito RJ"))
            ])
            conn.execute(insert(erp_schema.products), products)
            conn.execute(insert(erp_schema.inventories), [
                {"warehouse": w, "sku": s, "quantity": q, "status": st,
                 "approved_at": last_week if st == "approved" else None, "updated_at": last_week}
                for w, s, q, st in counts
            ])
            conn.execute(insert(erp_schema.prices), [
                {"price_list": "default", "sale_price": None, "sale_starts_at": None, "sale_ends_at": None,
                 "updated_at": last_week} | row for row in prices
            ])
            # The mug's new price took effect yesterday: nobody edited the ERP since.
            conn.execute(insert(erp_schema.price_schedules), [
                {"sku": "CANECA-300", "price_list": "default", "list_price": Decimal("44.90"),
                 "sale_price": None, "starts_at": yesterday},
            ])
    finally:
        engine.dispose()


def invoice_and_ship(url: str, channel_order_id: str, now: datetime) -> None:
    """What the warehouse does after a sale: NF-e issued, parcel handed to the carrier."""
    engine = create_erp_engine(url)
    try:
        with writing(engine) as conn:
            order = conn.execute(
                erp_schema.orders.select().where(erp_schema.orders.c.channel_order_id == channel_order_id)
            ).one()
            conn.execute(insert(erp_schema.invoices), [{
                "order_id": order.id, "nfe_key": "35261112345678000199550010000012341000012343",
                "number": "1234", "series": "1", "issued_at": now, "total": order.total,
                "xml": "<nfeProc>…</nfeProc>", "updated_at": now,
            }])
            conn.execute(insert(erp_schema.shipments), [{
                "order_id": order.id, "carrier": "correios", "tracking_code": "AA123456785BR",
                "tracking_url": "https://rastreamento.correios.com.br/app/index.php?objetos=AA123456785BR",
                "shipped_at": now, "delivery_status": None, "delivered_at": None, "updated_at": now,
            }])
    finally:
        engine.dispose()


def run_demo(workdir: Path | None, show: Callable[[Step, FakeVtex, Runtime], None]) -> int:
    """Run the story; `show` renders each step. Returns the worst exit code."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="syncctl-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fake = FakeVtex(account=ACCOUNT, app_key=CREDENTIALS["VTEX_APP_KEY"], app_token=CREDENTIALS["VTEX_APP_TOKEN"])
    codes = []
    with serve(fake) as server:
        config_path = workdir / "config.yaml"
        config_path.write_text(CONFIG.format(base_url=server.url, account=ACCOUNT))
        config = config_mod.load(config_path, environ={**os.environ, **CREDENTIALS})
        now = datetime.now(UTC)
        seed_erp(config.erp_url(), now)
        rt = Runtime(config=config, state_path=config.state_path())
        try:
            def step(title: str) -> Step:
                before = len(fake.requests_log)
                results = run_all(rt, JobOptions())
                codes.extend(r.exit_code for r in results)
                requests = Counter(_route(entry) for entry in fake.requests_log[before:])
                result = Step(title, results, requests)
                show(result, fake, rt)
                return result

            step("1. First sync: the catalogue, stock and prices go up to VTEX")
            sku_ids = {sku["RefId"]: sku_id for sku_id, sku in fake.skus.items()}
            order_id = fake.add_order(items=[
                (str(sku_ids["CAM-BASICA-P"]), "CAM-BASICA-P", "Camiseta Básica Algodão P", 2, 7990),
                (str(sku_ids["BONE-AZUL"]), "BONE-AZUL", "Boné Azul", 1, 5990),
            ], shipping_cents=1500)
            step(f"2. A customer buys on VTEX (order {order_id}): imported once, debited from CD-SP, stock re-sent")
            invoice_and_ship(config.erp_url(), order_id, datetime.now(UTC))
            step("3. The warehouse invoices and ships it: NF-e and tracking go up")
            step("4. VTEX marks the order invoiced: the ERP order follows")
            step("5. Nothing changed: nothing is sent")
        finally:
            rt.close()
    return combine_exit_codes(codes)


def _route(entry) -> str:
    method, path = entry.method, entry.path
    for marker in ("/pricing/prices", "/api/logistics/pvt/inventory", "/api/catalog", "/api/orders/feed", "/api/oms/pvt/orders"):
        if marker in path:
            return f"{method} {marker}"
    return f"{method} {path}"
