"""The scenarios of issue 6. Each returns one dict of figures per repetition; syncctl
runs through its CLI in a process of its own (measure.py), the stores in this one."""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from benchmarks.catalogue import sku_code
from benchmarks.measure import Measured, run_module, syncctl
from benchmarks.serving import Store, Tally, open_store
from benchmarks.workspace import CHANNELS, ENV, Workspace, now_utc, vtex_sku_id
from syncctl.channels.vtex import FEED_RETENTION_S, FEED_STATUSES
from syncctl.erp import schema
from syncctl.erp.db import create_erp_engine, writing

Figures = dict[str, Any]


@dataclass(frozen=True)
class Conditions:
    """The network the stores simulate, and how syncctl is configured for it."""

    latency_s: float
    limit_per_s: float  # the stores' rate limit
    client_share: float  # syncctl's rate_per_s as a share of the limit (a margin below it)
    concurrency: int

    @property
    def client_rate(self) -> float:
        return self.limit_per_s * self.client_share


@dataclass
class Lab:
    workspace: Workspace
    stores: list[Store]
    conditions: Conditions
    failed_items: int = 0  # any, and the workspace is not reused: its state no longer matches the ERP

    def reset(self) -> None:
        for store in self.stores:
            store.network.reset()

    def tallies(self) -> list[Tally]:
        return [store.network.tally for store in self.stores]

    def syncctl(self, *args: str) -> Measured:
        measured = syncctl(self.workspace.config_path, *args, env=ENV)
        if measured.exit_code not in (0, 1):
            raise RuntimeError(f"syncctl {' '.join(args)} exited {measured.exit_code}: {measured.output}")
        self.failed_items += _failed(measured)
        return measured


@contextmanager
def lab(root: Path, size: int, conditions: Conditions, *, rebuild: bool = False) -> Iterator[Lab]:
    """Two stores on loopback and a workspace of `size` SKUs, built or reused; one
    unmeasured run-all first (it creates the feed configurations and sets the orders
    backstop's cursor, as any earlier run would have)."""
    stores = [open_store(latency_s=conditions.latency_s, rate_per_s=conditions.limit_per_s) for _ in CHANNELS]
    workspace = Workspace(root / f"size-{size}", size)
    settings = {"rate_per_s": conditions.client_rate, "concurrency": conditions.concurrency}
    now = now_utc()
    try:
        if rebuild or not workspace.ready(now):
            workspace.build(stores, now, **settings)
        workspace.write_config(stores, **settings)
        primed_at = workspace.primed_at()
        workspace.mark(primed_at, clean=False)  # until the scenarios leave it consistent
        here = Lab(workspace, stores, conditions)
        warm_up = here.syncctl("run-all")
        if warm_up.exit_code != 0:
            raise RuntimeError(f"the warm-up run-all failed: {warm_up.output}")
        yield here
        workspace.mark(primed_at, clean=not here.failed_items)
    finally:
        for store in stores:
            store.stop()


# -- 1. no-op ---------------------------------------------------------------------------------------


def noop(lab: Lab, runs: int) -> list[Figures]:
    """run-all on both channels with nothing changed and nothing due."""
    figures = []
    for _ in range(runs):
        lab.reset()
        measured = lab.syncctl("run-all")
        tallies = lab.tallies()
        figures.append({
            "wall_s": measured.wall_s, "peak_rss_mb": measured.peak_rss_mb, "cpu_s": measured.cpu_s,
            "writes": sum(t.writes for t in tallies),
            "reads": sum(t.requests - t.writes for t in tallies),
            "items_sent": _sent(measured), "items_failed": _failed(measured),
        })
    return figures


# -- 2. incremental -----------------------------------------------------------------------------------


PRICE_EDIT_EVERY = 4  # of the changed SKUs, every fourth also gets a new list price


def incremental(lab: Lab, runs: int, changed: int = 100) -> list[Figures]:
    """`changed` SKUs get stock (a receipt of 50 units) and a quarter of them a new
    price; then run-all. Measured: from the ERP commit to the last write the stores
    accepted, and whether exactly the expected writes went out."""
    figures = []
    # Not SKUs with a price schedule: a new list price could win over it and be held as a deep cut.
    plain = [index for index in range(lab.workspace.size) if index % 10 not in (2, 7)]
    for repetition in range(runs):
        skus = [sku_code(index) for index in sorted(random.Random(repetition).sample(plain, changed))]
        lab.reset()
        committed = _receive_and_reprice(lab.workspace.erp_url, skus)
        measured = lab.syncctl("run-all")
        tallies = lab.tallies()
        last = max(t.last_accepted_write or committed for t in tallies)
        repriced = len(skus[::PRICE_EDIT_EVERY])
        figures.append({
            "to_last_accepted_s": last - committed, "wall_s": measured.wall_s, "peak_rss_mb": measured.peak_rss_mb,
            "writes": sum(t.writes for t in tallies), "expected_writes": len(CHANNELS) * (len(skus) + repriced),
            "items_sent": _sent(measured), "items_failed": _failed(measured),
        })
    return figures


def _receive_and_reprice(erp_url: str, skus: list[str]) -> float:
    """One ERP transaction; returns time.monotonic() once it is committed."""
    now = now_utc()
    engine = create_erp_engine(erp_url)
    try:
        with writing(engine) as conn:
            conn.execute(insert(schema.stock_moves), [
                {"warehouse": "CD-SP", "sku": sku, "delta": 50, "reason": "receipt", "order_id": None, "created_at": now}
                for sku in skus
            ])
            repriced = skus[::PRICE_EDIT_EVERY]
            prices = schema.prices
            listed = dict(conn.execute(select(prices.c.sku, prices.c.list_price).where(prices.c.sku.in_(repriced))).all())
            for sku, price in listed.items():
                conn.execute(prices.update().where(prices.c.sku == sku).values(
                    list_price=price + Decimal("1.00"), updated_at=now,
                ))
        return time.monotonic()
    finally:
        engine.dispose()


# -- 3 and 4. full push, naive baseline, client cost ----------------------------------------------------


def full_push(lab: Lab, runs: int) -> list[Figures]:
    """push-stock --full on one channel: every SKU is sent."""
    figures = []
    for _ in range(runs):
        lab.reset()
        serving = _cpu_here()
        measured = lab.syncctl("push-stock", "--full", "--channel", CHANNELS[0])
        serving = _cpu_here() - serving  # this process only serves the stores meanwhile
        tally = lab.tallies()[0]
        window = (tally.last_accepted_write or 0) - (tally.first_request or 0)
        figures.append({
            "requests": tally.requests, "refused": tally.refused, "window_s": window,
            "requests_per_s": tally.writes / window, "share_of_limit": tally.writes / window / lab.conditions.limit_per_s,
            "wall_s": measured.wall_s, "requests_per_s_wall": tally.requests / measured.wall_s,
            "cpu_s": measured.cpu_s, "cpu_s_per_1000_requests": measured.cpu_s / tally.requests * 1000,
            "server_cpu_s_per_1000_requests": serving / tally.requests * 1000,
            "peak_rss_mb": measured.peak_rss_mb, "items_sent": _sent(measured),
        })
    return figures


def naive(lab: Lab, runs: int, count: int) -> list[Figures]:
    """The hand-written loop against the same store, for its first `count` SKUs."""
    figures = []
    for _ in range(runs):
        lab.reset()
        measured = run_module("benchmarks.naive", [lab.workspace.erp_url, lab.stores[0].url, str(count)], {})
        loop = measured.output
        figures.append({
            "requests": loop["requests"], "seconds": loop["seconds"], "requests_per_s": loop["requests"] / loop["seconds"],
            "cpu_s_per_1000_requests": measured.cpu_s / loop["requests"] * 1000,
        })
    return figures


# -- 5. orders -----------------------------------------------------------------------------------------


def orders(lab: Lab, runs: int, count: int) -> list[Figures]:
    """`count` new orders wait in the store's feed; pull-orders runs until the feed is
    empty. A run reads the feed for at most a minute (vtex.FEED_READ_S), and each import
    queues a "handling" event behind the orders (start-handling), so a run may bring no
    new order while events still wait: the feed's backlog, not a run's result, says when
    it is done."""
    store = lab.stores[0]
    runs_enough = 2 * count // 2000 + 2  # two events per order; a run reads far more than 2,000 in a minute
    store.fake.configure_feed(FEED_STATUSES, visibility_timeout_s=300, retention_s=FEED_RETENTION_S)
    figures = []
    for repetition in range(runs):
        rng = random.Random(1000 + repetition)
        for _ in range(count):
            sku = sku_code(rng.randrange(lab.workspace.size))
            store.fake.add_order(items=[(vtex_sku_id(sku), sku, f"Item {sku}", rng.randint(1, 3), 4990)],
                                 shipping_cents=1500)
        lab.reset()
        walls, rss, cpu = [], [], []
        before, serving = _orders_in(lab.workspace.erp_url), _cpu_here()
        while store.fake.feed_backlog():
            if len(walls) > runs_enough:
                raise RuntimeError(f"{store.fake.feed_backlog()} feed events left after {len(walls)} pull-orders runs")
            measured = lab.syncctl("pull-orders", "--channel", CHANNELS[0])
            walls.append(measured.wall_s)
            rss.append(measured.peak_rss_mb)
            cpu.append(measured.cpu_s)
        serving = _cpu_here() - serving
        imported = _orders_in(lab.workspace.erp_url) - before
        requests = store.network.tally.requests
        figures.append({
            "orders": imported, "runs": len(walls), "wall_s": sum(walls), "orders_per_s": imported / sum(walls),
            "cpu_ms_per_order": sum(cpu) / imported * 1000, "server_cpu_ms_per_order": serving / imported * 1000,
            "peak_rss_mb": max(rss), "first_run_rss_mb": rss[0], "last_run_rss_mb": rss[-1],
            "requests": requests, "requests_per_order": requests / imported,
            "limit_per_s": lab.conditions.limit_per_s, "refused": store.network.tally.refused,
        })
    return figures


def _cpu_here() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _orders_in(erp_url: str) -> int:
    engine = create_erp_engine(erp_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(schema.orders)) or 0
    finally:
        engine.dispose()


def _sent(measured: Measured) -> int:
    return sum(result["sent"] for result in measured.output["results"])


def _failed(measured: Measured) -> int:
    return sum(result["failed"] for result in measured.output["results"])
