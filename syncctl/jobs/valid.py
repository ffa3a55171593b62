"""ERP values no channel can take, caught before a channel's mapper sees them. Each
fails its own item with a message naming it; the same rules hold for every channel."""

from __future__ import annotations

from syncctl.domain import EffectivePrice, Product, StockLevel
from syncctl.errors import RecordRejected
from syncctl.gtin import gtin_problem

MAX_QUANTITY = 2**31 - 1  # channels keep stock in 32-bit integers


def valid_product(product: Product) -> Product:
    problem = product.ean and gtin_problem(product.ean)
    if problem:
        raise RecordRejected(f"SKU {product.sku}: EAN {problem}; fix it in the ERP, or clear it")
    return product


def valid_stock(level: StockLevel) -> StockLevel:
    if level.quantity > MAX_QUANTITY:
        raise RecordRejected(
            f"SKU {level.sku}: sellable quantity {level.quantity} is more than a channel can hold "
            f"({MAX_QUANTITY}); check the SKU's counts in the ERP"
        )
    return level


def valid_price(price: EffectivePrice) -> EffectivePrice:
    for name, value in (("list price", price.list_price), ("sale price", price.sale_price)):
        # NaN and Infinity come from PostgreSQL numeric columns; comparing NaN would raise.
        if value is not None and (not value.is_finite() or value <= 0):
            raise RecordRejected(f"SKU {price.sku}: {name} {value} is not a price (it must be above 0); fix it in the ERP")
    return price
