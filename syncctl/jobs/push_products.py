"""push-products: basic product/SKU data, again whenever the ERP changes it."""

from __future__ import annotations

from syncctl.domain import Feature
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run


def push_products(run: Run) -> None:
    channel = run.channel
    push(run, PushSpec(
        feature=Feature.products.value,
        items=run.rt.erp.sellable_products(run.options.skus or None),
        key=lambda product: product.sku,
        payload=channel.product_payload,
        send=channel.push_product,
        group=channel.product_group,
        prepare=channel.prepare_skus,
    ))
