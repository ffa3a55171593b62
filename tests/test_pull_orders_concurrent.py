"""pull-orders reading and starting several VTEX orders at once: still exactly once,
start-handling only after each order's ERP commit, failed orders' events left for the
next run, and feed events that bring no news committed without reading their order."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from conftest import Shop

from syncctl.channels.base import concurrently
from syncctl.channels.vtex import FEED_READ_S, FEED_STATUSES, VtexChannel, brings_news
from syncctl.domain import Order, OrderStatus
from syncctl.erp import open_erp
from syncctl.erp import orders as erp_orders
from syncctl.erp.schema import orders
from syncctl.erp.sql import SqlErp
from syncctl.errors import ErpError
from syncctl.jobs.result import Outcome
from syncctl.sandbox.vtex import FakeVtex

ORDER_PATH = "/api/oms/pvt/orders/"


def ready_shop(shop: Shop) -> None:
    """Products on VTEX, the feed configured and the backstop's cursor set: from here on
    orders reach pull-orders through the feed alone."""
    shop.run("push-products")
    shop.fake.configure_feed(FEED_STATUSES)
    shop.run("pull-orders")


def place_orders(shop: Shop, count: int) -> list[str]:
    sku = "CAM-BASICA-P"
    item = (shop.vtex_sku_id(sku), sku, "Camiseta Básica Algodão P", 1, 7990)
    return [shop.fake.add_order(items=[item], shipping_cents=1500) for _ in range(count)]


def order_reads(shop: Shop, order_id: str | None = None) -> list[str]:
    return [r.path for r in shop.requests("GET", ORDER_PATH) if order_id is None or r.path.endswith(f"/{order_id}")]


def sales(shop: Shop) -> list[tuple]:
    return shop.erp_sql(
        "SELECT o.channel_order_id, COUNT(*) FROM stock_moves m JOIN orders o ON o.id = m.order_id"
        " WHERE m.reason = 'sale' GROUP BY o.channel_order_id ORDER BY o.channel_order_id"
    )


def queued(shop: Shop, order_id: str) -> list[str]:
    """The states of the order's events still in the feed (not committed)."""
    return [event.state for event in shop.fake._feed.values() if event.order_id == order_id]


def test_orders_are_read_at_once_and_imported_once_each(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_shop(shop)
    placed = place_orders(shop, 25)
    shop.fake.feed_duplicate_delivery = True  # every event twice: five feed lots
    both_in_flight = threading.Barrier(2, timeout=10)
    waiting = threading.Semaphore(2)
    serve = FakeVtex.__call__

    def two_reads_meet(fake: FakeVtex, environ: dict, start_response: object) -> object:
        # The first two order reads wait for each other: one after the other, they never would.
        is_read = environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"].startswith(ORDER_PATH)
        if is_read and waiting.acquire(blocking=False):
            both_in_flight.wait()
        return serve(fake, environ, start_response)

    monkeypatch.setattr(FakeVtex, "__call__", two_reads_meet)
    [result] = shop.run("pull-orders")

    assert (result.outcome, result.sent, result.failed) == (Outcome.ok, 25, 0)
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed)]
    assert all(shop.fake.orders[order_id]["status"] == "handling" for order_id in placed)
    assert shop.fake._feed == {}  # every handle committed, the start-handling events' too
    shop.clock.advance(hours=1)
    assert shop.run("pull-orders")[0].sent == 0
    assert len(sales(shop)) == 25


def test_start_handling_comes_only_after_the_orders_erp_commit(shop: Shop) -> None:
    ready_shop(shop)
    placed = place_orders(shop, 12)
    calls: list[tuple[str, bool]] = []  # (order, whether the ERP had it committed then)
    start_handling = shop.fake._on_start_handling

    def checked(request: object, body: object, order_id: str) -> object:
        calls.append((order_id, bool(shop.erp_rows("orders", channel_order_id=order_id))))
        return start_handling(request, body, order_id)

    shop.fake._on_start_handling = checked  # the fake dispatches to its instance's handlers
    [result] = shop.run("pull-orders")

    assert result.outcome is Outcome.ok
    assert sorted(calls) == [(order_id, True) for order_id in sorted(placed)]


def test_a_failed_read_leaves_that_orders_event_and_the_rest_are_imported(shop: Shop) -> None:
    ready_shop(shop)
    placed = place_orders(shop, 12)
    broken = placed[4]
    shop.fake.faults.add(method="GET", path_prefix=ORDER_PATH + broken, status=404, times=None)

    [result] = shop.run("pull-orders")

    assert (result.outcome, result.sent, [f.key for f in result.failures]) == (Outcome.failed, 11, [broken])
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed) if order_id != broken]
    assert queued(shop, broken) == ["ready-for-handling"]  # its handle was not committed
    assert shop.fake.orders[broken]["status"] == "ready-for-handling"  # nor was it started
    assert not shop.requests("POST", f"{broken}/start-handling")

    shop.fake.faults.clear()
    shop.clock.advance(seconds=301)  # the uncommitted event becomes visible again
    [again] = shop.run("pull-orders")

    assert (again.outcome, again.sent) == (Outcome.ok, 1)
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed)]
    assert shop.fake._feed == {}


def test_an_outage_while_reading_stops_the_reads_not_started_and_the_next_run_imports_once(shop: Shop) -> None:
    ready_shop(shop)
    placed = place_orders(shop, 10)  # one lot, more orders than the channel's 8 workers
    shop.fake.faults.add(method="GET", path_prefix=ORDER_PATH, status=503, times=None)

    [result] = shop.run("pull-orders")

    assert result.outcome is Outcome.unavailable
    assert len(set(order_reads(shop))) < len(placed)  # reads waiting for a worker never went out
    assert sales(shop) == [] and len(shop.fake._feed) == len(placed)

    shop.fake.faults.clear()
    shop.clock.advance(seconds=301)
    assert shop.run("pull-orders")[0].sent == len(placed)
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed)]


def test_the_event_our_start_handling_caused_is_committed_without_reading_the_order(shop: Shop) -> None:
    ready_shop(shop)
    [order_id] = place_orders(shop, 1)

    [result] = shop.run("pull-orders")

    assert (result.outcome, result.sent) == (Outcome.ok, 1)
    [order] = shop.erp_rows("orders", channel_order_id=order_id)
    assert order["status"] == "handling"  # recorded once VTEX answered start-handling
    assert json.loads(order["raw"])["status"] == "ready-for-handling"  # the order as it was read
    assert len(order_reads(shop, order_id)) == 1  # the `handling` event was not read
    assert shop.fake._feed == {}

    shop.fake.emit_event(order_id)  # the same status again (at-least-once delivery)
    shop.run("pull-orders")
    assert len(order_reads(shop, order_id)) == 1 and shop.fake._feed == {}


def test_an_event_naming_a_status_the_erp_does_not_hold_is_read(shop: Shop) -> None:
    ready_shop(shop)
    [order_id] = place_orders(shop, 1)
    shop.run("pull-orders")
    shop.fake.set_order_status(order_id, "canceled")

    [result] = shop.run("pull-orders")

    assert (result.outcome, result.sent) == (Outcome.ok, 1)
    assert len(order_reads(shop, order_id)) == 2
    [order] = shop.erp_rows("orders", channel_order_id=order_id)
    assert order["status"] == "canceled"
    assert shop.erp_sql("SELECT SUM(delta) FROM stock_moves WHERE order_id IS NOT NULL") == [(0,)]


def test_a_ready_event_is_read_even_when_the_erp_has_the_order(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that stopped between its ERP commit and start-handling: only the order's
    current status says start-handling is still to do."""
    ready_shop(shop)
    [order_id] = place_orders(shop, 1)

    def killed(*_: object) -> None:
        raise SystemExit("killed before start-handling")

    with monkeypatch.context() as patch:
        patch.setattr(VtexChannel, "after_import", killed)
        with pytest.raises(SystemExit):
            shop.run("pull-orders")
    [order] = shop.erp_rows("orders", channel_order_id=order_id)
    assert order["status"] == "approved" and shop.fake.orders[order_id]["status"] == "ready-for-handling"

    shop.clock.advance(seconds=301)
    [result] = shop.run("pull-orders")

    assert result.outcome is Outcome.ok
    assert shop.fake.orders[order_id]["status"] == "handling"
    assert shop.erp_rows("orders", channel_order_id=order_id)[0]["status"] == "handling"
    assert sales(shop) == [(order_id, 1)]


def test_a_status_the_erp_could_not_record_leaves_the_event_uncommitted(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_shop(shop)
    [order_id] = place_orders(shop, 1)

    import_orders = SqlErp.import_orders

    def refused_for_moves(erp: SqlErp, channel: str, batch: list[Order], **rules: Any) -> list:
        if all(order.raw is None for order in batch):  # the statuses start-handling made (moved_to)
            raise ErpError("ERP database: disk I/O error")
        return import_orders(erp, channel, batch, **rules)

    with monkeypatch.context() as patch:
        patch.setattr(SqlErp, "import_orders", refused_for_moves)
        [result] = shop.run("pull-orders")

    assert (result.outcome, [f.key for f in result.failures]) == (Outcome.failed, [order_id])
    assert queued(shop, order_id) == ["ready-for-handling"]
    # The `handling` event named a status the ERP did not hold: it was read, and recorded.
    assert shop.erp_rows("orders", channel_order_id=order_id)[0]["status"] == "handling"

    shop.clock.advance(seconds=301)
    [again] = shop.run("pull-orders")

    assert (again.outcome, again.sent) == (Outcome.ok, 0)
    assert len(shop.requests("POST", f"{order_id}/start-handling")) == 1
    assert sales(shop) == [(order_id, 1)] and shop.fake._feed == {}


def test_a_run_reads_the_feed_for_a_bounded_time_and_the_next_run_takes_the_rest(shop: Shop) -> None:
    ready_shop(shop)
    placed = place_orders(shop, 60)
    read_feed = shop.fake._on_read_feed

    def slow(request: object, body: object) -> object:  # each feed read takes half the run's time
        shop.clock.advance(seconds=FEED_READ_S / 2)
        return read_feed(request, body)

    shop.fake._on_read_feed = slow
    [first] = shop.run("pull-orders")
    shop.fake._on_read_feed = read_feed

    # Rounds of 1, then 2 lots started within the bound; no third round.
    assert (first.outcome, first.sent) == (Outcome.ok, 30)
    assert first.notes == [f"read the feed for {FEED_READ_S} s: the rest come next run"]
    assert len(sales(shop)) == 30

    [second] = shop.run("pull-orders")

    assert (second.outcome, second.sent, second.notes) == (Outcome.ok, 30, [])
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed)]
    assert shop.fake._feed == {}


def test_an_order_the_erp_refuses_fails_alone_and_the_rest_of_its_batch_is_imported(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_shop(shop)
    placed = place_orders(shop, 10)  # one feed lot: one batch, one ERP transaction
    refused = placed[3]
    insert_lines = erp_orders._insert_lines

    def fails_for_one(conn: Any, order_id: int, lines: Any) -> None:
        insert_lines(conn, order_id, lines)  # the order's row and lines are written, then:
        if conn.scalar(select(orders.c.channel_order_id).where(orders.c.id == order_id)) == refused:
            conn.exec_driver_sql("SELECT * FROM no_such_table")  # the database refuses the statement

    monkeypatch.setattr(erp_orders, "_insert_lines", fails_for_one)
    [result] = shop.run("pull-orders")

    assert (result.outcome, result.sent, [f.key for f in result.failures]) == (Outcome.failed, 9, [refused])
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed) if order_id != refused]
    assert not shop.erp_rows("orders", channel_order_id=refused)  # its savepoint undone, rows and all
    assert shop.erp_sql("SELECT COUNT(*) FROM order_items") == [(9,)]
    assert not shop.requests("POST", f"{refused}/start-handling")
    assert queued(shop, refused) == ["ready-for-handling"]

    monkeypatch.undo()
    shop.clock.advance(seconds=301)
    [again] = shop.run("pull-orders")
    assert (again.outcome, again.sent) == (Outcome.ok, 1)
    assert sales(shop) == [(order_id, 1) for order_id in sorted(placed)]


@pytest.mark.parametrize(
    ("state", "held", "news"),
    [
        ("handling", OrderStatus.handling, False),  # the event our own start-handling caused
        ("invoiced", OrderStatus.invoiced, False),
        ("canceled", OrderStatus.canceled, False),
        ("handling", OrderStatus.approved, True),  # started elsewhere: the ERP must follow
        ("canceled", OrderStatus.handling, True),
        ("handling", None, True),  # not in the ERP: import it
        ("ready-for-handling", OrderStatus.approved, True),  # start-handling may be still to do
        ("cancellation-requested", OrderStatus.handling, True),  # no ERP status of its own
        (None, OrderStatus.handling, True),
    ],
)
def test_which_events_bring_news(state: str | None, held: OrderStatus | None, news: bool) -> None:
    assert brings_news(state, held) is news


def test_order_statuses_answers_for_the_orders_the_erp_has(shop: Shop) -> None:
    ready_shop(shop)
    handled, canceled = place_orders(shop, 2)
    shop.run("pull-orders")
    shop.fake.set_order_status(canceled, "canceled")
    shop.run("pull-orders")
    erp = open_erp(shop.erp_url)
    try:
        statuses = erp.order_statuses("vtex-main", [handled, canceled, "never-imported"])
        assert erp.order_statuses("another-channel", [handled]) == {}
    finally:
        erp.close()
    assert statuses == {handled: OrderStatus.handling, canceled: OrderStatus.canceled}


# -- concurrently -------------------------------------------------------------------------


def test_concurrently_returns_results_in_order_with_or_without_workers() -> None:
    with ThreadPoolExecutor(4) as workers:
        assert concurrently(workers, lambda n: n * n, range(10)) == [n * n for n in range(10)]
    assert concurrently(None, str, [1, 2]) == ["1", "2"]


def test_concurrently_starts_nothing_more_once_a_call_failed() -> None:
    called = []

    def call(n: int) -> int:
        called.append(n)
        if n == 0:
            raise ConnectionError("the channel is down")
        return n

    with ThreadPoolExecutor(1) as one_worker, pytest.raises(ConnectionError):
        concurrently(one_worker, call, range(5))
    assert called == [0]

