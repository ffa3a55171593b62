"""The ERP adapter over the integration schema, on SQLAlchemy Core (SQLite today,
PostgreSQL by URL)."""

from __future__ import annotations

from pathlib import Path


class SqlErp:
    """Implements syncctl.erp.port.Erp."""


def open_erp(url: str) -> SqlErp:
    raise NotImplementedError


def init_schema(url: str) -> None:
    """Create the integration schema (tables + the stock_balances view) on an empty database."""
    raise NotImplementedError


def check_schema(url: str) -> list[str]:
    """One message per missing table/view or column the contract names; [] when complete."""
    raise NotImplementedError


_ = Path
