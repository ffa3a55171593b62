"""push-stock: per channel, the approved balances of the warehouses it lists,
minus its reserve, never below zero."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from syncctl.domain import Feature, StockLevel
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run


def sellable(levels: Iterable[StockLevel], reserve: int) -> Iterator[StockLevel]:
    for level in levels:
        yield StockLevel(level.sku, max(0, level.quantity - reserve))


def push_stock(run: Run) -> None:
    channel, stock = run.channel, run.channel.settings.stock
    levels = run.rt.erp.stock_levels(stock.from_warehouses, run.options.skus or None)
    push(run, PushSpec(
        feature=Feature.stock.value,
        items=sellable(levels, stock.reserve),
        key=lambda level: level.sku,
        payload=channel.stock_payload,
        send=channel.push_stock,
        summary=lambda level: str(level.quantity),
        prepare=channel.prepare_skus,
    ))
