"""The baseline: the stock push a merchant would write by hand. One query and one
blocking request per SKU, in a plain loop; no hashes, no concurrency.

Run as `python -m benchmarks.naive ERP_URL BASE_URL COUNT`; prints {"requests", "seconds"}
for the loop alone (interpreter start-up not counted, in the baseline's favour).
"""

from __future__ import annotations

import json
import sys
import time

import httpx
from sqlalchemy import create_engine, text

from benchmarks.catalogue import sku_code
from benchmarks.serving import APP_KEY, APP_TOKEN
from benchmarks.workspace import vtex_sku_id

BALANCE = text(
    "SELECT COALESCE(SUM(quantity), 0) FROM stock_balances WHERE sku = :sku AND warehouse IN ('CD-SP', 'LOJA-01')"
)


def push_stock(erp_url: str, base_url: str, count: int) -> dict[str, float]:
    engine = create_engine(erp_url)
    headers = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}
    with engine.connect() as conn, httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        started = time.monotonic()
        for index in range(count):
            sku = sku_code(index)
            quantity = conn.execute(BALANCE, {"sku": sku}).scalar_one()
            response = client.put(
                f"/api/logistics/pvt/inventory/skus/{vtex_sku_id(sku)}/warehouses/1_1",
                json={"quantity": max(0, int(quantity)), "unlimitedQuantity": False, "leadTime": "00:00:00"},
            )
            response.raise_for_status()
        seconds = time.monotonic() - started
    engine.dispose()
    return {"requests": count, "seconds": seconds}


if __name__ == "__main__":
    erp_url, base_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(push_stock(erp_url, base_url, count)))
