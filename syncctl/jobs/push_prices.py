"""push-prices: the price in force now (list, promotion, schedule), computed at run
time so a scheduled price or a promotion's start and end go out at the first run
after they happen; cuts deeper than max_drop_pct wait for a person."""

from __future__ import annotations

from decimal import Decimal

from syncctl.domain import EffectivePrice, Feature
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run
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
    channel, prices = run.channel, run.channel.settings.prices
    push(run, PushSpec(
        feature=Feature.prices.value,
        items=run.rt.erp.effective_prices(prices.price_list, run.now, run.options.skus or None),
        key=lambda price: price.sku,
        payload=channel.price_payload,
        send=channel.push_price,
        summary=lambda price: str(price.selling_price),
        hold=drop_guard(prices.max_drop_pct),
        prepare=channel.prepare_skus,
    ))
