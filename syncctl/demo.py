"""`syncctl demo`: the whole job on a fresh machine, with no account anywhere.

Starts the sandbox VTEX and the sandbox Correios on loopback, creates an embedded
ERP with a small catalogue, and runs run-all through a short story: the first sync,
a sale on VTEX, the warehouse invoicing and shipping it, the parcel travelling to
the customer, and a run with nothing to do. The sandbox Mercado Livre runs beside
VTEX: the seller's live listings are linked by SELLER_SKU, a cart of two comes down
as one order, its NF-e unlocks the label, and a buyer's message is answered.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from syncctl import config as config_mod
from syncctl.domain import UTC
from syncctl.erp import init_schema
from syncctl.erp import schema as erp_schema
from syncctl.erp.db import create_erp_engine, writing
from syncctl.jobs import JobOptions
from syncctl.jobs.plan import run_all
from syncctl.jobs.result import JobResult, combine_exit_codes
from syncctl.nfe import check_digit
from syncctl.runtime import Runtime
from syncctl.sandbox import mercadolivre as ml_sandbox
from syncctl.sandbox.correios import FakeCorreios
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


CARRIER_CREDENTIALS = {
    "CORREIOS_USER": "demo-user", "CORREIOS_ACCESS_CODE": "demo-access-code", "CORREIOS_POSTCARD": "0012345678",
}  # fmt: skip
PARCEL = "AA123456785BR"  # the demo order's Correios object code

CARRIERS_CONFIG = """\
carriers:
  correios:
    type: correios
    auto: true
    base_url: {base_url}
    credentials:
      user: ${{CORREIOS_USER}}
      access_code: ${{CORREIOS_ACCESS_CODE}}
      postcard: ${{CORREIOS_POSTCARD}}
"""


@dataclass
class Step:
    title: str
    results: list[JobResult]
    requests: Counter[str]
    parcels: dict[str, str] = field(default_factory=dict)  # tracking code -> what the ERP knows of it
    mercadolivre: dict[str, Any] = field(default_factory=dict)  # what the sandbox Mercado Livre holds now


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
                "order_id": order.id, "carrier": "correios", "tracking_code": PARCEL,
                "tracking_url": f"https://rastreamento.correios.com.br/app/index.php?objetos={PARCEL}",
                "shipped_at": now, "delivery_status": None, "delivered_at": None, "updated_at": now,
            }])
    finally:
        engine.dispose()


def parcel_travels(correios: FakeCorreios, at: datetime) -> None:
    """Correios scans the demo parcel on its way: in transit, out for delivery, delivered."""
    scans = (("RO", 1, "SAO PAULO"), ("OEC", 1, "CAMPINAS"), ("BDE", 1, "CAMPINAS"))
    for seconds, (event_type, number, city) in enumerate(scans, start=1):
        correios.add_event(PARCEL, event_type, number, at + timedelta(seconds=seconds), city=city)


def parcels(url: str) -> dict[str, str]:
    """Each shipment's tracking code, with its delivery status and its events in the ERP."""
    shipments, events = erp_schema.shipments, erp_schema.shipment_events
    statement = (
        select(shipments.c.tracking_code, shipments.c.delivery_status, func.count(events.c.code))
        .join(events, events.c.shipment_id == shipments.c.id, isouter=True)
        .group_by(shipments.c.id)
        .order_by(shipments.c.id)
    )
    engine = create_erp_engine(url)
    try:
        with engine.connect() as conn:
            return {
                code: f"{status or 'not tracked yet'}, {count} event(s)"
                for code, status, count in conn.execute(statement)
            }
    finally:
        engine.dispose()


# -- Mercado Livre, beside VTEX ------------------------------------------------------------

ML_CREDENTIALS = {"ML_CLIENT_ID": ml_sandbox.CLIENT_ID, "ML_CLIENT_SECRET": ml_sandbox.CLIENT_SECRET}
ML_CONFIG = """\
  ml-main:
    type: mercadolivre
    auto: true
    base_url: {base_url}
    credentials:
      client_id: ${{ML_CLIENT_ID}}
      client_secret: ${{ML_CLIENT_SECRET}}
      refresh_token: ${{ML_REFRESH_TOKEN}}
    stock:
      from_warehouses: [CD-SP, LOJA-01]
      debit_warehouse: CD-SP
    http: {{rate_per_s: 50, burst: 50}}   # the sandbox answers at once; the real API gets the type's 5/s
"""
ML_NFE_KEY = "3526111234567800019955001000001235100001235"  # + its check digit, below
ML_NFE_KEY += str(check_digit(ML_NFE_KEY))


def seed_mercadolivre(fake: ml_sandbox.FakeMercadoLivre) -> dict[str, str]:
    """The seller's listings, live on Mercado Livre before syncctl came (syncctl links them
    by SELLER_SKU, it never duplicates them): the T-shirt sizes as one User Products family,
    the cap, and the mug in Full (its stock is ML's). Returns item id by SKU."""
    family = "Camiseta Básica Algodão"
    listings = {
        f"CAM-BASICA-{size}": fake.add_item(f"{family} {size}", sku=f"CAM-BASICA-{size}", family_name=family,
                                            price=Decimal("89.90"), quantity=0)
        for size in ("P", "M", "G")
    }  # fmt: skip
    listings["BONE-AZUL"] = fake.add_item("Boné Azul", sku="BONE-AZUL", family_name="Boné Azul", quantity=0)
    listings["CANECA-300"] = fake.add_item("Caneca 300 ml", sku="CANECA-300", quantity=5, logistic_type="fulfillment")
    return listings


def mercadolivre_sale(fake: ml_sandbox.FakeMercadoLivre, listings: dict[str, str]) -> str:
    """A cart of two on Mercado Livre (one pack, two orders, Mercado Envios), and the buyer's message."""
    pack, _ = fake.add_order([
        (listings["CAM-BASICA-M"], None, 1, Decimal("99.90")), (listings["BONE-AZUL"], None, 1, Decimal("59.90")),
    ], shipping_cost=Decimal("18.90"))  # fmt: skip
    fake.add_buyer_message(pack, "Olá! Consegue enviar ainda hoje?")
    return str(pack)


def invoice_and_answer(url: str, pack: str, now: datetime) -> None:
    """The warehouse issues the cart's NF-e (ML prints the label: no parcel in the ERP); an
    agent answers the buyer in the ERP."""
    engine = create_erp_engine(url)
    try:
        with writing(engine) as conn:
            orders, tickets = erp_schema.orders, erp_schema.tickets
            order = conn.execute(orders.select().where(orders.c.channel_order_id == pack)).one()
            conn.execute(insert(erp_schema.invoices), [{
                "order_id": order.id, "nfe_key": ML_NFE_KEY, "number": "1235", "series": "1", "issued_at": now,
                "total": order.total, "xml": f'<nfeProc versao="4.00"><NFe><infNFe Id="NFe{ML_NFE_KEY}"/></NFe></nfeProc>',
                "updated_at": now,
            }])  # fmt: skip
            ticket = conn.execute(tickets.select().where(tickets.c.channel_ticket_id == f"pack:{pack}")).one()
            conn.execute(insert(erp_schema.ticket_messages), [{
                "ticket_id": ticket.id, "direction": "out", "author": "Ana (SAC)", "created_at": now,
                "body": "Olá! Sim, sai hoje pelo Mercado Envios. Obrigada pela compra!",
            }])  # fmt: skip
    finally:
        engine.dispose()


def mercadolivre_now(fake: ml_sandbox.FakeMercadoLivre, requests: list[Any]) -> dict[str, Any]:
    """What the sandbox Mercado Livre holds now, and the requests this step sent it."""
    listings = [{
        "sku": next((a["value_name"] for a in item["attributes"] if a["id"] == "SELLER_SKU"), None),
        "item": item_id, "stock": item["available_quantity"], "status": item["status"],
        "full": item["shipping"]["logistic_type"] == "fulfillment", "price": str(item["price"]),
        "discount": str(deal) if (deal := fake.running_deal_price(item_id)) is not None else None,
    } for item_id, item in fake.items.items()]  # fmt: skip
    packs: dict[str, list[str]] = {}
    for order in fake.orders.values():
        packs.setdefault(str(order["pack_id"] or order["id"]), []).append(order["status"])
    return {
        "listings": listings,
        "orders": {key: ",".join(sorted(set(statuses))) for key, statuses in packs.items()},
        "labels": {str(sid): s["substatus"] for sid, s in fake.shipments.items()},
        "messages": {
            str(key): [f"{m['from']['user_id']}: {m['text']}" for m in c["messages"]]
            for key, c in fake.conversations.items() if c["messages"]
        },
        "requests": dict(sorted(Counter(f"{r.method} {_ml_route(r.path)}" for r in requests).items())),
    }


def _ml_route(path: str) -> str:
    """A request path with its ids folded, so the requests of a step count by kind."""
    return "/".join("{id}" if re.search(r"\d{4}", part) else part for part in path.split("/"))


def run_demo(workdir: Path | None, show: Callable[[Step, FakeVtex, Runtime], None]) -> int:
    """Run the story; `show` renders each step. Returns the worst exit code."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="syncctl-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fake = FakeVtex(account=ACCOUNT, app_key=CREDENTIALS["VTEX_APP_KEY"], app_token=CREDENTIALS["VTEX_APP_TOKEN"])
    correios = FakeCorreios(
        CARRIER_CREDENTIALS["CORREIOS_USER"], CARRIER_CREDENTIALS["CORREIOS_ACCESS_CODE"],
        CARRIER_CREDENTIALS["CORREIOS_POSTCARD"],
    )  # fmt: skip
    ml = ml_sandbox.FakeMercadoLivre()
    listings = seed_mercadolivre(ml)
    ml_env = {**ML_CREDENTIALS, "ML_REFRESH_TOKEN": ml.issue_refresh_token()}
    codes = []
    with serve(fake) as server, serve(correios) as correios_server, serve(ml) as ml_server:
        config_path = workdir / "config.yaml"
        config_path.write_text(
            CONFIG.format(base_url=server.url, account=ACCOUNT) + ML_CONFIG.format(base_url=ml_server.url)
            + CARRIERS_CONFIG.format(base_url=correios_server.url)
        )
        config = config_mod.load(config_path, environ={**os.environ, **CREDENTIALS, **CARRIER_CREDENTIALS, **ml_env})
        now = datetime.now(UTC)
        seed_erp(config.erp_url(), now)
        rt = Runtime(config=config, state_path=config.state_path())
        try:
            def step(title: str) -> Step:
                before, ml_before = len(fake.requests_log), len(ml.requests_log)
                results = run_all(rt, JobOptions())
                codes.extend(r.exit_code for r in results)
                requests = Counter(_route(entry) for entry in fake.requests_log[before:])
                result = Step(title, results, requests, parcels(config.erp_url()),
                              mercadolivre_now(ml, ml.requests_log[ml_before:]))  # fmt: skip
                show(result, fake, rt)
                return result

            step("1. First sync: the catalogue, stock and prices go up to VTEX; Mercado Livre's listings are linked")
            sku_ids = {sku["RefId"]: sku_id for sku_id, sku in fake.skus.items()}
            order_id = fake.add_order(items=[
                (str(sku_ids["CAM-BASICA-P"]), "CAM-BASICA-P", "Camiseta Básica Algodão P", 2, 7990),
                (str(sku_ids["BONE-AZUL"]), "BONE-AZUL", "Boné Azul", 1, 5990),
            ], shipping_cents=1500)
            pack = mercadolivre_sale(ml, listings)
            step(f"2. A customer buys on VTEX (order {order_id}), another a cart of two on Mercado Livre (pack {pack}): "
                 "each imported once, debited from CD-SP, stock re-sent; the buyer's message comes down")
            shipped_at = datetime.now(UTC)
            invoice_and_ship(config.erp_url(), order_id, shipped_at)
            invoice_and_answer(config.erp_url(), pack, shipped_at)
            correios.add_event(PARCEL, "PO", 1, shipped_at)
            step("3. The warehouse invoices and ships it: NF-e and tracking go up; Correios has it posted; "
                 "on Mercado Livre the NF-e unlocks the label and the agent's answer goes up")
            step("4. VTEX marks the order invoiced: the ERP order follows; the first tracking event goes up")
            parcel_travels(correios, shipped_at)
            step("5. The parcel travels: track brings its scans to the ERP, down to the delivery")
            step("6. VTEX hears of the delivery; the delivered parcel is not asked about again")
            step("7. Nothing changed: nothing is sent")
        finally:
            rt.close()
    return combine_exit_codes(codes)


def _route(entry) -> str:
    method, path = entry.method, entry.path
    for marker in ("/pricing/prices", "/api/logistics/pvt/inventory", "/api/catalog", "/api/orders/feed", "/api/oms/pvt/orders"):
        if marker in path:
            return f"{method} {marker}"
    return f"{method} {path}"
