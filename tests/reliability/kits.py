"""What the suite needs to know about each channel: its fake, its config block, how to
place orders on it, and how to read back what it holds. Everything else in the suite
is generic.

Adding a channel (or a carrier) is one more kit class here and one entry in KITS;
every scenario then runs against it too.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from syncctl.sandbox.correios import FakeCorreios
from syncctl.sandbox.jadlog import BR_DATE as JADLOG_BR
from syncctl.sandbox.jadlog import ISO_DATE as JADLOG_ISO
from syncctl.sandbox.jadlog import FakeJadlog
from syncctl.sandbox.melhorenvio import FakeMelhorEnvio
from syncctl.sandbox.mercadolivre import LABEL_MODES as ML_LABEL_MODES
from syncctl.sandbox.mercadolivre import REDIRECT_URI as ML_REDIRECT_URI
from syncctl.sandbox.mercadolivre import FakeMercadoLivre
from syncctl.sandbox.vtex import FakeVtex


@dataclass(frozen=True)
class Listing:
    """One SKU as the channel shows it."""

    name: str
    eans: tuple[str, ...]
    product_ref: str


@dataclass(frozen=True)
class Delivered:
    """What the channel holds of one order's updates, and how often they were sent."""

    invoices: tuple[str, ...]  # invoices on the order, by number (VTEX) or NF-e key (Mercado Livre)
    invoice_sends: int  # invoice requests the channel took
    tracking: str | None = None
    events: int | None = None  # tracking events on the order; None: the channel takes no events
    tracks: bool = True  # False: the channel tracks this shipment itself (Mercado Envios)
    repeated: int = 0  # status notifications sent again for a status the channel already had


@dataclass(frozen=True)
class Conversation:
    """One ticket as the channel holds it: what the customer wrote, what the seller replied."""

    customer: tuple[str, ...]
    replies: tuple[str, ...]


@dataclass(frozen=True)
class Hostile:
    """A channel answer no adapter should trust. `apply(world)` prepares it and returns
    the key of the one item that must fail; `rest_done(world)` says the others went through."""

    name: str
    job: str
    says: str  # what the failure's message must say
    apply: Callable[[Any], str]
    rest_done: Callable[[Any], bool]


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    cents: int
    family: str | None = None  # the parent product's name, for variations


class ChannelKit(Protocol):
    """A channel's or a carrier's kit. The scenarios pick kits by their `jobs` (and a
    kit's OAuth by `refreshes`), so a method that does not apply to a kit (a carrier
    sells nothing, Mercado Livre has no "we have it" call) is never called on it."""

    kind: str  # the kit's name in test ids
    section: str  # "channels" or "carriers": where its block goes in the config
    channel_type: str  # the channel's (or carrier's) type
    credentials: Mapping[str, str]  # environment variable -> value (the secrets the suite greps for)
    jobs: tuple[str, ...]  # the jobs the crash and fault scenarios run on this channel
    # Credentials that the channel's own tokens embed (an app id), so the state file holds them with the tokens.
    inside_tokens: tuple[str, ...]
    # After the state file is lost, invoices go again (VTEX: harmless, a fresh receipt); False
    # where syncctl reads the channel's copy back first.
    resends_invoices: bool
    # OAuth: what syncctl tells a person to do once the token pair is lost ({name}: the channel's).
    reauthorize_hint: str
    # OAuth: the path of the refresh grant (a kill once it is applied may lose the rotated pair).
    token_path: str | None

    def make_fake(self, seed: int) -> Any: ...

    def list_catalog(self, fake: Any, catalog: Sequence[CatalogItem]) -> None:
        """What is on the channel before syncctl comes (listings it links rather than creates)."""

    def config_block(self, name: str, base_url: str) -> str: ...

    def place_orders(self, fake: Any, catalog: Sequence[CatalogItem], count: int, rng: random.Random) -> list[str]: ...

    def let_time_pass(self, fake: Any) -> None:
        """What a few timer intervals do on the channel (e.g. unacknowledged events come back)."""

    def listings(self, fake: Any) -> tuple[dict[str, Listing], list[str]]:
        """ERP sku -> listing, and the skus listed more than once."""

    def product_refs(self, fake: Any) -> Counter[str]: ...

    def stock(self, fake: Any) -> dict[str, int | None]: ...

    def prices(self, fake: Any) -> dict[str, tuple[Decimal, Decimal]]:
        """ERP sku -> (list price, selling price now)."""

    def handled(self, fake: Any) -> dict[str, tuple[int, bool]]:
        """Channel order id -> (how many times the channel accepted "we have it" from
        syncctl, e.g. start-handling; whether it still waits to be told)."""

    def delivered(self, fake: Any) -> dict[str, Delivered]: ...

    def customers_write(self, fake: Any, orders: Sequence[str], round_: int) -> None:
        """Customers write to the seller about these orders (each message's text unique)."""

    def ticket_id(self, order_id: str) -> str:
        """The channel's ticket id for a conversation about this order."""

    def conversations(self, fake: Any) -> dict[str, Conversation]:
        """Channel ticket id -> what the channel holds of it."""

    def hostile_answers(self) -> list[Hostile]: ...

    def parcels(self, fake: Any, count: int) -> list[str]:
        """Carriers: `count` tracking codes the carrier has events for (their shipments go in the ERP)."""

    def tracked(self, fake: Any) -> dict[str, int]:
        """Carriers: tracking code -> how many events the carrier holds for it."""

    def refreshes(self, fake: Any) -> int | None:
        """How many OAuth refresh grants the channel answered; None for a channel without OAuth."""

    def session_tokens(self, fake: Any) -> set[str]:
        """Tokens the channel issued: kept in the state file (contract §6), shown nowhere else."""

    def expire_sessions(self, fake: Any) -> None:
        """Void every access token on the channel's side (the next request gets a 401)."""

    def reauthorize(self, world: Any) -> None:
        """What a person does after exit 3 on an OAuth channel: authorize the app again."""

    def shift_pages(self, world: Any, monkeypatch: Any) -> list[str]:
        """Orders that only the channel's paged listing finds, and pages that shift while
        they are read (orders leaving the listing, new ones appearing); the orders the
        ERP must end up with go to `world.placed`. Returns what shifted, as it happens."""


class Kit:
    """What every kit's config block shares: `type`, `auto`, the fake's URL, and each
    credential by reference (the environment variable KIND_FIELD holds credential
    `field`: VTEX_APP_KEY holds app_key); `settings` are the block's other lines."""

    channel_type: str
    credentials: ClassVar[Mapping[str, str]]
    settings = ""
    token_path: str | None = None

    def config_block(self, name: str, base_url: str) -> str:
        fields = {variable.split("_", 1)[1].lower(): variable for variable in self.credentials}
        references = "".join(f"      {field}: ${{{variable}}}\n" for field, variable in fields.items())
        return (f"  {name}:\n    type: {self.channel_type}\n    auto: true\n    base_url: {base_url}\n"
                f"    credentials:\n{references}{self.settings}")  # fmt: skip


VTEX_WAREHOUSE = "1_1"
VTEX_VISIBILITY_S = 300  # syncctl's default feed visibility timeout
VTEX_BACKSTOP_MINUTES = 5  # so letting a visibility timeout pass lets the backstop run too


class VtexKit(Kit):
    kind = "vtex"
    section = "channels"
    channel_type = "vtex"
    credentials: ClassVar[Mapping[str, str]] = {
        "VTEX_APP_KEY": "vtexappkey-relshop-Q7Z2XK", "VTEX_APP_TOKEN": "rel-T0ken-NEVER-shown-5f1c9a",
    }
    jobs = ("pull-orders", "push-products", "push-stock", "push-prices", "push-invoices", "run-all")
    inside_tokens = ()
    resends_invoices = True

    def make_fake(self, seed: int) -> FakeVtex:
        return FakeVtex(
            account="relshop",
            app_key=self.credentials["VTEX_APP_KEY"],
            app_token=self.credentials["VTEX_APP_TOKEN"],
            seed=seed,
        )

    def list_catalog(self, fake: FakeVtex, catalog: Sequence[CatalogItem]) -> None:
        """Nothing: push-products creates products and SKUs on VTEX."""

    settings = f"""\
    stock: {{from_warehouses: [CD-SP, LOJA-01], debit_warehouse: CD-SP}}
    prices: {{max_drop_pct: 50}}
    options:
      account: relshop
      warehouse_id: "{VTEX_WAREHOUSE}"
      category_path: Roupas/Camisetas
      backstop_minutes: {VTEX_BACKSTOP_MINUTES}
"""

    def place_orders(
        self, fake: FakeVtex, catalog: Sequence[CatalogItem], count: int, rng: random.Random
    ) -> list[str]:
        return [
            fake.add_order(items=self._lines(fake, catalog, rng), shipping_cents=rng.choice((0, 1290, 2500)))
            for _ in range(count)
        ]

    def refreshes(self, fake: FakeVtex) -> int | None:
        return None  # app key and token: nothing to refresh

    def session_tokens(self, fake: FakeVtex) -> set[str]:
        return set()

    def parcels(self, fake: Any, count: int) -> list[str]:
        raise NotImplementedError("a channel, not a carrier")

    def tracked(self, fake: Any) -> dict[str, int]:
        raise NotImplementedError("a channel, not a carrier")

    def expire_sessions(self, fake: FakeVtex) -> None:
        raise NotImplementedError("VTEX has no sessions")

    def reauthorize(self, world: Any) -> None:
        raise NotImplementedError("VTEX keys are not authorized again")

    def shift_pages(self, world: Any, monkeypatch: Any) -> list[str]:
        # Placed before the feed exists: no events, only the backstop's listing finds them.
        monkeypatch.setattr("syncctl.channels.vtex.LIST_PAGE_SIZE", 4)
        fake, rng, shifted = world.fake, random.Random("shift"), []
        first = fake.now() - timedelta(hours=1)
        for n in range(12):
            lines = self._lines(fake, world.catalog, rng)
            world.placed.append(fake.add_order(items=lines, created_at=first + timedelta(minutes=n)))

        def shift(method: str, path: str, query: Mapping[str, str]) -> None:
            if method != "GET" or path != "/api/oms/pvt/orders":
                return
            if query.get("page") == "1":  # the first of page 2 is handled elsewhere: the rest move back by one
                fake.set_order_status(world.placed[4], "handling")
                shifted.append(f"{world.placed[4]} left the listing after page 1")
            elif query.get("page") == "2":  # an older one appears: everything moves forward by one
                older = first - timedelta(minutes=5)
                world.placed.append(fake.add_order(items=self._lines(fake, world.catalog, rng), created_at=older))
                shifted.append(f"{world.placed[-1]} appeared before page 1 after page 2")

        world.chaos.hooks.append(shift)
        return shifted

    def _lines(self, fake: FakeVtex, catalog: Sequence[CatalogItem], rng: random.Random) -> list[tuple]:
        sku_ids = {sku["RefId"]: sku_id for sku_id, sku in fake.skus.items()}
        return [
            (sku_ids.get(item.sku, f"9{position}"), item.sku, item.name, rng.randint(1, 3), item.cents)
            for position, item in enumerate(rng.sample(list(catalog), rng.randint(1, 3)))
        ]

    def let_time_pass(self, fake: FakeVtex) -> None:
        fake.advance(VTEX_VISIBILITY_S + 1)

    def listings(self, fake: FakeVtex) -> tuple[dict[str, Listing], list[str]]:
        refs = Counter(sku["RefId"] for sku in fake.skus.values())
        products = {product_id: product["RefId"] for product_id, product in fake.products.items()}
        listed = {
            sku["RefId"]: Listing(sku["Name"], tuple(fake.eans.get(sku_id, ())), products[sku["ProductId"]])
            for sku_id, sku in fake.skus.items()
        }
        return listed, [ref for ref, times in refs.items() if times > 1]

    def product_refs(self, fake: FakeVtex) -> Counter[str]:
        return Counter(product["RefId"] for product in fake.products.values())

    def stock(self, fake: FakeVtex) -> dict[str, int | None]:
        return {
            sku["RefId"]: fake.inventory.get((str(sku_id), VTEX_WAREHOUSE), {}).get("totalQuantity")
            for sku_id, sku in fake.skus.items()
        }

    def prices(self, fake: FakeVtex) -> dict[str, tuple[Decimal, Decimal]]:
        now = fake.now()
        found = {}
        for sku_id, sku in fake.skus.items():
            price = fake.prices.get(str(sku_id))
            if price is None:
                continue
            selling = Decimal(price["basePrice"])
            for fixed in price["fixedPrices"]:
                window = fixed.get("dateRange")
                running = window is None or datetime.fromisoformat(window["from"]) <= now < datetime.fromisoformat(window["to"])
                if str(fixed["tradePolicyId"]) == "1" and fixed.get("minQuantity") == 1 and running:
                    selling = Decimal(fixed["value"])
            found[sku["RefId"]] = (Decimal(price["basePrice"]), selling)
        return found

    def handled(self, fake: FakeVtex) -> dict[str, tuple[int, bool]]:
        accepted = Counter(
            record.path.split("/")[-2]
            for record in fake.requests_log
            if record.method == "POST" and record.path.endswith("/start-handling") and record.status == 204
        )
        return {
            order_id: (accepted[order_id], order["status"] == "ready-for-handling")
            for order_id, order in fake.orders.items()
        }

    def delivered(self, fake: FakeVtex) -> dict[str, Delivered]:
        sends = Counter(
            record.path.split("/")[-2]
            for record in fake.requests_log
            if record.method == "POST" and record.path.endswith("/invoice") and record.status == 200
        )
        found = {}
        for order_id, order in fake.orders.items():
            packages = order["packageAttachment"]["packages"]
            courier = packages[-1].get("courierStatus") if packages else None
            found[order_id] = Delivered(
                invoices=tuple(package["invoiceNumber"] for package in packages),
                tracking=packages[-1].get("trackingNumber") or None if packages else None,
                events=len(courier["data"]) if courier else 0,
                invoice_sends=sends[order_id],
            )
        return found


    def hostile_answers(self) -> list[Hostile]:
        def corrupt_order(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], str]:
            def apply(world: Any) -> str:
                order_id = world.placed[0]
                change(world.fake.orders[order_id])
                return order_id
            return apply

        def others_imported(world: Any) -> bool:
            imported = {row[0] for row in world.erp_sql("SELECT channel_order_id FROM orders")}
            return set(world.placed[1:]) <= imported

        def on_first_sku(method: str, path: str, **rule: Any) -> Callable[[Any], str]:
            def apply(world: Any) -> str:
                sku_id = next(iter(world.fake.skus))
                world.fake.faults.add(method=method, path_prefix=path.format(sku=sku_id), times=None, **rule)
                return world.fake.skus[sku_id]["RefId"]
            return apply

        def stock_of_others_sent(world: Any) -> bool:
            return sum(1 for quantity in self.stock(world.fake).values() if quantity is not None) == len(world.catalog) - 1

        def prices_of_others_sent(world: Any) -> bool:
            return len(self.prices(world.fake)) == len(world.catalog) - 1

        def start_handling_ignored(world: Any) -> str:
            order_id = world.placed[0]
            world.fake.faults.add(method="POST", path_prefix=f"/api/oms/pvt/orders/{order_id}/start-handling",
                                  status=200, body={}, times=None)
            return order_id

        def others_handled(world: Any) -> bool:
            return others_imported(world) and all(
                world.fake.orders[order_id]["status"] == "handling" for order_id in world.placed[1:])

        inventory = "/api/logistics/pvt/inventory/skus/{sku}/"
        return [
            Hostile("order without value", "pull-orders", "could not be read",
                    corrupt_order(lambda order: order.pop("value")), others_imported),
            Hostile("order value as text", "pull-orders", "could not be read",
                    corrupt_order(lambda order: order.update(value="a lot")), others_imported),
            Hostile("order quantity as text", "pull-orders", "could not be read",
                    corrupt_order(lambda order: order["items"][0].update(quantity="two")), others_imported),
            Hostile("order date not a date", "pull-orders", "could not be read",
                    corrupt_order(lambda order: order.update(creationDate="yesterday")), others_imported),
            Hostile("order without items", "pull-orders", "has no items",
                    corrupt_order(lambda order: order.update(items=[])), others_imported),
            Hostile("start-handling answered 200 but not done", "pull-orders", "did not start handling",
                    start_handling_ignored, others_handled),
            Hostile("stock update answered 418", "push-stock", "HTTP 418",
                    on_first_sku("PUT", inventory, status=418), stock_of_others_sent),
            Hostile("stock update redirected", "push-stock", "HTTP 302",
                    on_first_sku("PUT", inventory, status=302, headers={"Location": "/elsewhere"}),
                    stock_of_others_sent),
            Hostile("price answer is a list", "push-prices", "could not be read",
                    on_first_sku("GET", "/relshop/pricing/prices/{sku}", status=200, body=[1, 2]),
                    prices_of_others_sent),
            Hostile("price answer with fixedPrices as text", "push-prices", "could not be read",
                    on_first_sku("GET", "/relshop/pricing/prices/{sku}", status=200, body={"fixedPrices": "none"}),
                    prices_of_others_sent),
        ]


class MercadoLivreKit(Kit):
    """Mercado Livre: listings exist before syncctl (it links them by SELLER_SKU), OAuth
    with rotating refresh tokens, orders in packs, no "we have it" call."""

    kind = "mercadolivre"
    section = "channels"
    channel_type = "mercadolivre"
    credentials: ClassVar[Mapping[str, str]] = {
        "ML_CLIENT_ID": "5512345678901234", "ML_CLIENT_SECRET": "ml-rel-SECRET-never-shown-77d1",
        "ML_REFRESH_TOKEN": "TG-rel-refresh-NEVER-shown-91c3",
    }
    jobs = ("pull-orders", "push-stock", "push-prices", "push-invoices", "sync-sac")
    inside_tokens = ("ML_CLIENT_ID",)  # ML's access tokens read APP_USR-<client id>-...
    resends_invoices = False  # it reads the pack's fiscal document or the shipment's NF-e first
    reauthorize_hint = "syncctl channel auth {name}"
    token_path = "/oauth/token"
    # (mode, logistic type) of the orders placed: Mercado Envios with the label the NF-e
    # unlocks (the NF-e goes into the shipment), ME1 (the NF-e attached to the pack, the
    # tracking notified) and custom shipping (attached; tracking on the shipment).
    LOGISTICS = (("me2", "cross_docking"), ("me2", "cross_docking"), ("me1", "default"), ("custom", "custom"))

    def make_fake(self, seed: int) -> FakeMercadoLivre:
        fake = FakeMercadoLivre(
            client_id=self.credentials["ML_CLIENT_ID"], client_secret=self.credentials["ML_CLIENT_SECRET"], seed=seed
        )
        fake.issue_refresh_token(token=self.credentials["ML_REFRESH_TOKEN"])
        return fake

    def list_catalog(self, fake: FakeMercadoLivre, catalog: Sequence[CatalogItem]) -> None:
        for item in catalog:
            fake.add_item(item.name, sku=item.sku, family_name=item.family or item.name,
                          price=Decimal(item.cents) / 100, quantity=50)

    settings = f"""\
    features: {{products: false, stock: true, prices: true, orders: true, order_updates: true, sac: true}}
    stock: {{from_warehouses: [CD-SP, LOJA-01], debit_warehouse: CD-SP}}
    prices: {{max_drop_pct: 50}}
    options: {{redirect_uri: "{ML_REDIRECT_URI}"}}
"""

    def place_orders(
        self, fake: FakeMercadoLivre, catalog: Sequence[CatalogItem], count: int, rng: random.Random
    ) -> list[str]:
        placed = []
        for _ in range(count):
            lines = self._lines(fake, catalog, rng)
            mode, logistic_type = rng.choice(self.LOGISTICS)
            placed.append(str(fake.add_order(lines, mode=mode, logistic_type=logistic_type)[0]))
        return placed

    def _lines(self, fake: FakeMercadoLivre, catalog: Sequence[CatalogItem], rng: random.Random) -> list[tuple]:
        listed = self._items_by_sku(fake)
        return [(listed[item.sku], None, rng.randint(1, 3), Decimal(item.cents) / 100)
                for item in rng.sample(list(catalog), rng.randint(1, 3))]  # fmt: skip

    def shift_pages(self, world: Any, monkeypatch: Any) -> list[str]:
        monkeypatch.setattr("syncctl.channels.mercadolivre.ORDERS_PAGE", 4)
        fake, rng, shifted = world.fake, random.Random("shift"), []
        fake.orders_sort_key = "date_last_updated"
        for _ in range(12):
            world.placed.append(str(fake.add_order(self._lines(fake, world.catalog, rng))[0]))
            fake.advance(1)

        def shift(offset: int) -> None:
            if not shifted:  # an early order is updated (it leaves its place, the rest shift back); a sale lands
                first = next(iter(fake.orders))
                fake.touch_order(first)
                world.placed.append(str(fake.add_order(self._lines(fake, world.catalog, rng))[0]))
                shifted.append(f"order {first} moved to the end and {world.placed[-1]} arrived after offset {offset}")

        fake.after_orders_page = shift
        return shifted

    def let_time_pass(self, fake: FakeMercadoLivre) -> None:
        fake.advance(60)

    def listings(self, fake: FakeMercadoLivre) -> tuple[dict[str, Listing], list[str]]:
        raise NotImplementedError("push-products is not in this kit's jobs")

    def product_refs(self, fake: FakeMercadoLivre) -> Counter[str]:
        raise NotImplementedError("push-products is not in this kit's jobs")

    def stock(self, fake: FakeMercadoLivre) -> dict[str, int | None]:
        return {sku: fake.items[item_id]["available_quantity"] for sku, item_id in self._items_by_sku(fake).items()}

    def prices(self, fake: FakeMercadoLivre) -> dict[str, tuple[Decimal, Decimal]]:
        found = {}
        for sku, item_id in self._items_by_sku(fake).items():
            price = Decimal(fake.items[item_id]["price"])
            deal = fake.running_deal_price(item_id)
            found[sku] = (price, Decimal(deal) if deal is not None else price)
        return found

    def handled(self, fake: FakeMercadoLivre) -> dict[str, tuple[int, bool]]:
        return {}  # Mercado Livre has no "we have it" call

    def delivered(self, fake: FakeMercadoLivre) -> dict[str, Delivered]:
        """Per purchase (pack, or order without one): the NF-e in its shipment (Mercado
        Envios with a label) or attached to the pack, by key; tracking where ML takes it."""
        taken = Counter((record.method, record.path) for record in fake.requests_log if record.status in (200, 201))
        found = {}
        for order in fake.orders.values():
            key = order["pack_id"] or order["id"]
            shipment_id = order["shipping"]["id"]
            shipment = fake.shipments[shipment_id]
            mode, logistic_type = shipment["logistic"]["mode"], shipment["logistic"]["type"]
            if mode == "me2" and logistic_type in ML_LABEL_MODES:
                xml = fake.invoice_data.get(shipment_id)
                invoices = tuple(re.findall(r"NFe(\d{44})", xml)) if xml else ()
                path = f"/shipments/{shipment_id}/invoice_data"
                sends = taken["POST", path] + taken["PUT", path]
            else:
                invoices = tuple(doc["file_name"].removeprefix("NFe").removesuffix(".xml")
                                 for doc in fake.fiscal_documents.get(key, []))  # fmt: skip
                sends = taken["POST", f"/packs/{key}/fiscal_documents"]
            notified = Counter(note["status"] for note in fake.seller_notifications.get(shipment_id, []))
            found[str(key)] = Delivered(
                invoices=invoices, invoice_sends=sends, tracking=shipment["tracking_number"], tracks=mode != "me2",
                repeated=sum(times - 1 for times in notified.values()),
            )
        return found

    def customers_write(self, fake: FakeMercadoLivre, orders: Sequence[str], round_: int) -> None:
        """A buyer's message on each purchase; in the first round a claim on the first one too."""
        for n, key in enumerate(orders):
            fake.add_buyer_message(int(key), f"Pergunta {round_}.{n} sobre a compra: quando chega?")
        if round_ == 1 and orders:
            pack = fake.packs.get(int(orders[0]))
            order_id = pack["orders"][0]["id"] if pack else int(orders[0])
            fake.add_claim(order_id, "Reclamação: veio a cor errada")

    def ticket_id(self, order_id: str) -> str:
        return f"pack:{order_id}"

    def conversations(self, fake: FakeMercadoLivre) -> dict[str, Conversation]:
        held = {}
        for pack, conversation in fake.conversations.items():
            messages = conversation["messages"]
            held[f"pack:{pack}"] = Conversation(
                customer=tuple(m["text"] for m in messages if m["from"]["user_id"] != fake.seller_id),
                replies=tuple(m["text"] for m in messages if m["from"]["user_id"] == fake.seller_id),
            )
        for claim_id, messages in fake.claim_messages.items():
            held[f"claim:{claim_id}"] = Conversation(
                customer=tuple(m["message"] for m in messages if m["sender_role"] != "respondent"),
                replies=tuple(m["message"] for m in messages if m["sender_role"] == "respondent"),
            )
        return held

    def hostile_answers(self) -> list[Hostile]:
        return []

    def refreshes(self, fake: FakeMercadoLivre) -> int | None:
        return len(fake.refresh_grants())

    def session_tokens(self, fake: FakeMercadoLivre) -> set[str]:
        return {*fake.access_tokens, *fake.refresh_tokens, *fake.refresh_grants()}

    def parcels(self, fake: Any, count: int) -> list[str]:
        raise NotImplementedError("a channel, not a carrier")

    def tracked(self, fake: Any) -> dict[str, int]:
        raise NotImplementedError("a channel, not a carrier")

    def expire_sessions(self, fake: FakeMercadoLivre) -> None:
        fake.expire_access_tokens()

    def reauthorize(self, world: Any) -> None:
        ran = world.cli("channel", "auth", world.channel, "--code", world.fake.issue_code())
        assert ran.returncode == 0, ran.stdout + ran.stderr

    @staticmethod
    def _items_by_sku(fake: FakeMercadoLivre) -> dict[str, str]:
        return {
            attribute["value_name"]: item_id
            for item_id, item in fake.items.items()
            for attribute in item["attributes"] if attribute["id"] == "SELLER_SKU"
        }


def _events_recorded(world: Any) -> set[str]:
    """Tracking codes of the world's carrier that have events in the ERP."""
    return {row[0] for row in world.erp_sql(
        "SELECT DISTINCT s.tracking_code FROM shipments s JOIN shipment_events e ON e.shipment_id = s.id "
        f"WHERE s.carrier = '{world.channel}'")}  # fmt: skip


class CarrierKit(Kit):
    """What carriers share: `track` reads their parcels' events into the ERP; they sell
    nothing; unless a kit says otherwise, nothing to refresh and no hostile answers."""

    section = "carriers"
    jobs = ("track",)
    inside_tokens = ()

    def list_catalog(self, fake: Any, catalog: Sequence[CatalogItem]) -> None:
        """Nothing: a carrier sells nothing."""

    def let_time_pass(self, fake: Any) -> None:
        fake.advance(60)

    def hostile_answers(self) -> list[Hostile]:
        return []

    def refreshes(self, fake: Any) -> int | None:
        return None

    def session_tokens(self, fake: Any) -> set[str]:
        return set()


class CorreiosKit(CarrierKit):
    """Correios: a bearer from a login, cached in the state file; events newest first."""

    kind = "correios"
    channel_type = "correios"
    credentials: ClassVar[Mapping[str, str]] = {
        "CORREIOS_USER": "rel-correios-user-8841", "CORREIOS_ACCESS_CODE": "cws-rel-ACCESS-never-shown-2b7e",
        "CORREIOS_POSTCARD": "0072345678",
    }
    SCENARIOS = (("delivered", None), ("failed_then_pickup", None), ("returned", None), ("lost", None),
                 ("delivered", 2))  # fmt: skip

    def make_fake(self, seed: int) -> FakeCorreios:
        return FakeCorreios(user=self.credentials["CORREIOS_USER"], access_code=self.credentials["CORREIOS_ACCESS_CODE"],
                            postcard=self.credentials["CORREIOS_POSTCARD"])  # fmt: skip

    def parcels(self, fake: FakeCorreios, count: int) -> list[str]:
        start = fake.now() - timedelta(days=6)
        codes = [s10_code(70_000_000 + n) for n in range(count)]
        for n, code in enumerate(codes):
            scenario, upto = self.SCENARIOS[n % len(self.SCENARIOS)]
            fake.add_scenario(code, scenario, start, upto=upto)
        return codes

    def tracked(self, fake: FakeCorreios) -> dict[str, int]:
        return {code: len(events) for code, events in fake.objects.items()}

    def hostile_answers(self) -> list[Hostile]:
        def mistyped_code(world: Any) -> str:
            code = s10_code(70_999_999)
            mistyped = code[:10] + str((int(code[10]) + 1) % 10) + code[11:]
            world.add_shipments([mistyped])
            return mistyped

        def others_tracked(world: Any) -> bool:
            return set(self.tracked(world.fake)) <= _events_recorded(world)

        return [Hostile("mistyped tracking code in the ERP", "track", "check digit", mistyped_code, others_tracked)]

    def session_tokens(self, fake: FakeCorreios) -> set[str]:
        return set(fake.tokens)


class JadlogKit(CarrierKit):
    """Jadlog: a static token; one request asks about a batch of shipments; events are
    free text, oldest first, in either of two date formats."""

    kind = "jadlog"
    channel_type = "jadlog"
    credentials: ClassVar[Mapping[str, str]] = {"JADLOG_TOKEN": "eyJhbGciOiJIUzI1NiJ9.rel-jadlog-NEVER-shown.9c1f"}
    STORIES = (  # each parcel's statuses, 7 hours apart
        ("EMISSAO", "TRANSFERENCIA", "EM ROTA", "ENTREGUE"),
        ("EMISSAO", "ENTRADA", "TRANSFERENCIA"),
        ("EMISSAO", "TRANSFERENCIA", "NAO ENTREGUE - DESTINATARIO AUSENTE", "EM ROTA"),
        ("EMISSAO", "EM DEVOLUCAO", "DEVOLUCAO ENTREGUE AO REMETENTE"),
        (),  # a pickup order Jadlog knows, nothing happened yet
    )

    def make_fake(self, seed: int) -> FakeJadlog:
        return FakeJadlog(token=self.credentials["JADLOG_TOKEN"])

    def parcels(self, fake: FakeJadlog, count: int) -> list[str]:
        start = fake.now() - timedelta(days=6)
        shipment_ids = [f"1120000{70_000 + n:07d}" for n in range(count)]
        for n, shipment_id in enumerate(shipment_ids):
            fake.add_shipment(shipment_id, f"{n:08d}", start)
            for hour, status in enumerate(self.STORIES[n % len(self.STORIES)], start=1):
                fake.add_event(shipment_id, status, start + timedelta(hours=hour * 7), "CO SAO PAULO",
                               date_format=(JADLOG_ISO, JADLOG_BR)[hour % 2])  # fmt: skip
        return shipment_ids

    def tracked(self, fake: FakeJadlog) -> dict[str, int]:
        return {shipment_id: len(entry["tracking"]["eventos"]) for shipment_id, entry in fake.shipments.items()}

    def hostile_answers(self) -> list[Hostile]:
        def unknown_shipment(world: Any) -> str:
            world.add_shipments(["11200009999999"])  # in the ERP, never handed to Jadlog
            return "11200009999999"

        def others_tracked(world: Any) -> bool:
            held = {code for code, events in self.tracked(world.fake).items() if events}
            return held <= _events_recorded(world)

        return [Hostile("shipment Jadlog does not know", "track", "Não localizado", unknown_shipment, others_tracked)]


class MelhorEnvioKit(CarrierKit):
    """Melhor Envio: OAuth with single-use refresh tokens (the config's first one is
    spent at the first run); each order's lifecycle steps and their times, not events."""

    kind = "melhorenvio"
    channel_type = "melhorenvio"
    credentials: ClassVar[Mapping[str, str]] = {
        "MELHORENVIO_CLIENT_ID": "rel-me-client-5521", "MELHORENVIO_CLIENT_SECRET": "me-rel-SECRET-never-shown-0d4a",
        "MELHORENVIO_REFRESH_TOKEN": "me-rel-refresh-NEVER-shown-6b2e",
    }
    reauthorize_hint = "put the new refresh token in carriers.{name}.credentials"
    token_path = "/oauth/token"
    # Each parcel's steps, 7 hours apart.
    STORIES = ((), ("posted",), ("posted", "delivered"), ("posted", "undelivered"), ("canceled",))
    DATED = ("posted", "delivered", "canceled", "expired")  # steps with a time of their own (`<step>_at`)
    UNDATED = ("undelivered", "suspended")  # statuses without one

    def make_fake(self, seed: int) -> FakeMelhorEnvio:
        return FakeMelhorEnvio(client_id=self.credentials["MELHORENVIO_CLIENT_ID"],
                               client_secret=self.credentials["MELHORENVIO_CLIENT_SECRET"],
                               refresh_token=self.credentials["MELHORENVIO_REFRESH_TOKEN"])  # fmt: skip

    def parcels(self, fake: FakeMelhorEnvio, count: int) -> list[str]:
        start = fake.now() - timedelta(days=6)
        orders = []
        for n in range(count):
            order_id = fake.add_order(s10_code(71_000_000 + n), created_at=start)
            for hour, step in enumerate(self.STORIES[n % len(self.STORIES)], start=1):
                fake.set_status(order_id, step, start + timedelta(hours=hour * 7))
            orders.append(order_id)
        return orders

    def tracked(self, fake: FakeMelhorEnvio) -> dict[str, int]:
        return {
            order_id: sum(1 for step in self.DATED if order[f"{step}_at"]) + (order["status"] in self.UNDATED)
            for order_id, order in fake.orders.items()
        }

    def refreshes(self, fake: FakeMelhorEnvio) -> int | None:
        return sum(1 for form in self._token_forms(fake) if form.get("grant_type") == "refresh_token")

    def session_tokens(self, fake: FakeMelhorEnvio) -> set[str]:
        presented = {form["refresh_token"] for form in self._token_forms(fake) if form.get("refresh_token")}
        return {*fake.access_tokens, *fake.refresh_tokens, *presented}

    def expire_sessions(self, fake: FakeMelhorEnvio) -> None:
        fake.expire_access_tokens()

    def reauthorize(self, world: Any) -> None:
        """Authorize syncctl again on Melhor Envio and put the new refresh token in the config."""
        token = f"me-rel-reauthorized-{world.reauthorized + 1}-5f0e"
        world.fake.refresh_tokens.add(token)
        config = world.config_path.read_text()
        world.config_path.write_text(re.sub(r"refresh_token: .*", f"refresh_token: {token}", config))

    @staticmethod
    def _token_forms(fake: FakeMelhorEnvio) -> list[dict[str, Any]]:
        return [r.body for r in fake.requests_log if r.path == "/oauth/token" and isinstance(r.body, dict)]


def s10_code(serial: int) -> str:
    """A Correios object code with its S10 check digit (computed here, not by syncctl)."""
    digits = f"{serial:08d}"
    remainder = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
    check = 5 if remainder == 0 else 0 if remainder == 1 else 11 - remainder
    return f"QB{digits}{check}BR"


KITS: tuple[ChannelKit, ...] = (VtexKit(), MercadoLivreKit(), CorreiosKit(), JadlogKit(), MelhorEnvioKit())
"""Every channel the suite runs against; a new channel's kit goes here."""
