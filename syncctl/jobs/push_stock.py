"""push-stock: per channel, the approved balances of the warehouses it lists,
minus its reserve, never below zero."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from syncctl.domain import Feature, StockLevel
from syncctl.jobs.incremental import Changes
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run
from syncctl.jobs.valid import valid_stock


def sellable(levels: Iterable[StockLevel], reserve: int) -> Iterator[StockLevel]:
    for level in levels:
        yield StockLevel(level.sku, max(0, level.quantity - reserve))


def push_stock(run: Run) -> None:
    push(run, stock_spec(run))


def stock_spec(run: Run) -> PushSpec[StockLevel]:
    channel, stock, erp = run.channel, run.channel.settings.stock, run.rt.erp

    def levels(skus: Collection[str] | None) -> Iterator[StockLevel]:
        return sellable(erp.stock_levels(stock.from_warehouses, skus), stock.reserve)

    return PushSpec(
        feature=Feature.stock.value,
        items=levels(run.options.skus or None),
        key=lambda level: level.sku,
        payload=lambda level: channel.stock_payload(valid_stock(level)),
        send=channel.push_stock,
        summary=lambda level: str(level.quantity),
        prepare=channel.prepare_skus,
        changes=Changes(
            read=levels,
            changed=lambda since, _until, limit: erp.changed_stock(stock.from_warehouses, since, limit),
            keys_after=erp.sellable_skus,
        ),
    )
