"""track: ask each carrier where every parcel not yet final is; write the normalized
status and the event history to the ERP.

Shipments whose status is final (delivered, returned) are not selected, so they are
never asked about again; those shipped more than the carrier's `track_days` ago are
left alone (counted as skipped). Events go in under the ERP's unique key, so asking
twice records nothing twice. The status is that of the newest event the carrier still
stands by (the adapter has already dropped voided ones); `delivered_at` is set only
when that event is a delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from syncctl.carriers.base import Carrier, Tracking
from syncctl.carriers.normalize import latest
from syncctl.domain import FINAL_DELIVERY, DeliveryStatus, Shipment
from syncctl.jobs.push import chunked
from syncctl.jobs.result import JobResult
from syncctl.jobs.runner import Run


def track(run: Run) -> None:
    carrier: Carrier = run.adapter
    oldest = run.now - timedelta(days=carrier.track_days)
    for batch in chunked(run.rt.erp.shipments_to_track(run.name), carrier.batch_size):
        by_code = _by_code(batch, oldest, run.result)
        if not by_code:
            continue
        tracked = []
        for tracking in carrier.track(list(by_code)):
            for shipment in by_code.get(tracking.code, ()):
                if _record(run, shipment, tracking):
                    tracked.append(tracking.code)
        if tracked and not run.options.dry_run:
            run.rt.state.clear_failures(run.name, run.result.job, tracked)


def _by_code(shipments: Iterable[Shipment], oldest: datetime, result: JobResult) -> dict[str, list[Shipment]]:
    """The batch's shipments by tracking code (two shipments may share a parcel),
    without those shipped too long ago."""
    by_code: dict[str, list[Shipment]] = {}
    for shipment in shipments:
        assert shipment.tracking_code  # shipments_to_track selects only shipments with one
        if shipment.shipped_at is not None and shipment.shipped_at < oldest:
            result.skipped += 1
            continue
        by_code.setdefault(shipment.tracking_code, []).append(shipment)
    return by_code


def _record(run: Run, shipment: Shipment, tracking: Tracking) -> bool:
    """Write what the carrier said of one shipment; False when it refused the code."""
    result, code = run.result, tracking.code
    if tracking.error:
        result.fail(code, tracking.error)
        return False
    newest = latest(tracking.events)
    if newest is None:  # known to the carrier, nothing happened yet
        result.unchanged += 1
        return True
    status = newest.status
    delivered_at = newest.occurred_at if status is DeliveryStatus.delivered else None
    if run.options.dry_run:
        result.planned.append({"key": code, "status": status.value, "events": len(tracking.events)})
        return True
    new = run.rt.erp.record_tracking(shipment.id, tracking.events, status, delivered_at)
    if new or status is not shipment.delivery_status:
        result.sent += 1
    else:
        result.unchanged += 1
    if status in FINAL_DELIVERY:
        result.notes.append(f"{code}: {status.value}, no longer asked")
    return True
