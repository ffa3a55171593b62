"""Shipments as carriers see them: which to ask about, and what they answered."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, or_, select, update

from syncctl.domain import FINAL_DELIVERY, DeliveryStatus, Shipment, TrackingEvent
from syncctl.erp.db import chunked, insert_ignoring, stream
from syncctl.erp.schema import shipment_events, shipments
from syncctl.errors import ErpError


def shipments_to_track(conn: Connection, carrier: str) -> Iterator[Shipment]:
    statement = (
        select(shipments)
        .where(
            shipments.c.carrier == carrier,
            shipments.c.tracking_code.is_not(None),
            shipments.c.tracking_code != "",
            or_(
                shipments.c.delivery_status.is_(None),
                shipments.c.delivery_status.not_in([status.value for status in FINAL_DELIVERY]),
            ),
        )
        .order_by(shipments.c.id)
    )
    yield from map(shipment_from_row, stream(conn, statement))


def record_tracking(
    conn: Connection,
    shipment_id: int,
    events: Sequence[TrackingEvent],
    status: DeliveryStatus | None,
    delivered_at: datetime | None,
    now: datetime,
) -> int:
    """Run inside one writing transaction (see Erp.record_tracking). The shipment row is
    touched only when something changed, so a run with no news writes nothing."""
    current = conn.execute(
        select(shipments.c.delivery_status, shipments.c.delivered_at).where(shipments.c.id == shipment_id)
    ).one_or_none()
    if current is None:
        raise ErpError(f"shipment {shipment_id} is not in the ERP")
    new = sum(_append_events(conn, shipment_id, chunk) for chunk in chunked(events))
    changes: dict[str, Any] = {}
    if status is not None and status.value != current.delivery_status:
        changes["delivery_status"] = status.value
    if delivered_at is not None and delivered_at != current.delivered_at:
        changes["delivered_at"] = delivered_at
    if changes or new:
        conn.execute(update(shipments).where(shipments.c.id == shipment_id).values(**changes, updated_at=now))
    return new


def _append_events(conn: Connection, shipment_id: int, events: Sequence[TrackingEvent]) -> int:
    """How many of `events` were not stored yet (the unique key skips the others)."""
    statement = insert_ignoring(conn, shipment_events).values(
        [
            {
                "shipment_id": shipment_id,
                "occurred_at": event.occurred_at,
                "status": event.status.value,
                "code": event.code,
                "description": event.description,
                "location": event.location,
            }
            for event in events
        ]
    )
    return conn.execute(statement).rowcount


def shipment_from_row(row: Row[Any]) -> Shipment:
    return Shipment(
        id=row.id,
        order_id=row.order_id,
        carrier=row.carrier,
        tracking_code=row.tracking_code,
        tracking_url=row.tracking_url,
        shipped_at=row.shipped_at,
        delivery_status=DeliveryStatus(row.delivery_status) if row.delivery_status else None,
        delivered_at=row.delivered_at,
    )


def event_from_row(row: Row[Any]) -> TrackingEvent:
    return TrackingEvent(
        occurred_at=row.occurred_at,
        status=DeliveryStatus(row.status),
        code=row.code,
        description=row.description or "",
        location=row.location,
    )
