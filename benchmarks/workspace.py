"""A benchmark's folder: the synthetic ERP, syncctl's state file, and the config that
points two VTEX channels at two loopback stores.

The state is primed as a complete run of push-products, push-stock and push-prices
would leave it (hashes of the payloads syncctl computes, id links, change cursors),
because sending a million SKUs through a fake to get there would take hours.
Building and priming a million SKUs takes minutes, so a folder is reused while its
marker says it is complete and fresh (hashes primed less than FRESH ago: later,
items start coming due for re-assertion and a run is no longer a no-op).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from benchmarks.catalogue import build_erp, sku_code
from benchmarks.serving import APP_KEY, APP_TOKEN, Store
from syncctl import config as config_mod
from syncctl.domain import UTC
from syncctl.jobs.incremental import Cursor, settings_fingerprint
from syncctl.jobs.push import chunked, payload_hash
from syncctl.jobs.push_prices import price_spec
from syncctl.jobs.push_products import product_spec
from syncctl.jobs.push_stock import stock_spec
from syncctl.jobs.result import JobResult
from syncctl.jobs.runner import JobOptions, Run
from syncctl.runtime import Runtime

CHANNELS = ("vtex-a", "vtex-b")
ENV = {"VTEX_APP_KEY": APP_KEY, "VTEX_APP_TOKEN": APP_TOKEN}
SKU_ID_START = 1_000_000  # VTEX SKU id of SKU00000000; the fake takes any id for stock and prices
FRESH = timedelta(hours=6)
_SPECS = {"push-products": product_spec, "push-stock": stock_spec, "push-prices": price_spec}
_PRIME_BATCH = 5000
_VERSION = 2  # of the folder's layout; a marker with another is rebuilt

CONFIG = """\
# syncctl benchmark: two VTEX stores on loopback
erp:
  url: sqlite:///erp.db
state:
  path: state.db
http:
  rate_per_s: {rate}        # the channel's published limit, less a margin
  burst: 10
  concurrency: {concurrency}
channels:
{channels}"""

CHANNEL = """\
  {name}:
    type: vtex
    auto: true
    base_url: {url}
    credentials:
      app_key: ${{VTEX_APP_KEY}}
      app_token: ${{VTEX_APP_TOKEN}}
    stock: {{from_warehouses: {warehouses}, debit_warehouse: CD-SP, reserve: {reserve}}}
    options: {{account: bench, warehouse_id: "1_1"}}
"""
_CHANNEL_STOCK = {"vtex-a": ("[CD-SP, LOJA-01]", 0), "vtex-b": ("[CD-SP]", 2)}


def vtex_sku_id(sku: str) -> int:
    return SKU_ID_START + int(sku.removeprefix("SKU"))


@dataclass(frozen=True)
class Workspace:
    root: Path
    size: int

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def erp_url(self) -> str:
        return f"sqlite:///{self.root / 'erp.db'}"

    @property
    def state_path(self) -> Path:
        return self.root / "state.db"

    @property
    def _marker(self) -> Path:
        return self.root / "workspace.json"

    def write_config(self, stores: list[Store], *, rate_per_s: float, concurrency: int) -> None:
        channels = "".join(
            CHANNEL.format(name=name, url=store.url, warehouses=_CHANNEL_STOCK[name][0], reserve=_CHANNEL_STOCK[name][1])
            for name, store in zip(CHANNELS, stores, strict=True)
        )
        self.config_path.write_text(CONFIG.format(rate=rate_per_s, concurrency=concurrency, channels=channels))

    def runtime(self) -> Runtime:
        config = config_mod.load(self.config_path, environ=ENV)
        return Runtime(config=config, state_path=config.state_path())

    def ready(self, now: datetime) -> bool:
        """Built and primed for this size, less than FRESH ago, and left clean."""
        try:
            marker = json.loads(self._marker.read_text())
        except (OSError, ValueError):
            return False
        return (
            marker.get("version") == _VERSION and marker.get("size") == self.size and marker.get("clean") is True
            and now - datetime.fromisoformat(marker["primed_at"]) < FRESH
        )

    def mark(self, primed_at: datetime, *, clean: bool) -> None:
        marker = {"version": _VERSION, "size": self.size, "primed_at": primed_at.isoformat(), "clean": clean}
        self._marker.write_text(json.dumps(marker))

    def primed_at(self) -> datetime:
        return datetime.fromisoformat(json.loads(self._marker.read_text())["primed_at"])

    def build(self, stores: list[Store], now: datetime, *, rate_per_s: float, concurrency: int) -> None:
        """A new ERP and a primed state file (the config must point somewhere to load)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self.write_config(stores, rate_per_s=rate_per_s, concurrency=concurrency)
        build_erp(self.erp_url, self.size, now - timedelta(minutes=10))
        self._prime(now)
        self.mark(now, clean=True)

    def _prime(self, now: datetime) -> None:
        rt = self.runtime()
        rt.state.close()  # migrations applied; the workers open their own
        rt.close()
        tasks = [(channel, job) for channel in CHANNELS for job in _SPECS]
        spawn = multiprocessing.get_context("spawn")  # not fork: the parent runs server threads
        with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=spawn) as pool:
            for _ in pool.map(_prime_hashes, [self] * len(tasks), tasks, [now] * len(tasks)):
                pass
        links = Database(self.state_path)
        try:
            for channel in CHANNELS:
                rows = (
                    {"channel": channel, "kind": "sku", "erp_id": sku_code(index),
                     "channel_id": str(vtex_sku_id(sku_code(index))), "synced_at": now.isoformat()}
                    for index in range(self.size)
                )
                links.table("links").insert_all(rows, batch_size=_PRIME_BATCH)
        finally:
            links.close()


def _prime_hashes(workspace: Workspace, task: tuple[str, str], now: datetime) -> None:
    """Hashes and cursor of one (channel, job), as a complete run at `now` would leave them."""
    channel_name, job = task
    rt = workspace.runtime()
    rt.now = lambda: now
    try:
        channel = rt.open_channel(channel_name)
        run = Run(rt, channel_name, channel, JobOptions(), JobResult(channel_name, job), concurrency=1)
        spec = _SPECS[job](run)
        items = 0
        for chunk in chunked(spec.items, _PRIME_BATCH):
            rows = [(spec.key(item), payload_hash(spec.payload(item)), spec.summary(item)) for item in chunk]
            rt.state.record_pushed(channel_name, spec.feature, rows, now)
            items += len(rows)
        cursor = Cursor(now, settings_fingerprint(channel.settings), items)
        rt.state.set_cursor(channel_name, job, cursor.text())
        channel.http.close()
    finally:
        rt.close()


def now_utc() -> datetime:
    return datetime.now(UTC)
