"""VTEX: catalog (products, SKUs, EAN), logistics (stock), pricing, the orders feed
and invoices. Sections (§) refer to shared/reference/vtex.md.

The adapter does the HTTP; the pure mappers at the bottom turn domain records into
VTEX payloads and VTEX orders into domain records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, cast
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from syncctl.channels.base import Channel, ChannelContext, OrderBatch, concurrently
from syncctl.config import ChannelSettings
from syncctl.domain import (
    DeliveryStatus,
    EffectivePrice,
    Feature,
    ImportOutcome,
    Order,
    OrderLine,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    TrackingEvent,
    utc,
)
from syncctl.errors import RecordRejected, UncertainWrite
from syncctl.http import Limits
from syncctl.nfe import access_key_problem, cents, from_cents


class VtexCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app_key: SecretStr
    app_token: SecretStr


class VtexOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str
    environment: str = "vtexcommercestable"
    warehouse_id: str  # case-sensitive on VTEX
    sales_channel: int = 1  # the trade policy that receives prices and new products
    pricing_base_url: str | None = None
    category_path: str | None = None  # "A/B/C" for products syncctl creates; needed only to create
    lead_time: str = "00:00:00"  # sent with every inventory PUT, since a PUT zeroes what it omits
    feed_visibility_timeout_s: int = Field(300, ge=1, le=43200)
    backstop_minutes: int = Field(30, ge=1)  # how often pull-orders also lists ready-for-handling orders


CATALOG = "/api/catalog/pvt"
FEED = "/api/orders/feed"
OMS_ORDERS = "/api/oms/pvt/orders"

FEED_STATUSES = ("ready-for-handling", "handling", "invoiced", "cancellation-requested", "canceled")
FEED_RETENTION_S = 345600  # VTEX's minimum: 4 days
MAX_LOT = 10  # the feed's maximum per GET, and the handles committed per POST
# How long one run reads the feed before it leaves the rest to the next: a bound in
# time, not in lots, because the channel's rate limit sets how long a lot takes (at
# VTEX's own 25 requests/s a thousand orders take about 100 s; against a faster store,
# seconds). While it reads, the channel is locked and run-all's stock push waits.
FEED_READ_S = 60
LOTS_AT_ONCE = 16  # feed lots read at once while they come back full: a batch of up to 160 events
LIST_PAGE_SIZE = 100  # List orders: per_page <= 100, page <= 30
LIST_MAX_PAGES = 30
# Order statuses that mean start-handling has happened (or can no longer matter).
HANDLING_STARTED = frozenset({"start-handling", "handling", "invoice", "invoiced", "cancel", "canceled"})
# Feed states whose order syncctl acts on at VTEX after importing it (start-handling):
# their events are always read, since only the order's current status says whether
# that is still to do (a run that stopped after the ERP commit left it undone).
ACTED_ON = frozenset({"ready-for-handling"})
# What reading or mapping one order may raise: a refused read, or a field missing or mistyped.
UNREADABLE = (RecordRejected, ValueError, KeyError, TypeError, AttributeError, ArithmeticError)

# part -> (method, path under the order); every one of them may be repeated safely (§5).
UPDATE_ROUTES: Mapping[str, tuple[str, str]] = {
    "invoice": ("POST", "/invoice"),
    "tracking": ("PATCH", "/invoice/{number}"),
    "delivery": ("PUT", "/invoice/{number}/tracking"),
}


class VtexChannel(Channel):
    type_name = "vtex"
    label = "VTEX"
    supported = frozenset(
        {Feature.products, Feature.stock, Feature.prices, Feature.orders, Feature.order_updates}
    )
    Credentials = VtexCredentials
    Options = VtexOptions
    limits = Limits(rate_per_s=25, burst=25, concurrency=8)  # Pricing writes allow 33/s: stay under
    unsupported_reason: ClassVar[Mapping[Feature, str]] = {
        Feature.sac: "VTEX has no customer-service ticket API: "
        "sync-sac has nothing to do on a VTEX channel (see README, SAC)",
    }

    def __init__(self, ctx: ChannelContext) -> None:
        super().__init__(ctx)
        self.options = _options(ctx.settings)
        self.links = ctx.links
        self.pricing_url = pricing_base_url(ctx.settings)
        self.trade_policy = str(self.options.sales_channel)
        self._absent: set[str] = set()  # RefIds this run's bulk look-ups found missing on VTEX
        # The ids prepare_skus found for the chunk being sent: one state query per chunk,
        # not one per request from every worker thread.
        self._chunk_ids: dict[str, str] = {}

    @classmethod
    def base_url(cls, settings: ChannelSettings) -> str:
        options = _options(settings)
        return f"https://{options.account}.{options.environment}.com.br"

    @classmethod
    def auth_headers(cls, settings: ChannelSettings) -> dict[str, str]:
        credentials = cast(VtexCredentials, settings.credentials)
        return {
            "X-VTEX-API-AppKey": credentials.app_key.get_secret_value(),
            "X-VTEX-API-AppToken": credentials.app_token.get_secret_value(),
        }

    def check_credentials(self) -> None:
        """A catalog read the key needs anyway, then the configured warehouse (§0.2: listing
        warehouses needs Logistics viewer; a key without it is told, not failed)."""
        self.http.json("GET", "/api/catalog_system/pvt/sku/stockkeepingunitids", params={"page": 1, "pagesize": 1})
        response = self.http.request("GET", "/api/logistics/pvt/configuration/warehouses", allow=(403,))
        if response.status_code == 403:
            return
        ids = [str(w.get("id")) for w in response.json() or []]
        if self.options.warehouse_id not in ids:
            raise RecordRejected(
                f"options.warehouse_id {self.options.warehouse_id!r} is not a VTEX warehouse "
                f"(VTEX has: {', '.join(ids) or 'none'}; ids are case-sensitive)"
            )

    # -- ids ---------------------------------------------------------------------------
    def prepare_skus(self, skus: list[str]) -> None:
        linked = self.links.channel_ids("sku", skus)
        missing = sorted(set(skus) - linked.keys())  # the bulk look-up answers 500 to duplicates
        if missing:
            found = self._look_up_skus(missing)
            self._absent.update(ref for ref in missing if ref not in found)
            linked |= found
        self._chunk_ids = linked

    def _look_up_skus(self, refs: list[str]) -> dict[str, str]:
        """One bulk RefId -> SKU id look-up (§1.1); links and returns those VTEX has."""
        found = self.http.json(
            "POST", "/api/catalog_system/pub/sku/stockkeepingunitidsbyrefids", json=refs, safe_to_retry=True
        ) or {}
        ids = {ref: str(found[ref]) for ref in refs if found.get(ref) is not None}
        for ref, sku_id in ids.items():
            self.links.link("sku", ref, sku_id)
        return ids

    def _sku_id(self, sku: str) -> str | None:
        linked = self._chunk_ids.get(sku) or self.links.channel_ids("sku", [sku]).get(sku)
        if linked or sku in self._absent:  # prepare_skus just asked VTEX about it
            return linked
        return self._look_up_skus([sku]).get(sku)

    def _listed_sku_id(self, sku: str) -> str:
        sku_id = self._sku_id(sku)
        if sku_id is None:
            raise RecordRejected(f"SKU {sku} is not on VTEX yet: run push-products first")
        return sku_id

    def _link_if_new(self, kind: str, erp_id: str, channel_id: str) -> None:
        """A run that finds nothing new writes nothing, not even a link's sync time."""
        if self.links.channel_ids(kind, [erp_id]).get(erp_id) != channel_id:
            self.links.link(kind, erp_id, channel_id)

    def _product_id(self, ref: str) -> str | None:
        linked = self.links.channel_ids("product", [ref]).get(ref)
        if linked:
            return linked
        found = self._find_product(ref)
        if found is not None:
            self.links.link("product", ref, found)
        return found

    def _find_product(self, ref: str) -> str | None:
        # An unknown RefId answers 200 with body null, not 404 (§1.1).
        product = self.http.json("GET", f"/api/catalog_system/pvt/products/productgetbyrefid/{_segment(ref)}")
        return str(product["Id"]) if product else None

    # -- push-products (§1.8) -----------------------------------------------------------
    def product_payload(self, product: Product) -> dict[str, Any]:
        return product_payload(product)

    def product_group(self, product: Product) -> str:
        return product.product_ref

    def push_product(self, product: Product, payload: dict[str, Any]) -> None:
        sku_id = self._sku_id(product.sku)
        if sku_id is None:
            product_id = self._ensure_product(product.product_ref, payload["product"])
            sku_id = self._create_sku(product_id, payload["sku"])
            self._add_ean(sku_id, payload["ean"])
            return
        sku_url = f"{CATALOG}/stockkeepingunit/{sku_id}"
        product_id = str(self._update(sku_url, lambda current: sku_update(current, payload["sku"]))["ProductId"])
        self._link_if_new("product", product.product_ref, product_id)
        self._update_product(product_id, payload["product"])
        self._sync_ean(sku_id, payload["ean"])

    def _ensure_product(self, ref: str, owned: dict[str, Any]) -> str:
        product_id = self._product_id(ref)
        if product_id is None:
            product_id = self._create_product(ref, owned)
        else:
            self._update_product(product_id, owned)
        # Linked on every new SKU: harmless twice, and heals a create that broke off before it.
        self.http.request(
            "POST", f"{CATALOG}/product/{product_id}/salespolicy/{self.options.sales_channel}", safe_to_retry=True
        )
        return product_id

    def _create_product(self, ref: str, owned: dict[str, Any]) -> str:
        if not owned["BrandName"]:
            raise RecordRejected(f"product {ref} has no brand in the ERP: VTEX needs one to create the product")
        if not self.options.category_path:
            raise RecordRejected(
                f"product {ref} is not on VTEX and options.category_path is not set: set it to the VTEX "
                'category path new products go to (e.g. "Roupas/Camisetas")'
            )
        body = product_create_body(owned, self.options.category_path)
        product_id = self._create(f"{CATALOG}/product", body, lambda: self._find_product(ref))
        self.links.link("product", ref, product_id)
        return product_id

    def _update_product(self, product_id: str, owned: dict[str, Any]) -> None:
        self._update(f"{CATALOG}/product/{product_id}", lambda product: product_update(product, owned))

    def _create_sku(self, product_id: str, owned: dict[str, Any]) -> str:
        ref = owned["RefId"]
        body = sku_create_body(product_id, owned)
        sku_id = self._create(f"{CATALOG}/stockkeepingunit", body, lambda: self._look_up_skus([ref]).get(ref))
        self.links.link("sku", ref, sku_id)
        return sku_id

    def _create(self, url: str, body: dict[str, Any], find: Callable[[], str | None]) -> str:
        """POST a create once: creates are not idempotent (§1.2, §1.4). When the outcome
        is uncertain, look for what it may have made before failing."""
        try:
            return str(self.http.json("POST", url, json=body, safe_to_retry=False)["Id"])
        except UncertainWrite:
            found = find()
            if found is None:
                raise
            return found

    def _update(self, url: str, merge: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """GET-merge-PUT: catalog PUTs replace the whole object (§1.3, §1.5). PUT only
        when the merge changed something; returns what VTEX had."""
        current = self.http.json("GET", url)
        wanted = merge(current)
        if wanted != current:
            self.http.request("PUT", url, json=wanted)
        return current

    def _sync_ean(self, sku_id: str, ean: str | None) -> None:
        """EANs cannot be edited (§1.6): unless the SKU has exactly ours, delete all, add ours."""
        if not ean:
            return
        url = f"{CATALOG}/stockkeepingunit/{sku_id}/ean"
        current = [str(code) for code in self.http.json("GET", url) or []]
        if current == [ean]:
            return
        if current:
            self.http.request("DELETE", url)
        self._add_ean(sku_id, ean)

    def _add_ean(self, sku_id: str, ean: str | None) -> None:
        if ean:
            self.http.request("POST", f"{CATALOG}/stockkeepingunit/{sku_id}/ean/{_segment(ean)}")

    # -- push-stock (§2.2) --------------------------------------------------------------
    def stock_payload(self, level: StockLevel) -> dict[str, Any]:
        return stock_payload(level, self.options.lead_time)

    def push_stock(self, level: StockLevel, payload: dict[str, Any]) -> None:
        sku_id = self._listed_sku_id(level.sku)
        warehouse = _segment(self.options.warehouse_id)
        body = {**payload, "dateUtcOnBalanceSystem": rfc3339(self.ctx.now())}
        self.http.request("PUT", f"/api/logistics/pvt/inventory/skus/{sku_id}/warehouses/{warehouse}", json=body)

    # -- push-prices (§3) ---------------------------------------------------------------
    def price_payload(self, price: EffectivePrice) -> dict[str, Any]:
        return price_payload(price, self.trade_policy)

    def push_price(self, price: EffectivePrice, payload: dict[str, Any]) -> None:
        url = f"{self.pricing_url}/pricing/prices/{self._listed_sku_id(price.sku)}"
        current = self.http.json("GET", url, allow=(404,))  # None: no price yet
        self.http.request("PUT", url, json=price_update(current, payload, self.trade_policy))

    # -- pull-orders (§4.9) -------------------------------------------------------------
    def pull_orders(self, cursor: str | None, since: datetime | None) -> Iterator[OrderBatch]:
        self._ensure_feed()
        yield from self._feed_batches()
        now = self.ctx.now()
        if backstop_due(cursor, since, now, timedelta(minutes=self.options.backstop_minutes)):
            start = since or now - timedelta(days=self.settings.orders.initial_lookback_days)
            yield self._backstop(utc(start), now)

    def _ensure_feed(self) -> None:
        """VTEX deletes an idle feed's config: check it every run (§4.2)."""
        wanted = feed_config(self.options.feed_visibility_timeout_s)
        current = self.http.json("GET", f"{FEED}/config", allow=(404,))
        if not current or not feed_config_matches(current, wanted):
            self.http.request("POST", f"{FEED}/config", json=wanted, safe_to_retry=True)

    def _feed_batches(self) -> Iterator[OrderBatch]:
        """One batch per round of feed lots, read at once on the job's workers: the first
        round reads one lot, each next one twice as many as came back full (at most
        LOTS_AT_ONCE), since a lot short of MAX_LOT says the queue is about drained.
        Rounds start for FEED_READ_S seconds at most."""
        until = self.ctx.now() + timedelta(seconds=FEED_READ_S)
        at_once = 1
        while self.ctx.now() < until:
            lots = concurrently(self.workers, lambda _: self._read_lot(), range(at_once))
            events = [event for lot in lots for event in lot]
            if not events:
                return
            yield self._feed_batch(events)
            at_once = min(max(2 * sum(len(lot) == MAX_LOT for lot in lots), 1), LOTS_AT_ONCE)
        yield OrderBatch(orders=[], notes=[f"read the feed for {FEED_READ_S} s: the rest come next run"])

    def _read_lot(self) -> list[dict[str, Any]]:
        return self.http.json("GET", FEED, params={"maxlot": MAX_LOT}) or []

    def _feed_batch(self, events: list[dict[str, Any]]) -> OrderBatch:
        """The orders of these events that bring news, read; the handles of every event."""
        handles: dict[str, list[str]] = {}
        states: dict[str, set[str | None]] = {}
        for event in events:  # at-least-once delivery: one order may come several times
            order_id = str(event["orderId"])
            handles.setdefault(order_id, []).append(event["handle"])
            states.setdefault(order_id, set()).add(event.get("state"))
        held = self.ctx.order_statuses(list(handles)) if self.ctx.order_statuses else {}
        to_read = [
            order_id for order_id, named in states.items()
            if any(brings_news(state, held.get(order_id)) for state in named)
        ]
        orders, unreadable = self._read_orders(to_read)
        for order_id in unreadable:
            del handles[order_id]  # left uncommitted: its events come back after the visibility timeout
        return OrderBatch(orders=orders, ack=handles, unreadable=unreadable)

    def _backstop(self, start: datetime, end: datetime) -> OrderBatch:
        """List ready-for-handling orders (§4.7) and read those the ERP does not have:
        covers feed events that expired or never came."""
        listed, notes = self._list_ready_orders(start, end)
        known = self.ctx.known_orders(listed)
        orders, unreadable = self._read_orders([order_id for order_id in listed if order_id not in known])
        # The cursor is the backstop's start time: the job saves it once these orders are in.
        return OrderBatch(orders=orders, cursor=end.isoformat(), notes=notes, unreadable=unreadable)

    def _list_ready_orders(self, start: datetime, end: datetime) -> tuple[list[str], list[str]]:
        window = f"creationDate:[{rfc3339(start, 'milliseconds')} TO {rfc3339(end, 'milliseconds')}]"
        ids: dict[str, None] = {}  # ordered set: an order may shift onto the next page
        for page in range(1, LIST_MAX_PAGES + 1):
            body = self.http.json("GET", OMS_ORDERS, params={
                "f_status": "ready-for-handling", "f_creationDate": window, "orderBy": "creationDate,asc",
                "per_page": LIST_PAGE_SIZE, "page": page,
            }) or {}
            entries = body.get("list") or []
            ids.update((str(entry["orderId"]), None) for entry in entries)
            if not entries or page >= int((body.get("paging") or {}).get("pages") or 0):
                return list(ids), []
        note = (
            f"more than {LIST_MAX_PAGES * LIST_PAGE_SIZE} ready-for-handling orders since {start.isoformat()}: "
            "the backstop checked the oldest only"
        )
        return list(ids), [note]

    def _read_orders(self, order_ids: list[str]) -> tuple[list[Order], dict[str, str]]:
        """GET the orders (at once, on the job's workers) and map them: (orders to import,
        id -> why for those that could not be read). One bad order never stops the rest.
        Orders whose status needs nothing are neither imported nor unreadable."""
        unreadable: dict[str, str] = {}
        read: dict[str, tuple[Any, str]] = {}
        for order_id, got in zip(order_ids, concurrently(self.workers, self._fetch_order, order_ids)):
            if isinstance(got, Exception):
                unreadable[order_id] = _unreadable(order_id, got)
            else:
                read[order_id] = got
        item_ids = sorted({item_id for order_json, _ in read.values() for item_id in _item_ids(order_json)})
        skus = self.links.erp_ids("sku", item_ids) if item_ids else {}  # one state read for them all
        orders = []
        for order_id, (order_json, raw) in read.items():
            try:
                order = order_from_vtex(order_json, skus, raw=raw)
            except UNREADABLE as exc:
                unreadable[order_id] = _unreadable(order_id, exc)
                continue
            if order is not None:
                orders.append(order)
        return orders, unreadable

    def _fetch_order(self, order_id: str) -> tuple[Any, str] | Exception:
        """The order and its text, or what made it unreadable (on a worker thread)."""
        try:
            return self._get_order(order_id)
        except UNREADABLE as exc:
            return exc

    def _get_order(self, order_id: str) -> tuple[dict[str, Any], str]:
        """The order (§4.5b) and its JSON text, kept for support staff."""
        response = self.http.request("GET", f"{OMS_ORDERS}/{_segment(order_id)}")
        return json.loads(response.text, parse_float=Decimal), response.text

    def after_import(self, order: Order, outcome: ImportOutcome) -> Order | None:
        """start-handling once the order is safe in the ERP (§4.6); only a 204 says it worked.
        Returns the order at the status VTEX moved it to, for the ERP to hold."""
        if order.channel_status != "ready-for-handling" or outcome.order_id is None:
            return None
        order_id = order.channel_order_id
        try:
            response = self.http.request(
                "POST", f"{OMS_ORDERS}/{_segment(order_id)}/start-handling", allow=(409,), safe_to_retry=False
            )
            if response.status_code == 204:
                return moved_to(order, "start-handling")
        except UncertainWrite:
            pass
        # 409 (OMS003) or an unknown outcome: the order's current status tells.
        status = self._get_order(order_id)[0].get("status")
        if status not in HANDLING_STARTED:
            raise RecordRejected(
                f"VTEX did not start handling order {order_id} (it is {status}): tried again next run"
            )
        return moved_to(order, status)

    def acknowledge(self, batch: OrderBatch, failed: set[str]) -> None:
        """Commit every handle (§4.4), ignored events included, except failed orders' ones."""
        ack: dict[str, list[str]] = batch.ack or {}
        handles = [handle for order_id, owned in ack.items() if order_id not in failed for handle in owned]
        lots = [handles[start:start + MAX_LOT] for start in range(0, len(handles), MAX_LOT)]
        concurrently(self.workers, self._commit, lots)

    def _commit(self, handles: list[str]) -> None:
        self.http.request("POST", FEED, json={"handles": handles}, safe_to_retry=True)

    # -- push-invoices (§5) -------------------------------------------------------------
    def order_update_payloads(self, update: OrderUpdate) -> dict[str, dict[str, Any]]:
        return order_update_payloads(update)

    def push_order_update(self, update: OrderUpdate, part: str, payload: dict[str, Any]) -> None:
        method, path = UPDATE_ROUTES[part]
        number = _segment(update.invoice.number) if update.invoice else ""
        url = f"{OMS_ORDERS}/{_segment(update.channel_order_id)}{path.format(number=number)}"
        self.http.request(method, url, json=payload, safe_to_retry=True)


def _options(settings: ChannelSettings) -> VtexOptions:
    return cast(VtexOptions, settings.options)


def _unreadable(order_id: str, exc: Exception) -> str:
    why = exc if isinstance(exc, RecordRejected) else f"{type(exc).__name__}: {exc}"
    return f"VTEX order {order_id} could not be read, left for the next run: {why}"


def _item_ids(order_json: Any) -> list[str]:
    """The VTEX SKU ids of an order's items; those of a malformed order are left to
    order_from_vtex to refuse."""
    items = order_json.get("items") if isinstance(order_json, dict) else None
    if not isinstance(items, list):
        return []
    return [str(item["id"]) for item in items if isinstance(item, dict) and item.get("id") is not None]


def _segment(value: str) -> str:
    """One URL path segment: a "/" in an id must not open a new path level."""
    return quote(value, safe="")


def pricing_base_url(settings: ChannelSettings) -> str:
    """The Pricing API lives on its own host (§0.1); a fake serves it under /{account}."""
    options = _options(settings)
    if options.pricing_base_url:
        return options.pricing_base_url.rstrip("/")
    if settings.base_url:
        return f"{settings.base_url.rstrip('/')}/{options.account}"
    return f"https://api.vtex.com/{options.account}"


# ---------------------------------------------------------------------------------------
# Pure mappers: no I/O. Money is Decimal; catalog and pricing take decimal units,
# orders and invoices take integer cents.

PROMO_EPOCH = "2000-01-01T00:00:00Z"  # `from` of a promotion with no start: keeps the payload stable
SKU_DIMENSIONS = (("height_cm", "Height"), ("length_cm", "Length"), ("width_cm", "Width"))
PRODUCT_UPDATED = ("Name", "RefId", "Description")  # what syncctl owns on an existing product
ORDER_STATUS: Mapping[str, OrderStatus] = {
    "ready-for-handling": OrderStatus.approved,
    "start-handling": OrderStatus.handling,
    "handling": OrderStatus.handling,
    "invoice": OrderStatus.invoiced,
    "invoiced": OrderStatus.invoiced,
    "cancel": OrderStatus.canceled,
    "canceled": OrderStatus.canceled,
}
_LOCATION = re.compile(r"(?P<city>.*?)\s*(?:/|-)\s*(?P<state>[A-Za-z]{2})\s*")  # "City/UF", "City - UF"


def rfc3339(value: datetime, timespec: str = "seconds") -> str:
    """UTC with a Z, as VTEX's date ranges and filters want it."""
    return utc(value).isoformat(timespec=timespec).replace("+00:00", "Z")


def product_payload(product: Product) -> dict[str, Any]:
    """What syncctl owns of a product and its SKU on VTEX (§1.2, §1.4)."""
    grams = _grams(product)
    dimensions = {name: _dimension(product, attr) for attr, name in SKU_DIMENSIONS}
    sku = {
        "Name": product.name,
        "RefId": product.sku,
        **{f"Packaged{name}": value for name, value in dimensions.items()},
        "PackagedWeightKg": grams,  # the store's weight unit, grams by default, despite the name
        **dimensions,
        "WeightKg": grams,
        "IsActive": product.active,  # wanted; see sku_update
    }
    return {
        "product": {
            "Name": product.parent_name or product.name,
            "RefId": product.product_ref,
            "Description": product.description,
            "BrandName": product.brand,
        },
        "sku": sku,
        "ean": product.ean,
    }


def _dimension(product: Product, attr: str) -> Decimal:
    value = getattr(product, attr)
    if value is None or value <= 0:
        raise RecordRejected(
            f"SKU {product.sku} has no {attr} in the ERP: VTEX needs the packaged dimensions and weight"
        )
    return value


def _grams(product: Product) -> int:
    grams = int((_dimension(product, "weight_kg") * 1000).to_integral_value(rounding=ROUND_HALF_UP))
    if grams == 0:
        raise RecordRejected(
            f"SKU {product.sku} weighs under 1 g (weight_kg {product.weight_kg}): VTEX needs whole grams"
        )
    return grams


def merge_owned(current: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with the fields syncctl owns; an owned field the ERP leaves empty
    keeps VTEX's value (a catalog PUT would clear it otherwise)."""
    return {**current, **{key: value for key, value in owned.items() if value is not None}}


def product_update(current: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
    return merge_owned(current, {key: owned[key] for key in PRODUCT_UPDATED})


def product_create_body(owned: Mapping[str, Any], category_path: str) -> dict[str, Any]:
    body = {key: value for key, value in owned.items() if value is not None}
    # Activation is per SKU (they start inactive); a product created hidden would never sell.
    return {**body, "CategoryPath": category_path, "IsVisible": True, "IsActive": True}


def sku_update(current: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
    """The SKU to PUT back: an ERP-inactive SKU is deactivated; an ERP-active one keeps
    VTEX's IsActive (activation needs an image) and asks VTEX to activate it when it can.
    IsActive is always sent: a PUT without it deactivates the SKU (§1.5)."""
    merged = merge_owned(current, {key: value for key, value in owned.items() if key != "IsActive"})
    if owned["IsActive"]:
        merged["IsActive"] = bool(current.get("IsActive"))
        merged["ActivateIfPossible"] = True
    else:
        merged["IsActive"] = False
    return merged


def sku_create_body(product_id: str, owned: Mapping[str, Any]) -> dict[str, Any]:
    # IsActive true on create is a 400: VTEX activates the SKU itself once it can (§1.4).
    return {**owned, "ProductId": int(product_id), "IsActive": False, "ActivateIfPossible": True}


def stock_payload(level: StockLevel, lead_time: str) -> dict[str, Any]:
    """All three fields, always: an inventory PUT zeroes what it omits (§2.2)."""
    return {"quantity": level.quantity, "unlimitedQuantity": False, "leadTime": lead_time}


def price_payload(price: EffectivePrice, trade_policy: str) -> dict[str, Any]:
    """Base and list price; a running promotion as a fixed price of our trade policy,
    with its end (§3.2). A "promotion" not below the list price is not sent."""
    for name, value in (("list price", price.list_price), ("sale price", price.sale_price)):
        if value is not None and value <= 0:
            raise RecordRejected(f"SKU {price.sku}: {name} {value} must be above 0")
    fixed = []
    if price.sale_price is not None and price.sale_price < price.list_price:
        promo: dict[str, Any] = {
            "tradePolicyId": trade_policy,
            "value": price.sale_price,
            "listPrice": price.list_price,
            "minQuantity": 1,
        }
        if price.sale_ends_at is not None:
            start = rfc3339(price.sale_starts_at) if price.sale_starts_at else PROMO_EPOCH
            promo["dateRange"] = {"from": start, "to": rfc3339(price.sale_ends_at)}
        fixed.append(promo)
    return {"basePrice": price.list_price, "listPrice": price.list_price, "fixedPrices": fixed}


def price_update(
    current: Mapping[str, Any] | None, payload: Mapping[str, Any], trade_policy: str
) -> dict[str, Any]:
    """The PUT body: a PUT replaces every fixed price (§3.2), so keep those that are not
    ours (other trade policies, quantity prices) and the cost price; never markup too."""

    def ours(entry: Mapping[str, Any]) -> bool:
        return str(entry.get("tradePolicyId")) == trade_policy and entry.get("minQuantity") == 1

    current = current or {}
    kept = [
        {key: value for key, value in entry.items() if value is not None}
        for entry in current.get("fixedPrices") or [] if not ours(entry)
    ]
    body = {"basePrice": payload["basePrice"], "listPrice": payload["listPrice"],
            "fixedPrices": kept + list(payload["fixedPrices"])}
    if current.get("costPrice") is not None:
        body["costPrice"] = current["costPrice"]
    return body


def feed_config(visibility_timeout_s: int) -> dict[str, Any]:
    return {
        "filter": {"type": "FromWorkflow", "status": list(FEED_STATUSES)},
        "queue": {
            "visibilityTimeoutInSeconds": visibility_timeout_s,
            "MessageRetentionPeriodInSeconds": FEED_RETENTION_S,  # VTEX's spelling on POST
        },
    }


def feed_config_matches(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    have_filter, want_filter = current.get("filter") or {}, wanted["filter"]
    have_queue = current.get("queue") or {}
    return (
        have_filter.get("type") == want_filter["type"]
        and sorted(have_filter.get("status") or []) == sorted(want_filter["status"])
        and have_queue.get("visibilityTimeoutInSeconds") == wanted["queue"]["visibilityTimeoutInSeconds"]
    )


def backstop_due(cursor: str | None, since: datetime | None, now: datetime, every: timedelta) -> bool:
    """`cursor` is the ISO time of the last backstop; `since` asks for one explicitly."""
    if since is not None or cursor is None:
        return True
    try:
        last = utc(datetime.fromisoformat(cursor))
    except ValueError:
        return True
    return now - last >= every


def brings_news(state: str | None, held: OrderStatus | None) -> bool:
    """Whether a feed event naming `state` needs its order read, the ERP holding the
    order at `held` (None: not at all). §4.5 says to act on an order's current status,
    so an event is a reason to read, not what to import. It brings no news when the ERP
    already holds the order at the status it names (e.g. the `handling` event our own
    start-handling caused): importing that status would change nothing, and any status
    the order has reached since brings an event of its own (the feed config asks for
    every status syncctl imports: FEED_STATUSES; those between them lead to one),
    which is read when it comes. An event whose state syncctl acts on beyond the import
    (ACTED_ON) is always read."""
    if held is None or state in ACTED_ON:
        return True
    return ORDER_STATUS.get(state or "") is not held


def moved_to(order: Order, vtex_status: str) -> Order:
    """`order` at the status a call of ours moved it to; the ERP keeps the JSON it has."""
    return replace(order, status=ORDER_STATUS[vtex_status], channel_status=vtex_status, raw=None)


def order_from_vtex(
    order_json: Mapping[str, Any], sku_by_vtex_id: Mapping[str, str], raw: str | None = None
) -> Order | None:
    """A VTEX order (§4.5b) as the ERP stores it; None when its status needs nothing
    (payment states, cancellation-requested, null). Lines map by VTEX SKU id, falling
    back on the item's refId; `raw` is the order's JSON text (default: re-encoded)."""
    status = ORDER_STATUS.get(order_json.get("status") or "")
    if status is None:
        return None
    totals = {entry["id"]: entry.get("value") or 0 for entry in order_json.get("totals") or []}
    client = order_json.get("clientProfileData") or {}
    address = (order_json.get("shippingData") or {}).get("address")
    lines = tuple(
        OrderLine(
            sku=sku_by_vtex_id.get(str(item["id"])) or item.get("refId") or "",
            quantity=int(item["quantity"]),
            unit_price=from_cents(item["price"]),
            channel_item_id=str(item["id"]),
        )
        for item in order_json.get("items") or []
    )
    return Order(
        channel_order_id=order_json["orderId"],
        status=status,
        placed_at=utc(datetime.fromisoformat(order_json["creationDate"])),
        lines=lines,
        total=from_cents(order_json["value"]),
        shipping_cost=from_cents(totals.get("Shipping", 0)),
        discount=from_cents(-totals.get("Discounts", 0)),  # VTEX totals discounts as a negative value
        customer_name=_customer_name(client),
        customer_document=client.get("corporateDocument") if client.get("isCorporate") else client.get("document"),
        customer_email=client.get("email"),
        shipping_address=json.dumps(address, ensure_ascii=False, default=str) if address else None,
        raw=raw if raw is not None else json.dumps(order_json, ensure_ascii=False, default=str),
        channel_status=order_json["status"],
    )


def _customer_name(client: Mapping[str, Any]) -> str | None:
    if client.get("isCorporate") and client.get("corporateName"):
        return client["corporateName"]
    return " ".join(part for part in (client.get("firstName"), client.get("lastName")) if part) or None


def order_update_payloads(update: OrderUpdate) -> dict[str, dict[str, Any]]:
    """invoice, then tracking, then delivery (§5); each needs the one before it, and
    a canceled order gets nothing."""
    if update.status is OrderStatus.canceled or update.invoice is None:
        return {}
    parts = {"invoice": invoice_payload(update)}
    shipment = update.shipment
    if shipment is not None and shipment.tracking_code:
        parts["tracking"] = tracking_payload(shipment)
        if update.events:
            parts["delivery"] = delivery_payload(shipment, update.events)
    return parts


def invoice_payload(update: OrderUpdate) -> dict[str, Any]:
    invoice = update.invoice
    assert invoice is not None
    order_id = update.channel_order_id
    if not invoice.number or "/" in invoice.number:
        raise RecordRejected(
            f"order {order_id}: invoice number {invoice.number!r} cannot go to VTEX (empty, or has a '/', "
            "which breaks VTEX's invoice routes): use another separator for the series"
        )
    problem = access_key_problem(invoice.nfe_key)
    if problem:
        raise RecordRejected(f"order {order_id}: {problem}")
    if invoice.total <= 0:
        raise RecordRejected(f"order {order_id}: invoice total {invoice.total} must be above 0")
    return {
        "type": "Output",
        "invoiceNumber": invoice.number,
        "invoiceValue": str(cents(invoice.total)),  # the NF-e total: freight included
        "issuanceDate": rfc3339(invoice.issued_at),
        "invoiceKey": invoice.nfe_key,
        "invoiceUrl": None,
        "embeddedInvoice": invoice.xml,
        "courier": "",  # never null
        "trackingNumber": "",
        "trackingUrl": "",
        "dispatchedDate": None,
        "items": [_invoice_item(order_id, line) for line in update.lines],
    }


def _invoice_item(order_id: str, line: OrderLine) -> dict[str, Any]:
    if not line.channel_item_id:
        raise RecordRejected(f"order {order_id}: line {line.sku} has no VTEX item id")
    return {"id": line.channel_item_id, "price": cents(line.unit_price), "quantity": line.quantity}


def tracking_payload(shipment: Shipment) -> dict[str, Any]:
    return {
        "trackingNumber": shipment.tracking_code,
        "trackingUrl": shipment.tracking_url,
        "courier": shipment.carrier or "",
        "dispatchedDate": rfc3339(shipment.shipped_at) if shipment.shipped_at else None,
    }


def delivery_payload(shipment: Shipment, events: tuple[TrackingEvent, ...]) -> dict[str, Any]:
    """Tracking events for carriers VTEX does not track itself (§5.3); times in UTC."""
    delivered = shipment.delivery_status is DeliveryStatus.delivered
    delivered_at = shipment.delivered_at or max(
        (event.occurred_at for event in events if event.status is DeliveryStatus.delivered), default=None
    )
    return {
        "isDelivered": delivered,
        "deliveredDate": utc(delivered_at).strftime("%Y-%m-%d %H:%M") if delivered and delivered_at else None,
        "events": [_tracking_event(event) for event in sorted(events, key=lambda event: event.occurred_at)],
    }


def _tracking_event(event: TrackingEvent) -> dict[str, Any]:
    city, state = split_location(event.location)
    return {
        "city": city,
        "state": state,
        "description": event.description or event.code,
        "date": utc(event.occurred_at).date().isoformat(),
    }


def split_location(location: str | None) -> tuple[str, str]:
    """(city, state) from "City/UF" or "City - UF"; the whole text as the city otherwise."""
    if not location:
        return "", ""
    match = _LOCATION.fullmatch(location.strip())
    if match is None:
        return location.strip(), ""
    return match["city"], match["state"].upper()
