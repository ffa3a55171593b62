"""The jobs end to end: embedded ERP -> syncctl -> the sandbox VTEX (in-process)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from conftest import T0, Shop, by_job

from syncctl import locks
from syncctl.jobs import JOBS_BY_NAME, JobOptions
from syncctl.jobs.plan import run_job
from syncctl.jobs.result import Outcome, combine_exit_codes
from syncctl.paths import lock_dir
from syncctl.state import StateStore


def vtex_stock(shop: Shop) -> dict[str, int]:
    return {
        sku["RefId"]: shop.fake.inventory.get((str(sku_id), "1_1"), {}).get("totalQuantity")
        for sku_id, sku in shop.fake.skus.items()
    }


def vtex_price(shop: Shop, ref: str) -> dict:
    return shop.fake.prices[shop.vtex_sku_id(ref)]


def our_promo(shop: Shop, ref: str) -> dict | None:
    fixed = vtex_price(shop, ref).get("fixedPrices") or []
    return next((f for f in fixed if f["tradePolicyId"] == "1" and f["minQuantity"] == 1), None)


def writes(shop: Shop) -> list:
    return [r for r in shop.fake.requests_log if r.method != "GET" and r.path != "/api/orders/feed"]


def state(shop: Shop) -> StateStore:
    return StateStore(shop.root / "state.db")


# -- stock -------------------------------------------------------------------------------------


def test_stock_is_the_sum_of_approved_balances_in_listed_warehouses_minus_reserve(shop: Shop) -> None:
    shop.reserve = 2
    shop.write_config()
    shop.run("push-products")
    [result] = shop.run("push-stock")
    assert (result.outcome, result.sent) == (Outcome.ok, 5)
    # CD-SP 10 + LOJA-01 3 for P; DEPOSITO-RJ (not listed) never counts; the mug's draft count neither.
    assert vtex_stock(shop) == {
        "CAM-BASICA-P": 11, "CAM-BASICA-M": 23, "CAM-BASICA-G": 2, "BONE-AZUL": 10, "CANECA-300": 28,
    }


def test_a_draft_count_or_an_unlisted_warehouse_changes_nothing(shop: Shop) -> None:
    shop.run("push-products")
    shop.run("push-stock")
    before = len(shop.requests("PUT", "/api/logistics"))
    shop.erp_insert("inventories", [
        {"warehouse": "CD-SP", "sku": "CAM-BASICA-P", "quantity": 500, "status": "draft", "approved_at": None, "updated_at": T0},
        {"warehouse": "DEPOSITO-RJ", "sku": "CAM-BASICA-P", "quantity": 70, "status": "approved", "approved_at": T0, "updated_at": T0},
    ])
    [result] = shop.run("push-stock")
    assert (result.sent, result.unchanged) == (0, 5)
    assert len(shop.requests("PUT", "/api/logistics")) == before
    # An approved recount in a listed warehouse does go out.
    shop.erp_insert("inventories", [
        {"warehouse": "LOJA-01", "sku": "CAM-BASICA-P", "quantity": 7, "status": "approved", "approved_at": T0, "updated_at": T0},
    ])
    [result] = shop.run("push-stock")
    assert result.sent == 1
    assert vtex_stock(shop)["CAM-BASICA-P"] == 17


def test_reserve_never_takes_stock_below_zero(shop: Shop) -> None:
    shop.reserve = 1000
    shop.write_config()
    shop.run("push-products")
    shop.run("push-stock")
    assert set(vtex_stock(shop).values()) == {0}


# -- prices --------------------------------------------------------------------------------------


def test_scheduled_prices_and_promotion_start_and_end_go_out_at_the_first_run_after_them(shop: Shop) -> None:
    shop.erp_insert("price_schedules", [
        {"sku": "BONE-AZUL", "price_list": "default", "list_price": Decimal("54.90"), "sale_price": None,
         "starts_at": T0 + timedelta(hours=1)},
    ])
    shop.erp_update("prices", {"sku": "CAM-BASICA-M"}, {
        "sale_price": Decimal("89.90"),
        "sale_starts_at": T0 + timedelta(hours=2), "sale_ends_at": T0 + timedelta(hours=5),
    })
    shop.run("push-products")
    [first] = shop.run("push-prices")
    assert first.sent == 5
    assert vtex_price(shop, "BONE-AZUL")["basePrice"] == Decimal("59.9")
    assert our_promo(shop, "CAM-BASICA-M") is None

    shop.clock.advance(minutes=30)
    assert shop.run("push-prices")[0].sent == 0  # nothing happened yet

    shop.clock.advance(minutes=31)  # the schedule started at +1 h; nobody touched the ERP
    [run] = shop.run("push-prices")
    assert (run.sent, run.unchanged) == (1, 4)
    assert vtex_price(shop, "BONE-AZUL")["basePrice"] == Decimal("54.9")

    shop.clock.advance(hours=1)  # +2 h 1 min: the promotion started
    assert shop.run("push-prices")[0].sent == 1
    promo = our_promo(shop, "CAM-BASICA-M")
    assert promo["value"] == Decimal("89.9")
    assert promo["dateRange"]["to"].startswith("2026-11-26T17:00:00")

    shop.clock.advance(hours=3)  # +5 h 1 min: it ended
    assert shop.run("push-prices")[0].sent == 1
    assert our_promo(shop, "CAM-BASICA-M") is None


def test_a_cut_deeper_than_max_drop_pct_is_held_until_allow_drop(shop: Shop) -> None:
    shop.run("push-products")
    shop.run("push-prices")
    shop.erp_update("prices", {"sku": "BONE-AZUL"}, {"list_price": Decimal("5.99"), "updated_at": T0 + timedelta(minutes=1)})
    shop.clock.advance(minutes=2)
    [held] = shop.run("push-prices")
    assert held.outcome is Outcome.failed and held.exit_code == 1
    assert [f.key for f in held.failures] == ["BONE-AZUL"]
    assert "max_drop_pct" in held.failures[0].error and "--allow-drop" in held.failures[0].error
    assert vtex_price(shop, "BONE-AZUL")["basePrice"] == Decimal("59.9")
    [sent] = shop.run("push-prices", allow_drop=True)
    assert sent.sent == 1 and sent.outcome is Outcome.ok
    assert vtex_price(shop, "BONE-AZUL")["basePrice"] == Decimal("5.99")


def test_other_trade_policies_fixed_prices_survive_a_price_push(shop: Shop) -> None:
    shop.run("push-products")
    shop.run("push-prices")
    sku_id = shop.vtex_sku_id("CAM-BASICA-P")
    shop.fake.prices[sku_id]["fixedPrices"].append(
        {"tradePolicyId": "2", "value": Decimal("70"), "listPrice": None, "minQuantity": 1}
    )
    shop.erp_update("prices", {"sku": "CAM-BASICA-P"}, {"list_price": Decimal("98.90"), "updated_at": T0 + timedelta(minutes=1)})
    shop.clock.advance(minutes=2)
    assert shop.run("push-prices")[0].sent == 1
    policies = sorted(f["tradePolicyId"] for f in shop.fake.prices[sku_id]["fixedPrices"])
    assert policies == ["1", "2"]


# -- orders --------------------------------------------------------------------------------------


def place_order(shop: Shop, quantity: int = 2) -> str:
    shop.run("push-products")
    return shop.fake.add_order(items=[
        (shop.vtex_sku_id("CAM-BASICA-P"), "CAM-BASICA-P", "Camiseta Básica Algodão P", quantity, 7990),
        (shop.vtex_sku_id("BONE-AZUL"), "BONE-AZUL", "Boné Azul", 1, 5990),
    ], shipping_cents=1500)


def sale_moves(shop: Shop) -> list[tuple]:
    return shop.erp_sql("SELECT warehouse, sku, delta, reason FROM stock_moves ORDER BY sku, reason")


def test_an_order_is_imported_once_with_its_debit_despite_redelivered_events(shop: Shop) -> None:
    order_id = place_order(shop)
    shop.fake.feed_duplicate_delivery = True
    [first] = shop.run("pull-orders")
    assert first.outcome is Outcome.ok
    [order] = shop.erp_rows("orders", channel_order_id=order_id)
    assert order["channel"] == "vtex-main" and order["debit_warehouse"] == "CD-SP"
    assert order["total"] == Decimal("234.70")  # 2 × 79.90 + 59.90 + 15.00 freight
    assert sale_moves(shop) == [("CD-SP", "BONE-AZUL", -1, "sale"), ("CD-SP", "CAM-BASICA-P", -2, "sale")]
    assert shop.fake.orders[order_id]["status"] == "handling"  # start-handling after the ERP commit
    shop.clock.advance(hours=1)
    shop.run("pull-orders")
    shop.run("pull-orders")
    assert len(shop.erp_rows("orders")) == 1
    assert len(sale_moves(shop)) == 2


def test_a_stop_between_the_erp_commit_and_the_feed_commit_imports_nothing_twice(shop: Shop, monkeypatch) -> None:
    from syncctl.channels.vtex import VtexChannel

    order_id = place_order(shop)

    def killed(self, batch, failed):
        raise SystemExit("killed before the feed commit")

    with monkeypatch.context() as patch:
        patch.setattr(VtexChannel, "acknowledge", killed)
        with pytest.raises(SystemExit):
            shop.run("pull-orders")
    assert len(shop.erp_rows("orders", channel_order_id=order_id)) == 1
    shop.clock.advance(seconds=301)  # the uncommitted events become visible again
    [again] = shop.run("pull-orders")
    assert again.outcome is Outcome.ok
    assert len(shop.erp_rows("orders")) == 1
    assert len(sale_moves(shop)) == 2
    assert shop.run("pull-orders")[0].sent == 0


def test_a_cancellation_on_vtex_updates_the_erp_order_and_returns_the_stock(shop: Shop) -> None:
    order_id = place_order(shop)
    shop.run("pull-orders")
    shop.fake.set_order_status(order_id, "canceled")
    shop.clock.advance(minutes=1)
    [result] = shop.run("pull-orders")
    assert result.outcome is Outcome.ok
    [order] = shop.erp_rows("orders", channel_order_id=order_id)
    assert order["status"] == "canceled"
    balance = shop.erp_sql("SELECT sku, SUM(delta) FROM stock_moves GROUP BY sku ORDER BY sku")
    assert balance == [("BONE-AZUL", 0), ("CAM-BASICA-P", 0)]


def test_cancellation_after_invoicing_is_flagged_for_a_person(shop: Shop) -> None:
    order_id = place_order(shop)
    shop.run("pull-orders")
    add_invoice(shop, order_id)
    shop.fake.set_order_status(order_id, "canceled")
    shop.clock.advance(minutes=1)
    shop.run("pull-orders")
    notices = state(shop).notices("vtex-main")
    assert [(n[2], "after invoicing" in n[3]) for n in notices] == [(order_id, True)]


# -- invoices and tracking --------------------------------------------------------------------------


def add_invoice(shop: Shop, channel_order_id: str, tracking: str | None = "AA123456785BR") -> int:
    [order] = shop.erp_rows("orders", channel_order_id=channel_order_id)
    shop.erp_insert("invoices", [{
        "order_id": order["id"], "nfe_key": "35261112345678000199550010000012341000012343", "number": "1234",
        "series": "1", "issued_at": T0, "total": order["total"], "xml": "<nfeProc/>", "updated_at": T0,
    }])
    if tracking:
        shop.erp_insert("shipments", [{
            "order_id": order["id"], "carrier": "correios", "tracking_code": tracking, "tracking_url": None,
            "shipped_at": T0, "delivery_status": None, "delivered_at": None, "updated_at": T0,
        }])
    return order["id"]


def test_invoice_and_tracking_are_sent_once_and_again_when_they_change(shop: Shop) -> None:
    order_id = place_order(shop)
    shop.run("pull-orders")
    erp_order_id = add_invoice(shop, order_id)
    [first] = shop.run("push-invoices")
    assert (first.outcome, first.sent) == (Outcome.ok, 2)
    package = shop.fake.orders[order_id]["packageAttachment"]["packages"][0]
    assert str(package["invoiceValue"]) == "23470"
    assert package["trackingNumber"] == "AA123456785BR"
    assert shop.fake.orders[order_id]["status"] == "invoiced"
    assert shop.run("push-invoices")[0].sent == 0

    shop.erp_update("shipments", {"order_id": erp_order_id}, {"tracking_code": "AA987654321BR"})
    [changed] = shop.run("push-invoices")
    assert (changed.sent, changed.unchanged) == (1, 1)
    package = shop.fake.orders[order_id]["packageAttachment"]["packages"][0]
    assert package["trackingNumber"] == "AA987654321BR"

    invoice_posts = len(shop.requests("POST", "/invoice"))
    shop.erp_update("invoices", {"order_id": erp_order_id}, {"xml": "<nfeProc>corrected</nfeProc>"})
    [corrected] = shop.run("push-invoices")
    assert (corrected.sent, corrected.unchanged) == (1, 1)
    assert len(shop.requests("POST", "/invoice")) == invoice_posts + 1
    assert shop.requests("POST", "/invoice")[-1].body["embeddedInvoice"] == "<nfeProc>corrected</nfeProc>"


# -- failures, retries, rate limits -----------------------------------------------------------------------


def test_retry_after_is_honoured(shop: Shop) -> None:
    shop.run("push-products")
    shop.fake.faults.add(method="PUT", path_prefix="/api/logistics", status=429, headers={"Retry-After": "7"}, times=1)
    [result] = shop.run("push-stock")
    assert (result.outcome, result.sent) == (Outcome.ok, 5)
    assert 7.0 in shop.sleeps


def test_a_rejected_sku_fails_alone_is_shown_in_status_and_retried_next_run(shop: Shop) -> None:
    shop.run("push-products")
    bad = shop.vtex_sku_id("CAM-BASICA-G")
    rule = shop.fake.faults.add(
        method="PUT", path_prefix=f"/api/logistics/pvt/inventory/skus/{bad}/", status=400,
        body='"Warehouse 1_1 is not allowed for this SKU"', times=None,
    )
    [result] = shop.run("push-stock")
    assert (result.outcome, result.exit_code, result.sent, result.failed) == (Outcome.failed, 1, 4, 1)
    [failing] = state(shop).failing("vtex-main", "push-stock")
    assert failing.key == "CAM-BASICA-G" and "HTTP 400 from VTEX" in failing.error and failing.attempts == 1

    [again] = shop.run("push-stock")  # retried, though its payload did not change
    assert (again.sent, again.failed, again.unchanged) == (0, 1, 4)
    assert state(shop).failing("vtex-main", "push-stock")[0].attempts == 2

    shop.fake.faults.clear()
    [healed] = shop.run("push-stock")
    assert (healed.sent, healed.failed) == (1, 0)
    assert state(shop).failing("vtex-main", "push-stock") == []
    assert rule.hits == 2


def test_an_unchanged_item_is_reasserted_after_resend_after(shop: Shop) -> None:
    shop.run("push-products")
    shop.run("push-stock")
    shop.clock.advance(hours=17)
    assert shop.run("push-stock")[0].sent == 0
    shop.clock.advance(hours=8)  # > 24 h since it was sent: every item came due
    assert shop.run("push-stock")[0].sent == 5


def test_dry_run_sends_and_writes_nothing(shop: Shop) -> None:
    [result] = shop.run("push-products", dry_run=True)
    assert result.sent == 5 and {p["key"] for p in result.planned} >= {"CAM-BASICA-P", "BONE-AZUL"}
    assert writes(shop) == []
    assert state(shop).last_runs() == []


def test_full_resends_everything(shop: Shop) -> None:
    shop.run("push-products")
    shop.run("push-stock")
    assert shop.run("push-stock", full=True)[0].sent == 5


# -- channels are isolated -----------------------------------------------------------------------------


SECOND = """\
  vtex-outlet:
    type: vtex
    auto: true
    base_url: http://vtex.test
    credentials:
      app_key: ${VTEX_APP_KEY}
      app_token: ${VTEX_APP_TOKEN}
    features: {products: false, stock: true, prices: false, orders: false, order_updates: false}
    stock:
      from_warehouses: [LOJA-01]
    options:
      account: testshop
      warehouse_id: "1_1"
"""


def test_a_busy_channel_is_left_alone_and_the_other_runs(shop: Shop) -> None:
    shop.extra = SECOND
    shop.write_config()
    shop.run("push-products", channels=["vtex-main"])
    with locks.hold(lock_dir(shop.root / "state.db"), "channel-vtex-main"):
        results = shop.run("push-stock")
    outcome = {r.channel: r.outcome for r in results}
    assert outcome == {"vtex-main": Outcome.locked, "vtex-outlet": Outcome.ok}
    assert combine_exit_codes([r.exit_code for r in results]) == 75


def test_run_all_runs_every_feature_of_automatic_channels_in_order(shop: Shop) -> None:
    results = shop.run("run-all")
    assert [r.job for r in results] == ["pull-orders", "push-products", "push-stock", "push-prices", "push-invoices"]
    assert all(r.outcome is Outcome.ok for r in results)
    assert by_job(shop.run("run-all"))["push-products"].sent == 0


def test_full_still_holds_a_deep_price_cut(shop: Shop) -> None:
    shop.run("push-products")
    shop.run("push-prices")
    shop.erp_update("prices", {"sku": "BONE-AZUL"}, {"list_price": Decimal("5.99"), "updated_at": T0 + timedelta(minutes=1)})
    shop.clock.advance(minutes=2)
    [result] = shop.run("push-prices", full=True)
    assert (result.sent, [f.key for f in result.failures]) == (4, ["BONE-AZUL"])
    assert vtex_price(shop, "BONE-AZUL")["basePrice"] == Decimal("59.9")


def test_requests_run_concurrently_up_to_the_channel_limit(shop: Shop) -> None:
    shop.config_path.write_text(shop.config_path.read_text().replace(
        "    prices:\n", "    http: {concurrency: 3}\n    prices:\n", 1))
    in_flight, peak, lock = 0, 0, threading.Lock()

    def slow(environ, start_response):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            time.sleep(0.02)
            return shop.fake(environ, start_response)
        finally:
            with lock:
                in_flight -= 1

    shop.run("push-products")
    rt = shop.runtime()
    rt.transports = {"vtex-main": httpx.WSGITransport(app=slow)}
    try:
        [result] = run_job(rt, JOBS_BY_NAME["push-stock"], ["vtex-main"], JobOptions(full=True))
    finally:
        rt.close()
    assert result.sent == 5
    assert peak == 3
