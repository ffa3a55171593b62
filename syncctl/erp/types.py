"""Column types that keep money exact and times in UTC on every backend.

On PostgreSQL they are plain NUMERIC(p, s) and timestamptz. SQLite has neither: it
would turn a NUMERIC '0.10' into a binary float and compare times as text, so there
both are stored as TEXT in one fixed format (exact digits; ISO-8601 UTC with
microseconds, which sorts and compares correctly as text).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, Text, TypeDecorator
from sqlalchemy.types import TypeEngine

from syncctl.domain import utc


def _stored_as_text(dialect: Dialect) -> bool:
    return dialect.name == "sqlite"


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal with `scale` places, read back quantized; never a binary float.

    On SQLite the value is TEXT, so SQL must not compare or add these columns there.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _stored_as_text(dialect):
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = self._exact(value)
        return str(exact) if _stored_as_text(dialect) else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else self._exact(value)

    def _exact(self, value: object) -> Decimal:
        # A float can only come from an ERP that stored REAL: its repr is the shortest
        # decimal that reads back as the same float, i.e. what the user typed.
        text = repr(value) if isinstance(value, float) else str(value)
        number = Decimal(text)
        # PostgreSQL numeric holds NaN and Infinity: passed on (quantizing Infinity raises)
        # for the job to refuse by the item's name, not to end the whole read.
        return number.quantize(self._quantum) if number.is_finite() else number


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; naive input is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _stored_as_text(dialect):
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        moment = utc(value)
        return moment.isoformat(timespec="microseconds") if _stored_as_text(dialect) else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


MONEY = ExactDecimal(14, 2)
