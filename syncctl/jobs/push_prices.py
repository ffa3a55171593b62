"""push-prices: the price in force now (list, promotion, schedule), computed at run
time so a scheduled price or a promotion's start and end go out at the first run
after they happen; cuts deeper than max_drop_pct wait for a person."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from decimal import Decimal

from syncctl.domain import EffectivePrice, Feature
from syncctl.jobs.incremental import Changes
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run
from syncctl.jobs.valid import valid_price
from syncctl.state import Pushed


def drop_guard(max_drop_pct: Decimal | None):
    """A hold rule: a selling price below the last one sent by more than max_drop_pct."""

    def hold(price: EffectivePrice, previous: Pushed | None) -> str | None:
        if max_drop_pct is None or previous is None or previous.value is None:
            return None
        before = Decimal(previous.value)
        if before <= 0:
            return None
        drop = (before - price.selling_price) / before * 100
        if drop <= max_drop_pct:
            return None
        return (
            f"held: price cut from {before} to {price.selling_price} (-{drop:.0f}%) is deeper than "
            f"max_drop_pct={max_drop_pct}; check the ERP price, then run push-prices --allow-drop to send it"
        )

    return hold


def push_prices(run: Run) -> None:
    push(run, price_spec(run))


def price_spec(run: Run) -> PushSpec[EffectivePrice]:
    channel, prices, erp, as_of = run.channel, run.channel.settings.prices, run.rt.erp, run.now

    def in_force(skus: Collection[str] | None) -> Iterator[EffectivePrice]:
        return erp.effective_prices(prices.price_list, as_of, skus)

    return PushSpec(
        feature=Feature.prices.value,
        items=in_force(run.options.skus or None),
        key=lambda price: price.sku,
        payload=lambda price: channel.price_payload(valid_price(price)),
        send=channel.push_price,
        summary=lambda price: str(price.selling_price),
        hold=drop_guard(prices.max_drop_pct),
        prepare=channel.prepare_skus,
        changes=Changes(
            read=in_force,
            changed=lambda since, until, limit: erp.changed_prices(prices.price_list, since, until, limit),
            keys_after=erp.sellable_skus,
        ),
    )
