"""Shared fixtures: an isolated home, and a harness wiring the sandbox VTEX, an
embedded ERP and a config file together for job and CLI tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text

from erp_databases import (
    BACKEND_PROPERTY,
    ERP_BACKENDS,
    PostgresSchemas,
    fresh_postgres_schema,
    postgres_server_url,
    sqlite_url,
)
from contract.suite import DictLinks
from syncctl import config as config_mod
from syncctl.channels.base import ChannelContext
from syncctl.channels.mercadolivre import MercadoLivreChannel, MlCredentials, MlOptions
from syncctl.config import ChannelSettings
from syncctl.demo import seed_erp
from syncctl.domain import UTC
from syncctl.erp import init_schema
from syncctl.erp import schema as erp_schema
from syncctl.erp.db import create_erp_engine, writing
from syncctl.http import HttpClient
from syncctl.jobs import JOBS_BY_NAME, JobOptions
from syncctl.jobs.plan import run_all, run_job
from syncctl.jobs.result import JobResult
from syncctl.redact import redact
from syncctl.runtime import Runtime
from syncctl.sandbox.mercadolivre import CLIENT_ID as ML_CLIENT_ID
from syncctl.sandbox.mercadolivre import CLIENT_SECRET as ML_CLIENT_SECRET
from syncctl.state import StateStore
from syncctl.sandbox.vtex import FakeVtex

APP_KEY = "vtexappkey-testshop-K3Y9"
APP_TOKEN = "s3cr3t-app-token-never-printed"
# Mercado Livre's variables of config.example.yaml.
ML_ENV = {
    "ML_CLIENT_ID": "1234567890123456", "ML_CLIENT_SECRET": "ml-secret-never-printed",
    "ML_REFRESH_TOKEN": "TG-ml-refresh-never-printed",
}  # fmt: skip
# The carriers' variables of config.example.yaml (and Mercado Livre's), so the example loads in tests.
CARRIER_ENV = {
    "CORREIOS_USER": "loja-exemplo", "CORREIOS_ACCESS_CODE": "cws-code-never-printed", "CORREIOS_POSTCARD": "0012345678",
    "JADLOG_TOKEN": "jadlog-token-never-printed", "MELHORENVIO_CLIENT_ID": "4821",
    "MELHORENVIO_CLIENT_SECRET": "me-secret-never-printed", "MELHORENVIO_REFRESH_TOKEN": "me-refresh-never-printed",
    **ML_ENV,
}  # fmt: skip
ENV = {"VTEX_APP_KEY": APP_KEY, "VTEX_APP_TOKEN": APP_TOKEN, **CARRIER_ENV}
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

CONFIG = """\
# test shop
erp:
  url: {erp_url}
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
    erp_url: str  # the ERP as the test edits and reads it
    base_url: str = "http://vtex.test"
    reserve: int = 0
    extra: str = ""
    sleeps: list[float] = field(default_factory=list)
    carrier_apps: dict[str, Any] = field(default_factory=dict)  # carrier name -> its fake (a WSGI app)
    config_erp_url: str | None = None  # the ERP as syncctl reaches it (maybe a narrower role); None: erp_url

    def write_config(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(CONFIG.format(
            base_url=self.base_url, reserve=self.reserve, extra=self.extra, erp_url=self.config_erp_url or self.erp_url,
        ))
        return path

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def runtime(self) -> Runtime:
        config = config_mod.load(self.config_path, environ=ENV)
        return Runtime(
            config=config,
            state_path=config.state_path(),
            now=self.clock,
            sleep=self.sleeps.append,
            transports={
                **{name: httpx.WSGITransport(app=self.fake) for name in config.channels},
                **{name: httpx.WSGITransport(app=app) for name, app in self.carrier_apps.items()},
            },
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
                order = list(tbl.primary_key) or list(tbl.columns)  # the same order on every backend
                query = select(tbl).where(*(tbl.c[k] == v for k, v in where.items())).order_by(*order)
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


# -- ERP databases on each backend (tests/erp_databases.py) ----------------------------------
@pytest.fixture(params=ERP_BACKENDS)
def erp_backend(request: pytest.FixtureRequest) -> str:
    """Every test taking it, or a fixture below, runs once per backend."""
    request.node.user_properties.append((BACKEND_PROPERTY, request.param))
    return request.param


@pytest.fixture
def erp_database(erp_backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ERP database."""
    if erp_backend == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres_schema(postgres_server_url()) as url:
            yield url


@pytest.fixture(scope="session")
def postgres_schemas() -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(postgres_server_url())
    yield schemas
    schemas.close()


@pytest.fixture
def erp_with_schema(erp_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An ERP database with the integration schema and no rows yet."""
    if erp_backend == "sqlite":
        url = sqlite_url(tmp_path)
        init_schema(url)
        yield url
    else:  # asked for here, so that SQLite-only runs need no server
        with request.getfixturevalue("postgres_schemas").lend() as url:
            yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per ERP backend, so the log shows each really ran: `backend sqlite: 90 passed`."""
    tallies = {backend: Counter[str]() for backend in ERP_BACKENDS}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            backend = dict(getattr(report, "user_properties", ())).get(BACKEND_PROPERTY)
            if backend in tallies:
                tallies[backend][outcome] += 1
    if not any(tallies.values()):
        return
    for backend, tally in tallies.items():
        counts = ", ".join(f"{count} {outcome}" for outcome, count in tally.items()) or "no tests"
        terminalreporter.write_line(f"backend {backend}: {counts}")


@pytest.fixture
def shop(tmp_path: Path, erp_with_schema: str) -> Shop:
    clock = Clock()
    fake = FakeVtex(account="testshop", app_key=APP_KEY, app_token=APP_TOKEN, clock=clock)
    shop = Shop(root=tmp_path, fake=fake, clock=clock, erp_url=erp_with_schema)
    shop.write_config()
    seed_erp(shop.erp_url, T0)
    return shop


def by_job(results: list[JobResult]) -> dict[str, JobResult]:
    return {r.job: r for r in results}


# -- Mercado Livre: an adapter wired to its fake, as a job gets it ----------------------------
ML_BASE_URL = "http://ml.test"


def ml_channel(
    fake: Any, state_path: Path, *, links: Any = None, now: Any = lambda: T0, known: Any = frozenset(),
    refresh_token: str | None = None, name: str = "ml-test", sleep: Any = lambda _seconds: None,
    transport: httpx.BaseTransport | None = None, base_url: str = ML_BASE_URL, **options: Any,
) -> MercadoLivreChannel:
    """A MercadoLivreChannel on `fake` (in process) with its tokens in the state file at
    `state_path`; `refresh_token` is the config's first one (None: none in the config)."""
    settings = ChannelSettings(
        name=name, type="mercadolivre", base_url=base_url,
        credentials=MlCredentials(client_id=ML_CLIENT_ID, client_secret=ML_CLIENT_SECRET, refresh_token=refresh_token),
        options=MlOptions(**options),
    )  # fmt: skip
    http = HttpClient("Mercado Livre", base_url=base_url, transport=transport or httpx.WSGITransport(app=fake),
                      sleep=sleep, now=now)  # fmt: skip
    context = ChannelContext(
        settings=settings, http=http, links=links if links is not None else DictLinks(), now=now,
        known_orders=lambda ids: {order_id for order_id in ids if order_id in known}, state=StateStore(state_path),
    )  # fmt: skip
    return MercadoLivreChannel(context)
