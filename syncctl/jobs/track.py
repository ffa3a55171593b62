"""track: ask each carrier where every parcel not yet final is; write the normalized
status and the event history to the ERP."""

from __future__ import annotations

from syncctl.domain import FINAL_DELIVERY, DeliveryStatus
from syncctl.jobs.push import chunked
from syncctl.jobs.runner import Run


def track(run: Run) -> None:
    carrier, erp, result = run.adapter, run.rt.erp, run.result
    for shipments in chunked(erp.shipments_to_track(run.name), carrier.batch_size):
        by_code = {s.tracking_code: s for s in shipments}
        for tracking in carrier.track(list(by_code)):
            shipment = by_code[tracking.code]
            if tracking.error:
                result.fail(tracking.code, tracking.error)
                continue
            if not tracking.events:
                result.unchanged += 1
                continue
            last = tracking.events[-1]
            delivered_at = last.occurred_at if last.status is DeliveryStatus.delivered else None
            if run.options.dry_run:
                result.planned.append({"key": tracking.code, "status": last.status.value})
                continue
            new = erp.record_tracking(shipment.id, tracking.events, last.status, delivered_at)
            if new:
                result.sent += 1
            else:
                result.unchanged += 1
            if last.status in FINAL_DELIVERY:
                result.notes.append(f"{tracking.code}: {last.status.value}, no longer asked")
