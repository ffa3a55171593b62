"""push-products: basic product/SKU data, again whenever the ERP changes it."""

from __future__ import annotations

from syncctl.domain import Feature, Product
from syncctl.jobs.incremental import Changes
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run
from syncctl.jobs.valid import valid_product


def push_products(run: Run) -> None:
    push(run, product_spec(run))


def product_spec(run: Run) -> PushSpec[Product]:
    channel, erp = run.channel, run.rt.erp
    return PushSpec(
        feature=Feature.products.value,
        items=erp.sellable_products(run.options.skus or None),
        key=lambda product: product.sku,
        payload=lambda product: channel.product_payload(valid_product(product)),
        send=channel.push_product,
        group=channel.product_group,
        prepare=channel.prepare_skus,
        changes=Changes(
            read=erp.sellable_products,
            changed=lambda since, _until, limit: erp.changed_products(since, limit),
            keys_after=erp.sellable_skus,
        ),
    )
