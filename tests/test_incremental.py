"""Incremental runs: after a first complete run, a push reads only what may have
changed (jobs/incremental.py). Each test fails if that selection misses a change,
or reads the whole catalogue when it should not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, Shop, by_job

from syncctl.erp import SqlErp
from syncctl.erp import schema as erp_schema
from syncctl.erp.db import create_erp_engine, writing
from syncctl.jobs import incremental
from syncctl.jobs.incremental import Cursor
from syncctl.jobs.result import Outcome
from syncctl.state import StateStore

SELLABLE = ["BONE-AZUL", "CAM-BASICA-G", "CAM-BASICA-M", "CAM-BASICA-P", "CANECA-300"]


def state(shop: Shop) -> StateStore:
    return StateStore(shop.root / "state.db")


def cursor(shop: Shop, job: str) -> Cursor | None:
    store = state(shop)
    try:
        return Cursor.parse(store.cursor("vtex-main", job))
    finally:
        store.close()


def vtex_stock(shop: Shop, ref: str) -> int:
    return shop.fake.inventory[(shop.vtex_sku_id(ref), "1_1")]["totalQuantity"]


def vtex_price(shop: Shop, ref: str) -> dict[str, Any]:
    return shop.fake.prices[shop.vtex_sku_id(ref)]


def move(shop: Shop, sku: str, delta: int, minutes: float) -> None:
    shop.erp_insert("stock_moves", [{
        "warehouse": "CD-SP", "sku": sku, "delta": delta, "reason": "adjust", "order_id": None,
        "created_at": T0 + timedelta(minutes=minutes),
    }])


def delete_product(shop: Shop, sku: str) -> None:
    engine = create_erp_engine(shop.erp_url)
    try:
        with writing(engine) as conn:
            conn.execute(erp_schema.products.delete().where(erp_schema.products.c.sku == sku))
    finally:
        engine.dispose()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str] | None]]:
    """Per ERP read, the SKUs each pass asked for (None: the whole catalogue), recorded when
    the pass starts: a job builds its full stream lazily and may never iterate it."""
    seen: dict[str, list[list[str] | None]] = {}
    for name in ("sellable_products", "stock_levels", "effective_prices"):
        original = getattr(SqlErp, name)

        def recording(self: SqlErp, *args: Any, _name: str = name, _original: Any = original) -> Iterator[Any]:
            seen.setdefault(_name, []).append(None if args[-1] is None else sorted(args[-1]))
            yield from _original(self, *args)

        monkeypatch.setattr(SqlErp, name, recording)
    return seen


@pytest.fixture
def synced(shop: Shop) -> Shop:
    """Products, stock and prices sent once, at T0: every push job has its cursor."""
    shop.run("push-products")
    shop.run("push-stock")
    shop.run("push-prices")
    return shop


# -- stock ----------------------------------------------------------------------------------------


def test_a_move_after_the_cursor_goes_out_and_only_its_sku_is_read(synced: Shop, reads) -> None:
    move(synced, "CAM-BASICA-P", -4, minutes=1)
    synced.clock.advance(minutes=2)
    [result] = synced.run("push-stock")
    assert (result.sent, result.unchanged) == (1, 4)
    assert vtex_stock(synced, "CAM-BASICA-P") == 9
    [read] = reads["stock_levels"]
    # The move's SKU, and the one key the rolling sweep compares after two minutes.
    assert read is not None and "CAM-BASICA-P" in read and len(read) <= 2


def test_a_move_stamped_before_the_cursor_but_committed_after_it_is_caught(synced: Shop) -> None:
    synced.clock.advance(minutes=10)
    assert synced.run("push-stock")[0].sent == 0  # the cursor is now T0 + 10 min
    move(synced, "BONE-AZUL", -2, minutes=8)  # an ERP transaction stamped at +8 min commits late
    synced.clock.advance(minutes=1)
    assert synced.run("push-stock")[0].sent == 1
    assert vtex_stock(synced, "BONE-AZUL") == 10


def test_a_count_approved_after_the_cursor_goes_out(synced: Shop) -> None:
    # The seed's draft recount of the mug (999 in CD-SP) is approved an hour later.
    synced.clock.advance(hours=1)
    synced.erp_update("inventories", {"sku": "CANECA-300", "status": "draft"}, {
        "status": "approved", "approved_at": synced.clock.now, "updated_at": synced.clock.now,
    })
    [result] = synced.run("push-stock")
    assert result.sent == 1
    assert vtex_stock(synced, "CANECA-300") == 999


def test_a_sale_imported_by_pull_orders_goes_out_with_the_next_push_stock(synced: Shop) -> None:
    order_id = synced.fake.add_order(items=[
        (synced.vtex_sku_id("CAM-BASICA-M"), "CAM-BASICA-M", "Camiseta Básica Algodão M", 3, 9990),
    ])
    synced.clock.advance(minutes=1)
    results = by_job(synced.run("run-all"))
    assert results["pull-orders"].sent == 1, order_id
    assert results["push-stock"].sent == 1
    assert vtex_stock(synced, "CAM-BASICA-M") == 22


# -- prices --------------------------------------------------------------------------------------------


def test_a_schedule_starting_and_a_promotion_ending_are_read_at_the_first_run_after_them(
    synced: Shop, reads
) -> None:
    synced.erp_insert("price_schedules", [{
        "sku": "BONE-AZUL", "price_list": "default", "list_price": Decimal("49.90"), "sale_price": None,
        "starts_at": T0 + timedelta(hours=2),
    }])
    synced.clock.advance(hours=2, minutes=1)
    [started] = synced.run("push-prices")
    assert started.sent == 1 and vtex_price(synced, "BONE-AZUL")["basePrice"] == Decimal("49.9")
    assert "BONE-AZUL" in reads["effective_prices"][-1]
    # The seeded promotion of CAM-BASICA-P ends at T0 + 3 days; nobody edits the ERP.
    synced.clock.advance(days=3)
    [ended] = synced.run("push-prices")
    promos = vtex_price(synced, "CAM-BASICA-P")["fixedPrices"]
    assert "CAM-BASICA-P" in reads["effective_prices"][-1]
    assert ended.sent >= 1 and not [p for p in promos if p["tradePolicyId"] == "1"]


def test_a_price_edit_goes_out(synced: Shop) -> None:
    synced.clock.advance(minutes=3)
    synced.erp_update("prices", {"sku": "CANECA-300"}, {"list_price": Decimal("42.00"), "updated_at": synced.clock.now})
    synced.clock.advance(minutes=1)
    assert synced.run("push-prices")[0].sent == 1
    assert vtex_price(synced, "CANECA-300")["basePrice"] == Decimal(42)


# -- products ------------------------------------------------------------------------------------------


def test_a_renamed_parent_resends_its_variations(synced: Shop, reads) -> None:
    synced.clock.advance(minutes=5)
    synced.erp_update("products", {"sku": "CAM-BASICA"}, {"name": "Camiseta Clássica", "updated_at": synced.clock.now})
    synced.clock.advance(minutes=1)
    [result] = synced.run("push-products")
    assert result.sent == 3
    assert {p["Name"] for p in synced.fake.products.values()} >= {"Camiseta Clássica"}
    assert {"CAM-BASICA-G", "CAM-BASICA-M", "CAM-BASICA-P"} <= set(reads["sellable_products"][-1])


def test_a_new_sku_goes_out_as_product_stock_and_price(synced: Shop) -> None:
    now = T0 + timedelta(minutes=1)
    [mug] = synced.erp_rows("products", sku="CANECA-300")
    synced.erp_insert("products", [{**mug, "sku": "CANECA-500", "name": "Caneca 500 ml", "ean": None, "updated_at": now}])
    synced.erp_insert("prices", [{
        "sku": "CANECA-500", "price_list": "default", "list_price": Decimal("49.90"), "sale_price": None,
        "sale_starts_at": None, "sale_ends_at": None, "updated_at": now,
    }])
    synced.erp_insert("inventories", [{
        "warehouse": "CD-SP", "sku": "CANECA-500", "quantity": 8, "status": "approved", "approved_at": now, "updated_at": now,
    }])
    synced.clock.advance(minutes=2)
    results = by_job(synced.run("run-all"))
    assert [results[job].sent for job in ("push-products", "push-stock", "push-prices")] == [1, 1, 1]
    assert vtex_stock(synced, "CANECA-500") == 8
    assert vtex_price(synced, "CANECA-500")["basePrice"] == Decimal("49.9")


def test_a_change_no_timestamp_shows_reaches_the_channel_by_the_rolling_sweep(synced: Shop) -> None:
    delete_product(synced, "CAM-BASICA")  # the variations lose their parent's name
    sent = []
    for _ in range(8):  # hourly runs; nothing comes due for re-assertion before 18 h
        synced.clock.advance(hours=1)
        sent.append(synced.run("push-products")[0].sent)
    assert sum(sent) == 3
    assert sent[0] < 3  # not at once: no timestamp shows it; the sweep finds it key by key
    assert "Camiseta Básica Algodão" not in {product["Name"] for product in synced.fake.products.values()}


def test_a_new_sku_the_erp_did_not_stamp_is_found_and_counted_by_the_sweep(synced: Shop) -> None:
    [mug] = synced.erp_rows("products", sku="CANECA-300")
    synced.erp_insert("products", [{**mug, "sku": "CANECA-500", "name": "Caneca 500 ml", "ean": None, "updated_at": None}])
    sent = []
    for _ in range(8):  # hourly: the sweep compares one key a run and wraps after the sixth
        synced.clock.advance(hours=1)
        sent.append(synced.run("push-products")[0].sent)
    assert sum(sent) == 1 and sent[0] == 0
    assert cursor(synced, "push-products").items == 6  # the pass that wrapped counted it


# -- when the whole catalogue is compared ------------------------------------------------------------------


def test_changed_settings_compare_everything(synced: Shop) -> None:
    synced.reserve = 1
    synced.write_config()
    [result] = synced.run("push-stock")
    assert result.sent == 5
    assert vtex_stock(synced, "BONE-AZUL") == 11


def test_too_many_changes_compare_everything(synced: Shop, reads, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incremental, "MIN_CAP", 1)
    for sku in ("BONE-AZUL", "CANECA-300"):
        move(synced, sku, -1, minutes=1)
    synced.clock.advance(minutes=2)
    [result] = synced.run("push-stock")
    assert (result.sent, result.unchanged) == (2, 3)
    assert reads["stock_levels"] == [None]


def test_an_unreadable_cursor_compares_everything(synced: Shop, reads) -> None:
    store = state(synced)
    store.set_cursor("vtex-main", "push-stock", "2026-11-26T12:00:00Z")  # an older syncctl's format
    store.close()
    assert synced.run("push-stock")[0].unchanged == 5
    assert reads["stock_levels"] == [None]
    assert cursor(synced, "push-stock") is not None


# -- the cursor moves only past what a recorded run covered -------------------------------------------------


def test_a_run_that_broke_off_leaves_the_cursor_where_it_was(synced: Shop) -> None:
    before = cursor(synced, "push-stock")
    move(synced, "CAM-BASICA-P", -1, minutes=1)
    synced.clock.advance(minutes=10)
    synced.fake.faults.add(method="PUT", path_prefix="/api/logistics", status=503, times=None)
    [broken] = synced.run("push-stock")
    assert broken.outcome is Outcome.unavailable
    assert cursor(synced, "push-stock") == before
    synced.fake.faults.clear()
    synced.clock.advance(minutes=10)  # past the overlap: only the old cursor still covers the move
    assert synced.run("push-stock")[0].sent == 1
    assert vtex_stock(synced, "CAM-BASICA-P") == 12


def test_failed_items_are_retried_though_the_cursor_moved(synced: Shop) -> None:
    move(synced, "CAM-BASICA-G", -1, minutes=1)
    synced.clock.advance(minutes=2)
    bad = synced.vtex_sku_id("CAM-BASICA-G")
    synced.fake.faults.add(method="PUT", path_prefix=f"/api/logistics/pvt/inventory/skus/{bad}/", status=400, times=1)
    [failed] = synced.run("push-stock")
    assert failed.failed == 1 and cursor(synced, "push-stock").since == synced.clock.now
    synced.clock.advance(hours=1)
    assert synced.run("push-stock")[0].sent == 1
    assert vtex_stock(synced, "CAM-BASICA-G") == 3


def test_sku_and_dry_runs_leave_the_cursor_alone(synced: Shop) -> None:
    before = cursor(synced, "push-stock")
    synced.clock.advance(minutes=30)
    synced.run("push-stock", skus=("BONE-AZUL",))
    synced.run("push-stock", dry_run=True)
    assert cursor(synced, "push-stock") == before
    synced.run("push-stock")
    assert cursor(synced, "push-stock").since == T0 + timedelta(minutes=30)


# -- the state queries behind it ---------------------------------------------------------------------------


def test_due_keys(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db", resend_after=timedelta(hours=24))
    store.record_pushed("vtex", "stock", [(f"SKU-{n}", "hash", None) for n in range(5)], T0)
    store.record_pushed("vtex", "prices", [("SKU-0", "hash", None)], T0 + timedelta(days=1))
    assert store.due_keys("vtex", "stock", T0 + timedelta(hours=17), 10) == []
    assert sorted(store.due_keys("vtex", "stock", T0 + timedelta(hours=24), 10)) == [f"SKU-{n}" for n in range(5)]
    assert len(store.due_keys("vtex", "stock", T0 + timedelta(hours=24), 2)) == 2
    assert store.due_keys("vtex", "prices", T0 + timedelta(hours=24), 10) == []
    # An item the channel had nothing to take for is never due: nothing was sent to re-assert.
    store.record_pushed("vtex", "stock", [("SKU-FULL", "nothing-sent:hash", None)], T0)
    due = store.due_keys("vtex", "stock", T0 + timedelta(days=2), 10, never_due="nothing-sent:")
    assert sorted(due) == [f"SKU-{n}" for n in range(5)]
    store.close()


def test_a_push_asks_the_state_for_channel_ids_once_per_chunk(synced: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    original = StateStore.channel_ids

    def counting(self: StateStore, channel: str, kind: str, erp_ids: Any) -> dict[str, str]:
        asked.append(len(erp_ids))
        return original(self, channel, kind, erp_ids)

    monkeypatch.setattr(StateStore, "channel_ids", counting)
    assert synced.run("push-stock", full=True)[0].sent == 5
    assert asked == [5]  # the chunk's bulk look-up; none per request


def test_a_cursor_ahead_of_the_clock_compares_everything(synced: Shop, reads) -> None:
    synced.clock.advance(hours=2)
    synced.run("push-stock")  # the cursor is now at T0 + 2 h
    synced.clock.now = T0 + timedelta(minutes=1)  # the clock went back
    move(synced, "BONE-AZUL", -2, minutes=1)
    [result] = synced.run("push-stock")
    assert result.sent == 1 and reads["stock_levels"][-1] is None
    assert cursor(synced, "push-stock").since == T0 + timedelta(minutes=1)
