"""Shared fixtures: an isolated home, and a harness wiring the sandbox VTEX, an
embedded ERP and a config file together for job and CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text

from syncctl import config as config_mod
from syncctl.demo import seed_erp
from syncctl.domain import UTC
from syncctl.erp import schema as erp_schema
from syncctl.erp.db import create_erp_engine, writing
from syncctl.jobs import JOBS_BY_NAME, JobOptions
from syncctl.jobs.plan import run_all, run_job
from syncctl.jobs.result import JobResult
from syncctl.redact import redact
from syncctl.runtime import Runtime
from syncctl.sandbox.vtex import FakeVtex

APP_KEY = "vtexappkey-testshop-K3Y9"
APP_TOKEN = "s3cr3t-app-token-never-printed"
ENV = {"VTEX_APP_KEY": APP_KEY, "VTEX_APP_TOKEN": APP_TOKEN}
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

CONFIG = """\
# test shop
erp:
  url: sqlite:///erp.db
state:
  path: state.db
channels:
  vtex-main:            # the main store
    type: vtex
    auto: true
    base_url: {base_url}
    credentials:
      app_key: ${{VTEX_APP_KEY}}
      app_token: ${{VTEX_APP_TOKEN}}
    stock:
      from_warehouses: [CD-SP, LOJA-01]
      debit_warehouse: CD-SP
      reserve: {reserve}
    prices:
      max_drop_pct: 50
    options:
      account: testshop
      warehouse_id: "1_1"
      category_path: Roupas/Camisetas
{extra}"""


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.delenv("SYNCCTL_CONFIG", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    yield
    redact.clear()


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Shop:
    """A config file, an embedded ERP seeded like the demo, and the sandbox VTEX
    reached in-process (tests) or over loopback (CLI tests set base_url)."""

    root: Path
    fake: FakeVtex
    clock: Clock
    base_url: str = "http://vtex.test"
    reserve: int = 0
    extra: str = ""
    sleeps: list[float] = field(default_factory=list)

    def write_config(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(CONFIG.format(base_url=self.base_url, reserve=self.reserve, extra=self.extra))
        return path

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def erp_url(self) -> str:
        return f"sqlite:///{self.root / 'erp.db'}"

    def runtime(self) -> Runtime:
        config = config_mod.load(self.config_path, environ=ENV)
        return Runtime(
            config=config,
            state_path=config.state_path(),
            now=self.clock,
            sleep=self.sleeps.append,
            transports={name: httpx.WSGITransport(app=self.fake) for name in config.channels},
        )

    def run(self, job: str, channels: list[str] | None = None, **options: Any) -> list[JobResult]:
        rt = self.runtime()
        try:
            if job == "run-all":
                return run_all(rt, JobOptions(**options))
            spec = JOBS_BY_NAME[job]
            return run_job(rt, spec, channels or rt.channel_names(spec.feature), JobOptions(**options))
        finally:
            rt.close()

    # -- the ERP, as a test edits and reads it --------------------------------------------
    def erp_insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        engine = create_erp_engine(self.erp_url)
        try:
            with writing(engine) as conn:
                conn.execute(insert(getattr(erp_schema, table)), rows)
        finally:
            engine.dispose()

    def erp_update(self, table: str, where: dict[str, Any], values: dict[str, Any]) -> None:
        engine = create_erp_engine(self.erp_url)
        tbl = getattr(erp_schema, table)
        try:
            with writing(engine) as conn:
                conn.execute(tbl.update().where(*(tbl.c[k] == v for k, v in where.items())).values(**values))
        finally:
            engine.dispose()

    def erp_rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        engine = create_erp_engine(self.erp_url)
        tbl = getattr(erp_schema, table)
        try:
            with engine.connect() as conn:
                query = select(tbl).where(*(tbl.c[k] == v for k, v in where.items()))
                return [dict(row._mapping) for row in conn.execute(query)]
        finally:
            engine.dispose()

    def erp_sql(self, sql: str) -> list[tuple]:
        engine = create_erp_engine(self.erp_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    # -- the sandbox VTEX ----------------------------------------------------------------------
    def vtex_sku_id(self, ref: str) -> str:
        return next(str(sku_id) for sku_id, sku in self.fake.skus.items() if sku.get("RefId") == ref)

    def requests(self, method: str | None = None, contains: str = "") -> list[Any]:
        return [
            r for r in self.fake.requests_log
            if (method is None or r.method == method) and contains in r.path
        ]


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    clock = Clock()
    fake = FakeVtex(account="testshop", app_key=APP_KEY, app_token=APP_TOKEN, clock=clock)
    shop = Shop(root=tmp_path, fake=fake, clock=clock)
    shop.write_config()
    seed_erp(shop.erp_url, T0)
    return shop


def by_job(results: list[JobResult]) -> dict[str, JobResult]:
    return {r.job: r for r in results}
