"""pull-orders: new orders into the ERP exactly once, with their stock debit;
later status changes update them.

For each batch: import its orders in one ERP transaction (keyed by the channel's
order id; an order the ERP refuses fails alone, the rest go in); once that is
committed, tell the channel (e.g. start-handling), several orders at once up to the
channel's concurrency; record in the ERP, in one transaction, the statuses those
calls moved orders to; then save the cursor and acknowledge all but the failed
orders. A crash anywhere leaves the batch unacknowledged: it is read again and the
ERP's unique key makes the second import a no-op.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from syncctl.channels.base import Channel, OrderBatch, concurrently
from syncctl.domain import ImportOutcome, Order
from syncctl.errors import ErpError, RecordRejected
from syncctl.jobs.runner import Run
from syncctl.redact import redact

JOB = "pull-orders"


@dataclass
class Imported:
    """One channel order's entries in a batch, in order, as the ERP took them in."""

    order_id: str
    orders: list[Order] = field(default_factory=list)
    outcomes: list[ImportOutcome] = field(default_factory=list)


Told = tuple[Imported, list[Order] | RecordRejected]  # and the orders after_import moved, or its refusal


def pull_orders(run: Run) -> None:
    channel, state, result = run.channel, run.rt.state, run.result
    cursor = state.cursor(run.name, JOB)
    # A cursor covers every order read before it in the run (date windows read in
    # pages): it moves only while none of them has failed.
    any_failed = False
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix=run.name) as workers:
        channel.workers = workers
        try:
            for batch in channel.pull_orders(cursor, run.options.since):
                result.notes += batch.notes
                if run.options.dry_run:
                    result.planned += [_plan(order) for order in batch.orders]
                    result.sent += len(batch.orders)
                    continue
                failed = _take_in(run, batch)
                imported = [o.channel_order_id for o in batch.orders if o.channel_order_id not in failed]
                state.clear_failures(run.name, JOB, imported)
                any_failed = any_failed or bool(failed)
                if batch.cursor is not None and not any_failed:
                    state.set_cursor(run.name, JOB, batch.cursor)
                channel.acknowledge(batch, failed)
        finally:
            channel.workers = None


def _take_in(run: Run, batch: OrderBatch) -> set[str]:
    """Import the batch's orders and, once they are committed, tell the channel about
    them (on the workers); the ids that failed."""
    result, channel = run.result, run.channel
    failed: set[str] = set()
    for order_id, why in batch.unreadable.items():
        _fail(run, failed, order_id, why)
    imported = _import_all(run, batch.orders, failed)
    told = concurrently(channel.workers, partial(_tell_channel, channel), imported)
    moved: list[Order] = []
    for group, answer in told:
        if isinstance(answer, RecordRejected):
            _fail(run, failed, group.order_id, answer)
        else:
            moved += answer
    _record_moves(run, moved, failed)
    for group, _ in told:
        if group.order_id in failed:
            continue
        for outcome in group.outcomes:
            if outcome.created or outcome.status_changed:
                result.sent += 1
            else:
                result.unchanged += 1
    return failed


def _import_all(run: Run, orders: list[Order], failed: set[str]) -> list[Imported]:
    """Each channel order's entries the ERP took in; the ids of those it refused, or
    that are not fit to import, are added to `failed` instead."""
    fit = []
    for order in orders:
        problem = _problem(order)
        if problem:
            _fail(run, failed, order.channel_order_id, RecordRejected(problem))
        else:
            fit.append(order)
    groups: dict[str, Imported] = {}
    for order, outcome in _import_batch(run, fit):
        if isinstance(outcome, ErpError):
            _fail(run, failed, order.channel_order_id, outcome)
            continue
        _notice(run, order, outcome)
        group = groups.setdefault(order.channel_order_id, Imported(order.channel_order_id))
        group.orders.append(order)
        group.outcomes.append(outcome)
    return list(groups.values())


def _record_moves(run: Run, moved: list[Order], failed: set[str]) -> None:
    """The statuses the channel moved orders to; an order whose status the ERP could
    not record fails: its events come back, and it is read again."""
    for order, outcome in _import_batch(run, moved):
        if isinstance(outcome, ErpError):
            _fail(run, failed, order.channel_order_id, outcome)
        else:
            _notice(run, order, outcome)


def _import_batch(run: Run, orders: list[Order]) -> list[tuple[Order, ImportOutcome | ErpError]]:
    """Each order with what the ERP did with it, all in one transaction."""
    if not orders:
        return []
    try:
        outcomes = run.rt.erp.import_orders(run.name, orders, **_stock_rules(run))
    except ErpError as exc:  # the transaction as a whole failed: none of them is in
        outcomes = [exc] * len(orders)
    return list(zip(orders, outcomes, strict=True))


def _fail(run: Run, failed: set[str], order_id: str, why: Exception | str) -> None:
    failed.add(order_id)
    run.result.fail(order_id, redact(why))


def _stock_rules(run: Run) -> dict[str, Any]:
    return {
        "debit_warehouse": run.channel.settings.stock.debit_warehouse,
        "debits_stock": run.rt.config.erp.debits_stock,
    }


def _notice(run: Run, order: Order, outcome: ImportOutcome) -> None:
    if outcome.flag:
        run.rt.state.add_notice(run.name, JOB, order.channel_order_id, outcome.flag, run.now)


def _tell_channel(channel: Channel, group: Imported) -> Told:
    """after_import for one order's entries, in order (on a worker thread): the orders
    at the status the calls moved them to, or why the channel refused."""
    moved = []
    for order, outcome in zip(group.orders, group.outcomes):
        try:
            now_at = channel.after_import(order, outcome)
        except RecordRejected as exc:
            return group, exc
        if now_at is not None:
            moved.append(now_at)
    return group, moved


def _problem(order: Order) -> str | None:
    if not order.lines:
        return f"order {order.channel_order_id} has no items"
    unknown = [line.channel_item_id or "?" for line in order.lines if not line.sku]
    if unknown:
        return f"order {order.channel_order_id}: items {', '.join(unknown)} have no ERP sku (RefId)"
    return None


def _plan(order: Order) -> dict:
    return {
        "key": order.channel_order_id,
        "status": order.status.value,
        "total": str(order.total),
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in order.lines],
    }
