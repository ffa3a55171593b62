"""One trial's world: a channel's fake on loopback behind the chaos middleware, an
embedded SQLite ERP with a catalogue, a config file, and syncctl run the way cron
runs it (`python -m syncctl ...` in its own process) or in-process for set-up.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from typer.testing import CliRunner

from reliability.chaos import Chaos, KillPoint
from reliability.kits import CatalogItem, ChannelKit
from syncctl import config as config_mod
from syncctl.cli import app
from syncctl.domain import UTC
from syncctl.erp import init_schema
from syncctl.erp import schema as erp_schema
from syncctl.erp.db import create_erp_engine, writing
from syncctl.jobs import JOBS_BY_NAME, TRACK, JobOptions
from syncctl.jobs.plan import run_all, run_job
from syncctl.jobs.result import JobResult, combine_exit_codes
from syncctl.runtime import Runtime
from syncctl.sandbox.server import RunningServer, serve

ORDERS = 12  # per world that has orders: two feed lots and a bit
PARCELS = 10  # per world that tracks parcels
TALKING = 5  # orders whose customers write to the seller
PARENTS = (("CAM", "Camiseta Algodão"), ("CALCA", "Calça Jeans"), ("TENIS", "Tênis Corrida"))
SIZES = ("P", "M", "G")
STANDALONE = (("BONE", "Boné Aba Curva"), ("CANECA", "Caneca 300 ml"), ("MEIA", "Meia Cano Alto"),
              ("CINTO", "Cinto Couro"), ("BOLSA", "Bolsa Tiracolo"), ("GARRAFA", "Garrafa Térmica"))
SYNCCTL_TIMEOUT_S = 180


def gtin13(serial: int) -> str:
    """A GTIN-13 with a correct GS1 check digit (computed here, not by syncctl)."""
    body = f"789{serial:09d}"
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


def nfe_key(number: int) -> str:
    """A well-formed NF-e access key (modulus 11 check digit, computed here)."""
    first43 = f"3526111234567800019955001{number:09d}1{number:08d}"
    total = sum(int(digit) * (2 + position % 8) for position, digit in enumerate(reversed(first43)))
    remainder = total % 11
    return first43 + str(0 if remainder < 2 else 11 - remainder)


@dataclass
class Ran:
    """One syncctl process: its exit code and everything it printed."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9


@dataclass
class World:
    root: Path
    kit: ChannelKit
    fake: Any
    chaos: Chaos
    url: str
    catalog: list[CatalogItem] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)  # channel order ids placed on the fake
    ran: list[Ran] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)  # what in-process runs asked to sleep
    http: str = ""  # extra lines of the config's top-level http block
    seeded_at: datetime | None = None
    reauthorized: int = 0  # times a person had to authorize an OAuth channel again
    name: str = ""  # the channel's name in the config
    neighbours: list[World] = field(default_factory=list)  # other channels in the same config and ERP

    @property
    def channel(self) -> str:
        return self.name or f"{self.kit.kind}-main"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def erp_url(self) -> str:
        return f"sqlite:///{self.root / 'erp.db'}"

    @property
    def state_files(self) -> list[Path]:
        return [path for path in self.root.glob("state.db*") if path.is_file()]

    # -- set-up -------------------------------------------------------------------------------
    def write_config(self) -> None:
        http = f"http:\n{self.http}" if self.http else ""
        sections = ""
        for section in ("channels", "carriers"):
            blocks = [side.kit.config_block(side.channel, side.url) for side in (self, *self.neighbours)
                      if side.kit.section == section]  # fmt: skip
            sections += f"{section}:\n{''.join(blocks)}" if blocks else ""
        self.config_path.write_text(f"erp:\n  url: sqlite:///erp.db\nstate:\n  path: state.db\n{http}{sections}")

    def seed_erp(self, now: datetime) -> None:
        """Three products in three sizes and six standalone ones, with EANs, approved
        counts in two listed warehouses (and one not listed), prices, some on sale."""
        init_schema(self.erp_url)
        self.seeded_at = now
        shape = random.Random("catalogue")
        products, counts, prices = [], [], []
        dims = dict(brand="Marca", weight_kg=Decimal("0.300"), height_cm=Decimal(5),
                    width_cm=Decimal(20), length_cm=Decimal(30), active=True, updated_at=now)
        sellable = [(f"{ref}-{size}", f"{name} {size}", ref) for ref, name in PARENTS for size in SIZES]
        sellable += [(ref, name, None) for ref, name in STANDALONE]
        products += [dict(sku=ref, parent_sku=None, name=name, ean=None, description=name, **dims)
                     for ref, name in PARENTS]
        for serial, (sku, name, parent) in enumerate(sellable, start=1):
            products.append(dict(sku=sku, parent_sku=parent, name=name, ean=gtin13(serial), description=None, **dims))
            for warehouse in ("CD-SP", "LOJA-01", "DEPOSITO-RJ"):
                counts.append(dict(warehouse=warehouse, sku=sku, quantity=shape.randint(0, 40), status="approved",
                                   approved_at=now - timedelta(days=2), updated_at=now - timedelta(days=2)))
            cents = shape.randint(19, 299) * 100 + 90
            on_sale = serial % 3 == 0
            prices.append(dict(
                sku=sku, price_list="default", list_price=Decimal(cents) / 100,
                sale_price=Decimal(cents * 8 // 10) / 100 if on_sale else None,
                sale_starts_at=now - timedelta(days=1) if on_sale else None,
                sale_ends_at=now + timedelta(days=10) if on_sale else None, updated_at=now - timedelta(days=2),
            ))
            self.catalog.append(CatalogItem(sku, name, cents, dict(PARENTS).get(parent)))
        self.erp_insert("warehouses", [{"code": code, "name": code} for code in ("CD-SP", "LOJA-01", "DEPOSITO-RJ")])
        self.erp_insert("products", products)
        self.erp_insert("inventories", counts)
        self.erp_insert("prices", prices)

    def prepare(self, job: str) -> None:
        """What must already have happened before `job` has something to do."""
        if job in ("push-stock", "push-prices", "pull-orders", "push-invoices", "sync-sac"):
            self.run("push-products")
        if job in ("pull-orders", "push-invoices", "sync-sac", "run-all"):
            self.run("pull-orders")  # the first run sets the channel's order feed up
            self.place_orders(ORDERS)
        if job in ("push-invoices", "sync-sac"):
            self.run("pull-orders")
        if job == "push-invoices":
            self.invoice_and_ship()
        if job == "sync-sac":
            self.converse()
        if job == "track":
            parcels = self.kit.parcels(self.fake, PARCELS)
            self.add_shipments(parcels[: PARCELS // 2])
            self.run("track")  # tracked before: the carrier's session is in the state file
            self.add_shipments(parcels[PARCELS // 2 :])

    def prepare_all(self) -> None:
        """What must have happened before every job of the channel has something to do."""
        richest = next(job for job in ("push-invoices", "pull-orders", "push-stock", "track") if job in self.kit.jobs)
        self.prepare(richest)
        if "sync-sac" in self.kit.jobs:
            self.converse()

    def place_orders(self, count: int) -> list[str]:
        placed = self.kit.place_orders(self.fake, self.catalog, count, random.Random(f"orders:{len(self.placed)}"))
        self.placed += placed
        return placed

    def add_shipments(self, codes: list[str]) -> None:
        """An ERP order shipped with this carrier for each code, shipped two days ago."""
        now = datetime.now(UTC)
        first = len(self.erp_sql("SELECT id FROM orders")) + 1
        self.erp_insert("orders", [
            {"channel": "loja", "channel_order_id": f"P-{first + n}", "status": "shipped", "placed_at": now,
             "total": Decimal("10.00"), "shipping_cost": Decimal(0), "discount": Decimal(0),
             "imported_at": now, "updated_at": now}
            for n in range(len(codes))
        ])
        ids = [row[0] for row in self.erp_sql(f"SELECT id FROM orders WHERE id >= {first} ORDER BY id")]
        self.erp_insert("shipments", [
            {"order_id": order_id, "carrier": self.channel, "tracking_code": code, "tracking_url": None,
             "shipped_at": now - timedelta(days=2), "delivery_status": None, "delivered_at": None, "updated_at": now}
            for order_id, code in zip(ids, codes, strict=True)
        ])

    def converse(self) -> None:
        """Customers write about the first orders; their tickets come down; agents answer
        each in the ERP (the first twice), and answer a ticket the ERP opened itself (a
        phone call about the last order: never to go up); customers write again."""
        talking = self.placed[:TALKING]
        self.kit.customers_write(self.fake, talking, 1)
        self.run("sync-sac")
        now = datetime.now(UTC)
        tickets = self.erp_sql(f"SELECT id FROM tickets WHERE channel = '{self.channel}' ORDER BY id")
        came_down = [ticket for (ticket,) in tickets]
        self.erp_insert("tickets", [{"channel": self.channel, "channel_ticket_id": self.kit.ticket_id(self.placed[-1]),
                                     "subject": "Ligação do cliente", "status": "open", "opened_at": now,
                                     "updated_at": now}])  # fmt: skip
        [(phoned,)] = self.erp_sql(f"SELECT max(id) FROM tickets WHERE channel = '{self.channel}'")
        replies = [(ticket, f"Resposta {n} da equipe: já estamos vendo.") for n, ticket in enumerate(came_down)]
        replies += [(came_down[0], "Mais uma coisa: o código de rastreio segue por e-mail."),
                    (phoned, "Conforme a ligação, trocamos o produto.")]  # fmt: skip
        self.erp_insert("ticket_messages", [
            {"ticket_id": ticket, "direction": "out", "author": "Ana (SAC)", "body": body, "created_at": now}
            for ticket, body in replies
        ])
        self.kit.customers_write(self.fake, talking[::2], 2)

    def invoice_and_ship(self) -> None:
        """An NF-e and a shipment for every imported order; tracking events for half."""
        now = datetime.now(UTC)
        orders = self.erp_sql("SELECT id, total FROM orders ORDER BY id")
        self.erp_insert("invoices", [
            dict(order_id=order_id, nfe_key=nfe_key(order_id), number=str(1000 + order_id), series="1",
                 issued_at=now, total=Decimal(total), updated_at=now,
                 xml=f'<nfeProc><NFe><infNFe Id="NFe{nfe_key(order_id)}"/></NFe></nfeProc>')
            for order_id, total in orders
        ])
        self.erp_insert("shipments", [
            dict(order_id=order_id, carrier="correios", tracking_code=f"AA{order_id:09d}BR",
                 tracking_url=None, shipped_at=now, delivery_status=None, delivered_at=None, updated_at=now)
            for order_id, _ in orders
        ])
        shipments = self.erp_sql("SELECT id FROM shipments ORDER BY id")
        self.erp_insert("shipment_events", [
            dict(shipment_id=shipment_id, occurred_at=now + timedelta(hours=hours), status=status, code=code,
                 description=status, location="São Paulo/SP")
            for (shipment_id,) in shipments[::2]
            for hours, status, code in ((1, "posted", "PO"), (9, "in_transit", "RO"))
        ])

    # -- running syncctl ------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        home = self.root / "home"
        env = {key: value for key, value in os.environ.items() if key not in ("SYNCCTL_CONFIG", "CREDENTIALS_DIRECTORY")}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"))
        return {**env, **self.kit.credentials}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "syncctl", "--config", str(self.config_path), *args]

    def cli(self, *args: str, kill: KillPoint | None = None) -> Ran:
        """`syncctl ARGS` in its own process; with `kill`, SIGKILLed at that point."""
        self.chaos.reset()
        process = subprocess.Popen(
            self.command(*args), env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.chaos.victim, self.chaos.kill_at = process, kill
        try:
            stdout, stderr = process.communicate(timeout=SYNCCTL_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()  # our own child, by its pid
                process.wait()
        if kill is not None:
            self.chaos.settle()  # the killed process's last requests land before anything moves on
        ran = Ran(tuple(args), process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
        self.ran.append(ran)
        return ran

    def runtime(self, sleep: Callable[[float], None] | None = None) -> Runtime:
        config = config_mod.load(self.config_path, environ=self.kit.credentials)
        # The fake's clock, so letting time pass on the channel passes it for syncctl too.
        return Runtime(
            config=config, state_path=config.state_path(), now=self.fake.now, sleep=sleep or self.sleeps.append
        )

    def run(self, job: str, **options: Any) -> list[JobResult]:
        """`job` in this process, on every channel of the config (set-up and fault runs:
        sleeps are recorded, not slept)."""
        rt = self.runtime()
        try:
            if job == "run-all":
                return run_all(rt, JobOptions(**options))
            spec = JOBS_BY_NAME[job]
            names = list(rt.config.carriers) if spec is TRACK else rt.channel_names(spec.feature)
            return run_job(rt, spec, names, JobOptions(**options))
        finally:
            rt.close()

    def run_to_completion(self, job: str, *, in_process: bool = False, max_runs: int = 3) -> int:
        """Rerun `job` (letting timer intervals pass between runs) until one exits 0;
        returns how many runs that took. An OAuth channel that lost its token pair (exit
        3) is authorized again in between, as a person would."""
        for attempt in range(1, max_runs + 1):
            self.kit.let_time_pass(self.fake)
            if in_process:
                code = combine_exit_codes([result.exit_code for result in self.run(job)])
            else:
                code = self.cli("--json", "-v", job).returncode
            if code == 0:
                return attempt
            if code == 3 and self.kit.refreshes(self.fake) is not None:
                self.kit.reauthorize(self)  # an OAuth pair lost with the state file: a person acts
                self.reauthorized += 1
        raise AssertionError(f"{job} did not complete in {max_runs} runs: {self.ran[-1:] or 'in-process'}")

    def status(self) -> dict[str, Any]:
        """`syncctl --json status`, run in this process (not thread-safe: CliRunner swaps stdout)."""
        shown = CliRunner().invoke(app, ["--config", str(self.config_path), "--json", "status"],
                                   env=dict(self.kit.credentials))
        assert shown.exit_code == 0, shown.output
        self.ran.append(Ran(("--json", "status"), shown.exit_code, shown.output, ""))
        return json.loads(shown.output)

    def lose_state(self) -> None:
        for path in self.state_files:
            path.unlink()

    # -- the ERP, read and written as the ERP's users would ------------------------------------------
    def erp_insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        engine = create_erp_engine(self.erp_url)
        try:
            with writing(engine) as conn:
                conn.execute(insert(getattr(erp_schema, table)), rows)
        finally:
            engine.dispose()

    def erp_sql_write(self, sql: str) -> None:
        engine = create_erp_engine(self.erp_url)
        try:
            with writing(engine) as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def erp_sql(self, sql: str) -> list[tuple[Any, ...]]:
        engine = create_erp_engine(self.erp_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def erp_rows(self, table: str) -> list[dict[str, Any]]:
        engine = create_erp_engine(self.erp_url)
        try:
            with engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(select(getattr(erp_schema, table)))]
        finally:
            engine.dispose()

    # -- secrets -------------------------------------------------------------------------------------
    def leaks(self, extra: Iterable[str] = ()) -> list[str]:
        """Where a credential or a token the channel issued shows, whole or in part (see
        secret_pieces): every output, `extra`, the ERP; the state file may hold the
        tokens (contract §6), and the credentials they embed, nothing else."""
        secrets = dict(self.kit.credentials)
        tokens = {f"a token the channel issued ({token[:6]}...)": token for token in self.kit.session_tokens(self.fake)}
        outputs = [(f"stdout of {' '.join(r.args)}", r.stdout) for r in self.ran]
        outputs += [(f"stderr of {' '.join(r.args)}", r.stderr) for r in self.ran]
        outputs += [(f"extra {n}", value) for n, value in enumerate(extra)]
        erp = self.root / "erp.db"
        outputs += [(erp.name, erp.read_bytes().decode("latin-1"))] if erp.exists() else []
        stored = [(path.name, path.read_bytes().decode("latin-1")) for path in self.state_files]
        kept_out = {name: value for name, value in secrets.items() if name not in self.kit.inside_tokens}
        return _found(outputs, secrets | tokens) + _found(stored, kept_out)


def _found(places: list[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    return [
        f"{place} holds {name}"
        for place, content in places
        for name, secret in secrets.items()
        if any(piece in content for piece in secret_pieces(secret))
    ]


WINDOW = 12  # this many characters of a credential in a row count as a leak


def secret_pieces(secret: str) -> set[str]:
    """The secret as written, JSON-escaped and repr-escaped (as --json output and
    tracebacks spell it), and every run of WINDOW characters of each (a message cut
    short must not show the start of one either)."""
    spellings = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], repr(secret + "'\"")[1:-4]}
    windows = {text[start:start + WINDOW] for text in spellings for start in range(len(text) - WINDOW + 1)}
    return spellings | windows


_CLEAN_REQUESTS: dict[tuple[str, str, str], int] = {}


def clean_requests(root: Path, kit: ChannelKit, job: str, *, http: str) -> int:
    """How many requests `job` makes on a fresh world when nothing goes wrong (the same
    on every fresh world: counted once per kit, job and http block)."""
    if (kit.kind, job, http) not in _CLEAN_REQUESTS:
        with world(root, kit, http=http) as clean:
            clean.prepare(job)
            clean.chaos.reset()
            clean.run(job)
            _CLEAN_REQUESTS[kit.kind, job, http] = clean.chaos.count
    return _CLEAN_REQUESTS[kit.kind, job, http]


@contextmanager
def served(root: Path, kit: ChannelKit, *, seed: int = 0, http: str = "", name: str = "") -> Iterator[World]:
    """A channel's fake on loopback behind the chaos middleware, until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    fake = kit.make_fake(seed)
    chaos = Chaos(fake, fake.faults)
    server: RunningServer = serve(chaos)
    try:
        yield World(root=root, kit=kit, fake=fake, chaos=chaos, url=server.url, http=http, name=name)
    finally:
        if chaos.victim is not None and chaos.victim.poll() is None:
            chaos.victim.kill()  # our own child, by its pid
        # shutdown() waits out the server's half-second poll: not worth waiting for.
        threading.Thread(target=server.stop, daemon=True).start()


@contextmanager
def world(root: Path, kit: ChannelKit, *, seed: int = 0, http: str = "") -> Iterator[World]:
    """A fresh world in `root`: the channel's fake served, the config written, the ERP seeded."""
    with served(root, kit, seed=seed, http=http) as made:
        made.write_config()
        made.seed_erp(datetime.now(UTC))
        kit.list_catalog(made.fake, made.catalog)
        yield made
