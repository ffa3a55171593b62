"""How `syncctl demo` shows each step: the jobs' results, then what VTEX and Mercado Livre
(side by side) and the ERP hold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.columns import Columns
from rich.table import Table

from syncctl.cli.output import Output
from syncctl.demo import Step
from syncctl.domain import UTC, money
from syncctl.jobs.result import combine_exit_codes
from syncctl.runtime import Runtime
from syncctl.sandbox.vtex import FakeVtex


class DemoView:
    def __init__(self, out: Output) -> None:
        self.out = out
        self.steps: list[dict[str, Any]] = []

    def show(self, step: Step, fake: FakeVtex, rt: Runtime) -> None:
        catalogue = vtex_catalogue(fake)
        doc = {
            "step": step.title,
            "exit_code": combine_exit_codes([r.exit_code for r in step.results]),
            "results": [r.as_json() for r in step.results],
            "requests_to_vtex": dict(sorted(step.requests.items())),
            "vtex": catalogue,
            "vtex_orders": {oid: o.get("status") for oid, o in fake.orders.items()},
            "parcels": step.parcels,
            "mercadolivre": step.mercadolivre,
        }
        self.steps.append(doc)
        if self.out.json_mode:
            return
        now = datetime.now(UTC)
        self.out.info("")
        self.out.info(f"== {step.title}")
        self.out.results("run-all", now, now, step.results, doc["exit_code"])
        total = sum(step.requests.values())
        self.out.info(f"requests that reached VTEX: {total}" + (
            " (" + ", ".join(f"{route} ×{n}" for route, n in sorted(step.requests.items())) + ")" if total else ""))
        ml = step.mercadolivre
        ml_requests = ml.get("requests") or {}
        self.out.info(f"requests that reached Mercado Livre: {sum(ml_requests.values())}" + (
            " (" + ", ".join(f"{route} ×{n}" for route, n in ml_requests.items()) + ")" if ml_requests else ""))
        if self.out.console is not None:
            self.out.console.print(Columns([_catalogue_table(catalogue), _listings_table(ml.get("listings") or [])]))
        else:
            for row in catalogue:
                self.out.info("VTEX " + " ".join(f"{k}={'-' if v is None else v}" for k, v in row.items()))
            for row in ml.get("listings") or []:
                self.out.info("Mercado Livre " + " ".join(f"{k}={'-' if v is None else v}" for k, v in row.items()))
        for order_id, status in doc["vtex_orders"].items():
            self.out.info(f"VTEX order {order_id}: {status}")
        for pack, status in (ml.get("orders") or {}).items():
            self.out.info(f"Mercado Livre pack {pack}: {status}")
        for shipment, label in (ml.get("labels") or {}).items():
            self.out.info(f"Mercado Livre shipment {shipment}: {label}")
        for pack, messages in (ml.get("messages") or {}).items():
            for message in messages:
                self.out.info(f"Mercado Livre message on {pack}: {message}")
        for code, known in step.parcels.items():
            self.out.info(f"ERP parcel {code}: {known}")

    def finish(self, exit_code: int) -> None:
        if self.out.json_mode:
            self.out.document({"command": "demo", "exit_code": exit_code, "steps": self.steps})
        else:
            self.out.info("")
            self.out.info(f"demo finished: exit code {exit_code}")


def vtex_catalogue(fake: FakeVtex) -> list[dict[str, Any]]:
    """One row per SKU on the sandbox VTEX: what syncctl put there."""
    rows = []
    for sku_id, sku in sorted(fake.skus.items(), key=lambda kv: str(kv[1].get("RefId"))):
        stock = fake.inventory.get((str(sku_id), "1_1"), {})
        price = fake.prices.get(str(sku_id), {})
        promo = next((f for f in price.get("fixedPrices") or [] if f.get("minQuantity") == 1), None)
        rows.append({
            "ref": sku.get("RefId"),
            "name": sku.get("Name"),
            "ean": ",".join(fake.eans.get(sku_id, [])),
            "stock": stock.get("totalQuantity"),
            "price": f"{money(price['basePrice'])}" if price else None,
            "promo": f"{money(promo['value'])}" if promo else None,
        })
    return rows


def _listings_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="on Mercado Livre now", show_edge=False, header_style="bold")
    columns = ("sku", "item", "stock", "status", "full", "price", "discount")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] is not None else "-" for c in columns))
    return table


def _catalogue_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="on VTEX now", show_edge=False, header_style="bold")
    for column in ("ref", "name", "ean", "stock", "price", "promo"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] is not None else "-" for c in ("ref", "name", "ean", "stock", "price", "promo")))
    return table
