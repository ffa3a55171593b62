"""Which price holds at a moment: the rules of contract §5, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from syncctl.domain import EffectivePrice


@dataclass(frozen=True)
class ListedPrice:
    """A row of `prices`: the price as last edited, with an optional sale window."""

    list_price: Decimal
    sale_price: Decimal | None
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ScheduledPrice:
    """The latest `price_schedules` row already started."""

    list_price: Decimal
    sale_price: Decimal | None
    starts_at: datetime


def effective_price(
    sku: str, listed: ListedPrice | None, scheduled: ScheduledPrice | None, as_of: datetime
) -> EffectivePrice | None:
    """A started schedule replaces the listed price unless the row was edited after the
    schedule started (a manual edit wins). A schedule has no sale window: its sale price
    holds until something replaces it. The listed sale price holds while
    sale_starts_at <= as_of < sale_ends_at (an open end always holds)."""
    if scheduled is not None and (
        listed is None or listed.updated_at is None or scheduled.starts_at > listed.updated_at
    ):
        return EffectivePrice(sku=sku, list_price=scheduled.list_price, sale_price=scheduled.sale_price)
    if listed is None:
        return None
    if listed.sale_price is None or not _within(as_of, listed.sale_starts_at, listed.sale_ends_at):
        return EffectivePrice(sku=sku, list_price=listed.list_price)
    return EffectivePrice(
        sku=sku,
        list_price=listed.list_price,
        sale_price=listed.sale_price,
        sale_starts_at=listed.sale_starts_at,
        sale_ends_at=listed.sale_ends_at,
    )


def _within(moment: datetime, starts: datetime | None, ends: datetime | None) -> bool:
    return (starts is None or starts <= moment) and (ends is None or moment < ends)
