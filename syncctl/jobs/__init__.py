"""The jobs, generic over channels and carriers, in run-all's order."""

from syncctl.domain import Feature
from syncctl.jobs.pull_orders import pull_orders
from syncctl.jobs.push_invoices import push_invoices
from syncctl.jobs.push_prices import push_prices
from syncctl.jobs.push_products import push_products
from syncctl.jobs.push_stock import push_stock
from syncctl.jobs.runner import JobOptions, JobSpec, run_on_carrier, run_on_channel
from syncctl.jobs.sync_sac import sync_sac
from syncctl.jobs.track import track

PULL_ORDERS = JobSpec("pull-orders", Feature.orders, pull_orders)
CHANNEL_JOBS = (
    PULL_ORDERS,
    JobSpec("push-products", Feature.products, push_products),
    JobSpec("push-stock", Feature.stock, push_stock),
    JobSpec("push-prices", Feature.prices, push_prices),
    JobSpec("push-invoices", Feature.order_updates, push_invoices),
    JobSpec("sync-sac", Feature.sac, sync_sac),
)
TRACK = JobSpec("track", None, track)
JOBS_BY_NAME = {spec.name: spec for spec in (*CHANNEL_JOBS, TRACK)}

__all__ = ["CHANNEL_JOBS", "JOBS_BY_NAME", "PULL_ORDERS", "TRACK", "JobOptions", "JobSpec", "run_on_carrier", "run_on_channel"]
