"""pull-orders: new orders into the ERP exactly once, with their stock debit;
later status changes update them.

For each batch: import every order (one ERP transaction each, keyed by the
channel's order id), tell the channel (e.g. start-handling), then save the cursor
and acknowledge. A crash anywhere leaves the batch unacknowledged: it is read
again and the ERP's unique key makes the second import a no-op.
"""

from __future__ import annotations

from syncctl.domain import Order
from syncctl.errors import ErpError, RecordRejected
from syncctl.jobs.runner import Run
from syncctl.redact import redact

JOB = "pull-orders"


def pull_orders(run: Run) -> None:
    channel, state, result = run.channel, run.rt.state, run.result
    settings = channel.settings
    cursor = state.cursor(run.name, JOB)
    # A cursor covers every order read before it in the run (date windows read in
    # pages): it moves only while none of them has failed.
    any_failed = False
    for batch in channel.pull_orders(cursor, run.options.since):
        result.notes += batch.notes
        if run.options.dry_run:
            result.planned += [_plan(order) for order in batch.orders]
            result.sent += len(batch.orders)
            continue
        failed = set(batch.unreadable)
        for order_id, why in batch.unreadable.items():
            result.fail(order_id, redact(why))
        for order in batch.orders:
            try:
                problem = _problem(order)
                if problem:
                    raise RecordRejected(problem)
                outcome = run.rt.erp.import_order(
                    run.name, order,
                    debit_warehouse=settings.stock.debit_warehouse,
                    debits_stock=run.rt.config.erp.debits_stock,
                )
                if outcome.flag:
                    state.add_notice(run.name, JOB, order.channel_order_id, outcome.flag, run.now)
                channel.after_import(order, outcome)
            except (RecordRejected, ErpError) as exc:
                failed.add(order.channel_order_id)
                result.fail(order.channel_order_id, redact(exc))
                continue
            if outcome.created or outcome.status_changed:
                result.sent += 1
            else:
                result.unchanged += 1
        imported = [o.channel_order_id for o in batch.orders if o.channel_order_id not in failed]
        state.clear_failures(run.name, JOB, imported)
        any_failed = any_failed or bool(failed)
        if batch.cursor is not None and not any_failed:
            state.set_cursor(run.name, JOB, batch.cursor)
        channel.acknowledge(batch, failed)


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
