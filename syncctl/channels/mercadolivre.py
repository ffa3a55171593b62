"""Mercado Livre: OAuth with single-use refresh tokens, listings linked by SELLER_SKU
(legacy items with variations and User Products items), stock (per item, per
variation, multi-warehouse with x-version; Full skipped), prices with PRICE_DISCOUNT
promotions, orders read by date_last_updated windows with each pack as one ERP
order, NF-e to the shipment or the pack, ME1 tracking, and post-sale messages and
claims as tickets. Sections (§) refer to shared/reference/mercadolivre.md.

The adapter does the HTTP; the pure mappers at the bottom turn domain records into
Mercado Livre payloads and Mercado Livre JSON into domain records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from syncctl.auth import RotatingTokens, Token, token_request
from syncctl.channels.base import Channel, ChannelContext, OrderBatch, TicketBatch
from syncctl.config import ChannelSettings
from syncctl.domain import (
    UTC,
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
    Ticket,
    TicketMessage,
    money,
    utc,
)
from syncctl.errors import (
    ConfigError,
    NothingToSend,
    RecordRejected,
    UncertainWrite,
    Undelivered,
)
from syncctl.http import Limits
from syncctl.http.client import error_message
from syncctl.nfe import access_key_problem


class MlCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr | None = None  # the first one only; rotated ones live in the state file


class MlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redirect_uri: str | None = None  # the app's redirect URI: needed to trade an authorization code
    store_id: str | None = None  # multi-warehouse sellers: the stock location that receives the ERP balance
    me1_service_id: int | None = None  # ME1: the id ML gave the seller's shipping service, if it has one
    order_window_hours: int = Field(24, ge=1, le=744)  # orders/search reads windows of this size
    order_overlap_minutes: int = Field(60, ge=0, le=1440)  # re-read before the cursor: late-indexed orders


API = "https://api.mercadolibre.com"
TOKEN_URL = "/oauth/token"
SITE = "MLB"
SITE_ZONE = ZoneInfo("America/Sao_Paulo")
MULTIGET = 20  # ids per GET /items?ids=
ORDERS_PAGE = 50
MAX_WINDOW_PASSES = 3  # a window whose orders keep moving while read is read again, this often
CONVERSATION_PAGE = 50
CLAIMS_PAGE = 100
SELLER_MAX_MESSAGE = 350  # when a conversation does not say (§10.2)
UP_STOCK_ATTEMPTS = 3  # x-version conflicts (409) before an item's stock waits for the next run
MULTIWAREHOUSE_TAGS = frozenset({"warehouse_management", "multiwarehouse"})
LABEL_MODES = frozenset({"drop_off", "xd_drop_off", "cross_docking", "xd_same_day"})  # NF-e import unlocks the label
TERMINAL_SHIPMENT = frozenset({"delivered", "not_delivered"})
AI_AGENT_ID = "3037675074"  # ML's messaging agent in MLB (§10.2)
REPLY_SLACK = timedelta(minutes=5)  # clock difference allowed when looking for a reply already sent


@dataclass(frozen=True)
class Listing:
    """Where an ERP sku lives on Mercado Livre: an item, or one variation of it."""

    item_id: str
    variation_id: int | None = None

    def __str__(self) -> str:
        return self.item_id if self.variation_id is None else f"{self.item_id}/{self.variation_id}"

    @classmethod
    def parse(cls, text: str) -> Listing:
        item_id, _, variation = text.partition("/")
        return cls(item_id, int(variation) if variation else None)


class MercadoLivreChannel(Channel):
    type_name = "mercadolivre"
    label = "Mercado Livre"
    supported = frozenset(Feature)
    Credentials = MlCredentials
    Options = MlOptions
    limits = Limits(rate_per_s=5, burst=10, concurrency=4)  # no published limit; messaging allows 500/min

    def __init__(self, ctx: ChannelContext) -> None:
        super().__init__(ctx)
        if ctx.state is None:
            raise ConfigError(f"{ctx.settings.name}: Mercado Livre keeps its rotating tokens in the state file")
        self.options = cast(MlOptions, ctx.settings.options)
        self.credentials = cast(MlCredentials, ctx.settings.credentials)
        self.links = ctx.links
        first = self.credentials.refresh_token
        self.tokens = RotatingTokens(
            owner=f"channel:{ctx.settings.name}",
            label=self.label,
            state=ctx.state,
            grant=self._grant,
            now=ctx.now,
            reauthorize=f"get a new authorization code and run `syncctl channel auth {ctx.settings.name} --code CODE`",
            first_refresh_token=first.get_secret_value() if first else None,
        )
        self.http.use_auth(self.tokens)
        self._user: dict[str, Any] | None = None
        self._items: dict[str, dict[str, Any]] = {}  # read this run, by item id

    @classmethod
    def base_url(cls, settings: ChannelSettings) -> str:
        return API

    # -- OAuth (§1) ----------------------------------------------------------------------
    def _grant(self, form: Mapping[str, str]) -> Token:
        client = {"client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret.get_secret_value()}
        return token_request(self.http, TOKEN_URL, {**form, **client}, self.ctx.now(), self.label)

    def authorize(self, *, code: str | None = None, refresh_token: str | None = None,
                  code_verifier: str | None = None) -> str:
        if code:
            if not self.options.redirect_uri:
                raise ConfigError(f"{self.settings.name}: set options.redirect_uri (the app's, exactly) to trade a code")
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.options.redirect_uri}
            if code_verifier:
                form["code_verifier"] = code_verifier
        elif refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            raise ConfigError("give --code (from the authorization redirect) or --refresh-token")
        pair = self.tokens.authorize(form)
        return f"token pair stored for Mercado Livre user {pair.account or '?'} (valid until {pair.expires_at:%Y-%m-%d %H:%M}Z)"

    def check_credentials(self) -> None:
        self._me()

    def _me(self) -> dict[str, Any]:
        if self._user is None:
            self._user = self.http.json("GET", "/users/me")
        return self._user

    def _seller_id(self) -> str:
        return str(self._me()["id"])

    # -- listings (§3) -------------------------------------------------------------------
    def prepare_skus(self, skus: list[str]) -> None:
        linked = self.links.channel_ids("sku", skus)
        for sku in skus:
            if sku not in linked:
                found = self._find_listing(sku)
                if found is not None:
                    linked[sku] = str(found)
        self._read_items([Listing.parse(text).item_id for text in linked.values()])

    def _find_listing(self, sku: str) -> Listing | None:
        """Link an ERP sku to the live listing carrying it as SELLER_SKU (§3.4), so a seller
        with listings already live gets no duplicates."""
        found = self.http.json("GET", f"/users/{self._seller_id()}/items/search", params={"seller_sku": sku}) or {}
        ids = [str(item_id) for item_id in found.get("results") or []]
        self._read_items(ids)
        listing = listing_for_sku([self._items[i] for i in ids if i in self._items], sku)
        if listing is not None:
            self.links.link("sku", sku, str(listing))
        return listing

    def _read_items(self, item_ids: Sequence[str]) -> None:
        missing = sorted(set(item_ids) - self._items.keys())
        for start in range(0, len(missing), MULTIGET):
            chunk = missing[start:start + MULTIGET]
            answers = self.http.json("GET", "/items", params={"ids": ",".join(chunk), "include_attributes": "all"})
            for answer in answers or []:
                if answer.get("code") == 200:
                    self._items[str(answer["body"]["id"])] = answer["body"]

    def _listing(self, sku: str) -> Listing:
        linked = self.links.channel_ids("sku", [sku]).get(sku)
        listing = Listing.parse(linked) if linked else self._find_listing(sku)
        if listing is None:
            raise RecordRejected(
                f"no Mercado Livre listing has SELLER_SKU {sku}: create it on Mercado Livre (it needs pictures, "
                "a category and a price, which the ERP does not hold) with that SELLER_SKU; the next run links it"
            )
        return listing

    def _item(self, item_id: str) -> dict[str, Any]:
        item = self._items.get(item_id)
        if item is None:
            item = self.http.json("GET", f"/items/{item_id}", params={"include_attributes": "all"})
            self._items[item_id] = item
        return item

    def _changed(self, item_id: str) -> None:
        self._items.pop(item_id, None)  # read again when next needed

    # -- push-products (§3.5) ------------------------------------------------------------
    def product_payload(self, product: Product) -> dict[str, Any]:
        return product_payload(product)

    def product_group(self, product: Product) -> str:
        return product.product_ref

    def push_product(self, product: Product, payload: dict[str, Any]) -> None:
        listing = self._listing(product.sku)
        item = self._item(listing.item_id)
        item_body = item_changes(item, listing, payload)
        variation_body = variation_changes(item, listing, payload)
        if not item_body and not variation_body:
            if title_frozen(item, payload):
                raise NothingToSend(
                    f"{listing.item_id} has sales, so Mercado Livre keeps its title {listing_name(item)!r}"
                )
            return
        if item_body:
            self.http.request("PUT", f"/items/{listing.item_id}", json=item_body)
        if variation_body:
            self.http.request("PUT", f"/items/{listing.item_id}/variations/{listing.variation_id}", json=variation_body)
        self._changed(listing.item_id)

    # -- push-stock (§4) -----------------------------------------------------------------
    def stock_payload(self, level: StockLevel) -> dict[str, Any]:
        return {"available_quantity": level.quantity}

    def push_stock(self, level: StockLevel, payload: dict[str, Any]) -> None:
        listing = self._listing(level.sku)
        item = self._item(listing.item_id)
        if is_full(item):
            raise NothingToSend(
                f"{listing.item_id} is a Full listing: its stock is what sits in Mercado Livre's warehouse, not sent"
            )
        if MULTIWAREHOUSE_TAGS & set(self._me().get("tags") or ()):
            self._push_warehouse_stock(item, listing, payload["available_quantity"])
        elif listing.variation_id is not None:
            self.http.request("PUT", f"/items/{listing.item_id}/variations/{listing.variation_id}", json=payload)
        else:
            self.http.request("PUT", f"/items/{listing.item_id}", json=payload)
        self._changed(listing.item_id)

    def _push_warehouse_stock(self, item: Mapping[str, Any], listing: Listing, quantity: int) -> None:
        """Multi-origin sellers: the user product's stock, guarded by x-version (§4)."""
        up_id = user_product_of(item, listing)
        url = f"/user-products/{up_id}/stock"
        for _ in range(UP_STOCK_ATTEMPTS):
            current = self.http.request("GET", url)
            location = stock_location(json.loads(current.text), self.options.store_id, up_id)
            body = {"locations": [{**location, "quantity": quantity}]}
            answer = self.http.request(
                "PUT", f"{url}/type/seller_warehouse", json=body, allow=(409,),
                headers={"x-version": current.headers.get("x-version", "")},
            )
            if answer.status_code != 409:
                return
        raise RecordRejected(f"stock of {up_id} kept changing on Mercado Livre (x-version conflicts): next run retries")

    # -- push-prices (§5) ----------------------------------------------------------------
    def price_payload(self, price: EffectivePrice) -> dict[str, Any]:
        return price_payload(price, self.ctx.now())

    def push_price(self, price: EffectivePrice, payload: dict[str, Any]) -> None:
        listing = self._listing(price.sku)
        item = self._item(listing.item_id)
        if listing.variation_id is not None:
            self._check_one_price(price.sku, item, payload)
        if Decimal(str(item.get("price"))) != payload["price"]:
            self._put_price(listing.item_id, payload["price"])
        self._sync_promotion(listing.item_id, payload["promotion"])

    def _check_one_price(self, sku: str, item: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        """A legacy item has one price for all its variations (§3.1): when the ERP prices
        them differently, fail them rather than let the last one pushed win. Each SKU's
        wanted price is kept, so siblings changed together agree by the next run."""
        wanted = price_fingerprint(payload)
        self._link_if_new("wanted-price", sku, wanted)
        listings = [str(Listing(str(item["id"]), int(v["id"]))) for v in item.get("variations") or []]
        siblings = [other for other in self.links.erp_ids("sku", listings).values() if other != sku]
        differing = {other: value for other, value in self.links.channel_ids("wanted-price", siblings).items()
                     if value != wanted}  # fmt: skip
        if differing:
            raise RecordRejected(
                f"{item['id']} is a listing with variations, which Mercado Livre sells at one price, and the ERP "
                f"prices {sku} unlike {', '.join(sorted(differing))}: give its SKUs one price (and promotion)"
            )

    def _put_price(self, item_id: str, amount: Decimal) -> None:
        # Price alone: on a listing under ML's price automation this is refused (400),
        # where a PUT with other fields would be accepted and the price silently ignored.
        answer = self.http.request("PUT", f"/items/{item_id}", json={"price": amount}, allow=(400,))
        if answer.status_code == 400:
            message = error_message(answer)
            if "automat" in answer.text.lower():
                raise NothingToSend(f"{item_id} is under Mercado Livre's price automation: ML sets its price")
            raise RecordRejected(f"HTTP 400 from {self.label}: {message}")
        self._changed(item_id)

    def _sync_promotion(self, item_id: str, wanted: Mapping[str, Any] | None) -> None:
        """Our PRICE_DISCOUNT (§5.2): kept if it already is what the ERP wants, else
        replaced (ML takes one per item) or removed."""
        url = f"/seller-promotions/items/{item_id}"
        ours = self._price_discounts(url)
        if wanted is not None and any(promotion_matches(p, wanted) for p in ours):
            return
        if ours:
            self.http.request("DELETE", url, params={"promotion_type": "PRICE_DISCOUNT", "app_version": "v2"})
        if wanted is None:
            return
        body = promotion_body(wanted, self.ctx.now())
        try:
            self.http.request("POST", url, params={"app_version": "v2"}, json=body, safe_to_retry=False)
        except UncertainWrite:
            if not any(promotion_matches(p, wanted) for p in self._price_discounts(url)):
                raise

    def _price_discounts(self, url: str) -> list[dict[str, Any]]:
        listed = self.http.json("GET", url, params={"app_version": "v2"}) or []
        return [p for p in listed if p.get("type") == "PRICE_DISCOUNT" and p.get("status") in ("started", "pending")]

    # -- pull-orders (§6) ----------------------------------------------------------------
    def pull_orders(self, cursor: str | None, since: datetime | None) -> Iterator[OrderBatch]:
        now = self.ctx.now()
        start = order_window_start(cursor, since, now, self.settings.orders.initial_lookback_days,
                                   timedelta(minutes=self.options.order_overlap_minutes))  # fmt: skip
        seen: set[int] = set()
        complete = True
        for low, high in order_windows(start, now, timedelta(hours=self.options.order_window_hours)):
            read = self._read_window(low, high, seen)
            for page in read:
                yield self._packs_batch(page, seen)
            complete = complete and read.complete
        if complete:  # the job saves it only if no order read before it failed
            yield OrderBatch(orders=[], cursor=now.isoformat())
        else:
            yield OrderBatch(orders=[], notes=["orders kept changing while they were read: the next run reads them again"])

    def _read_window(self, low: datetime, high: datetime, seen: set[int]) -> WindowRead:
        def page(offset: int) -> dict[str, Any]:
            return self.http.json("GET", "/orders/search", params={
                "seller": self._seller_id(),
                "order.date_last_updated.from": site_iso(low),
                "order.date_last_updated.to": site_iso(high),
                "sort": "date_asc", "offset": offset, "limit": ORDERS_PAGE,
            }) or {}  # fmt: skip

        return WindowRead(page, seen)

    def _packs_batch(self, page: list[dict[str, Any]], seen: set[int]) -> OrderBatch:
        """The page's orders, each pack whole: one ERP order per pack (§6.4). A pack ML
        cannot show whole now (a 404 right after a sale can be transient, §2) is
        unreadable: it fails, and the cursor waits for it."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for order in page:
            groups.setdefault(purchase_key(order), []).append(order)
        orders, notes, unreadable = [], [], {}
        for key, members in groups.items():
            try:
                members = self._whole_pack(key, members)
                order, note = self._order_for(key, members)
            except RecordRejected as exc:
                unreadable[key] = f"pack {key} could not be read whole ({exc}): the next run reads it again"
                continue
            seen.update(int(member["id"]) for member in members)
            if order is None or self._imported_as(key) == order.channel_status:
                continue  # payment pending, or re-read in the overlap as the ERP already has it
            orders.append(order)
            if note:
                notes.append(note)
        return OrderBatch(orders=orders, notes=notes, unreadable=unreadable)

    def after_import(self, order: Order, outcome: ImportOutcome) -> None:
        """Remember the ML state the ERP now holds, so re-reading the cursor's overlap
        hands over only orders that changed since (a date cursor's acknowledgement)."""
        if order.channel_status is not None:
            self._link_if_new("imported", order.channel_order_id, order.channel_status)

    def _imported_as(self, key: str) -> str | None:
        return self.links.channel_ids("imported", [key]).get(key)

    def _whole_pack(self, key: str, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if members[0].get("pack_id") is None:
            return members
        pack = self.http.json("GET", f"/packs/{key}") or {}
        have = {int(member["id"]) for member in members}
        missing = [int(entry["id"]) for entry in pack.get("orders") or [] if int(entry["id"]) not in have]
        return members + [self.http.json("GET", f"/orders/{order_id}") for order_id in missing]

    def _order_for(self, key: str, members: list[dict[str, Any]]) -> tuple[Order | None, str | None]:
        shipment_id = shipment_of(members)
        if shipment_id is not None:
            self._link_if_new("shipment", key, shipment_id)
        listings = [listing_of_line(line) for member in members for line in member.get("order_items") or []]
        skus = self.links.erp_ids("sku", [str(listing) for listing in listings])
        shipment = None
        if shipment_id is not None and key not in self.ctx.known_orders([key]):
            shipment = self.http.json("GET", f"/shipments/{shipment_id}", headers={"x-format-new": "true"})
        return order_from_ml(key, members, skus, shipment), partial_cancellation(key, members)

    def _link_if_new(self, kind: str, erp_id: str, channel_id: str) -> None:
        """A run that finds nothing new writes nothing, not even a link's sync time."""
        if self.links.channel_ids(kind, [erp_id]).get(erp_id) != channel_id:
            self.links.link(kind, erp_id, channel_id)

    # -- push-invoices (§7, §8) ----------------------------------------------------------
    def order_update_payloads(self, update: OrderUpdate) -> dict[str, dict[str, Any]]:
        return order_update_payloads(update)

    def push_order_update(self, update: OrderUpdate, part: str, payload: dict[str, Any]) -> None:
        key = update.channel_order_id
        shipment = self.http.json("GET", f"/shipments/{self._shipment_id(key)}", headers={"x-format-new": "true"})
        if part == "invoice":
            self._push_invoice(key, shipment, payload)
        else:
            self._push_tracking(shipment, payload)

    def _shipment_id(self, key: str) -> str:
        linked = self.links.channel_ids("shipment", [key]).get(key)
        if linked:
            return linked
        pack = self.http.json("GET", f"/packs/{key}", allow=(404,))
        members = [self.http.json("GET", f"/orders/{key}")] if pack is None else []
        shipment_id = str((pack.get("shipment") or {}).get("id")) if pack else shipment_of(members)
        if not shipment_id or shipment_id == "None":
            raise RecordRejected(f"order {key} has no Mercado Livre shipment")
        self.links.link("shipment", key, shipment_id)
        return shipment_id

    def _push_invoice(self, key: str, shipment: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        mode, kind = logistic(shipment)
        if kind == "fulfillment":
            raise NothingToSend("a Full shipment: Mercado Livre issues its NF-e itself")
        if mode == "me2" and kind in LABEL_MODES:
            self._import_nfe(str(shipment["id"]), payload)
        else:
            self._attach_nfe(key, payload)

    def _import_nfe(self, shipment_id: str, payload: Mapping[str, Any]) -> None:
        """The NF-e XML into the shipment: what unlocks an ME2 label (§8.2)."""
        url, params = f"/shipments/{shipment_id}/invoice_data", {"siteId": SITE}
        current = self.http.json("GET", url, params=params, allow=(404,))
        if current and current.get("fiscal_key") == payload["nfe_key"]:
            return
        method = "PUT" if current else "POST"
        try:
            self.http.request(method, url, params=params, content=payload["xml"].encode(),
                              headers={"Content-Type": "application/xml"}, safe_to_retry=method == "PUT")  # fmt: skip
        except UncertainWrite:
            stored = self.http.json("GET", url, params=params, allow=(404,))
            if not stored or stored.get("fiscal_key") != payload["nfe_key"]:
                raise

    def _attach_nfe(self, key: str, payload: Mapping[str, Any]) -> None:
        """The NF-e to the pack, for the buyer (§8.1): one per pack; a corrected NF-e
        replaces the one syncctl attached."""
        url = f"/packs/{key}/fiscal_documents"
        documents = (self.http.json("GET", url) or {}).get("fiscal_documents") or []
        attached = self.links.channel_ids("nfe", [key]).get(key)
        if documents and attached in (None, payload["nfe_key"]):
            self._link_if_new("nfe", key, payload["nfe_key"])  # attached by hand, or by a run cut short
            return
        for document in documents:
            self.http.request("DELETE", f"{url}/{document['id']}")
        body, content_type = multipart("fiscal_document", f"NFe{payload['nfe_key']}.xml", "application/xml",
                                       payload["xml"].encode())  # fmt: skip
        try:
            self.http.request("POST", url, content=body, headers={"Content-Type": content_type}, safe_to_retry=False)
        except UncertainWrite:
            if not (self.http.json("GET", url) or {}).get("fiscal_documents"):
                raise
        self.links.link("nfe", key, payload["nfe_key"])

    def _push_tracking(self, shipment: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        mode, _ = logistic(shipment)
        shipment_id = str(shipment["id"])
        if mode == "me2":
            raise NothingToSend("a Mercado Envios (ME2) shipment: Mercado Livre tracks it itself, nothing to push")
        if mode != "me1":  # custom shipping (§7.2, unconfirmed contract)
            body = {"tracking_number": payload["tracking_number"], "status": "shipped"}
            self.http.request("PUT", f"/shipments/{shipment_id}", json=body)
            return
        for status in me1_steps(shipment, payload):
            self._notify_me1(shipment_id, status, payload)

    def _notify_me1(self, shipment_id: str, status: str, payload: Mapping[str, Any]) -> None:
        """One V2 seller notification (§7.3); final states are irreversible, so after an
        uncertain send the shipment is read back rather than notified again."""
        body = me1_notification(status, payload, self.options.me1_service_id, self.ctx.now())
        try:
            self.http.request("POST", f"/v2/shipments/{shipment_id}/seller_notifications", json=body,
                              safe_to_retry=False)  # fmt: skip
        except UncertainWrite:
            now = self.http.json("GET", f"/shipments/{shipment_id}", headers={"x-format-new": "true"})
            if now.get("status") != status:
                raise

    # -- sync-sac (§10.2, §10.3) ---------------------------------------------------------
    def pull_tickets(self, cursor: str | None, since: datetime | None) -> Iterator[TicketBatch]:
        seller = self._seller_id()
        unread = self.http.json("GET", "/messages/unread", params={"role": "seller", "tag": "post_sale"}) or {}
        tickets = [self._conversation_ticket(pack) for pack in conversation_packs(unread)]
        tickets += [self._claim_ticket(claim) for claim in self._open_claims(seller)]
        yield TicketBatch(tickets=tickets)

    def _conversation(self, pack: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The whole post-sale conversation of a pack, read without marking it read."""
        url = f"/messages/packs/{pack}/sellers/{self._seller_id()}"
        messages: list[dict[str, Any]] = []
        while True:
            page = self.http.json("GET", url, params={
                "tag": "post_sale", "mark_as_read": "false", "limit": CONVERSATION_PAGE, "offset": len(messages),
            }) or {}  # fmt: skip
            batch = page.get("messages") or []
            messages += batch
            if not batch or len(messages) >= int((page.get("paging") or {}).get("total") or 0):
                return page, messages

    def _conversation_ticket(self, pack: str) -> Ticket:
        head, messages = self._conversation(pack)
        return ticket_from_conversation(pack, head, messages, self._seller_id(), self.ctx.now())

    def _open_claims(self, seller: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.http.json("GET", "/post-purchase/v1/claims/search", params={
                "players.role": "respondent", "players.user_id": seller, "status": "opened",
                "offset": offset, "limit": CLAIMS_PAGE,
            }) or {}  # fmt: skip
            claims = page.get("data") or []
            yield from claims
            offset += len(claims)
            if not claims or offset >= int((page.get("paging") or {}).get("total") or 0):
                return

    def _claim_ticket(self, claim: Mapping[str, Any]) -> Ticket:
        messages = self.http.json("GET", f"/post-purchase/v1/claims/{claim['id']}/messages") or []
        order = None
        if claim.get("resource") == "order" and claim.get("resource_id"):
            order = self.http.json("GET", f"/orders/{claim['resource_id']}", allow=(404,))
        return ticket_from_claim(claim, messages, purchase_key(order) if order else None)

    def send_reply(self, channel_ticket_id: str, message: TicketMessage) -> str:
        kind, ident = ticket_kind(channel_ticket_id)
        if kind == "pack":
            return self._send_message(ident, message.body)
        return self._send_claim_message(ident, message.body)

    def _send_message(self, pack: str, text: str) -> str:
        head, messages = self._conversation(pack)
        limit = int(head.get("seller_max_message_length") or SELLER_MAX_MESSAGE)
        if len(text) > limit:
            raise RecordRejected(
                f"the reply has {len(text)} characters; Mercado Livre takes at most {limit} per message: "
                "shorten it, or split it into several replies in the ERP"
            )
        status = head.get("conversation_status") or {}
        if str(status.get("status", "active")).lower() != "active":
            raise RecordRejected(
                f"Mercado Livre does not take messages on purchase {pack} now ({status.get('substatus') or status.get('status')})"
            )
        seller = self._seller_id()
        body = {"from": {"user_id": seller}, "to": {"user_id": counterpart(status, messages, seller)},
                "text": text, "attachments": []}  # fmt: skip
        sent = self.http.json("POST", f"/messages/packs/{pack}/sellers/{seller}", params={"tag": "post_sale"},
                              json=body, safe_to_retry=False) or {}  # fmt: skip
        message_id = sent.get("id") or self.find_sent_reply(f"pack:{pack}", TicketMessage("out", text, self.ctx.now()),
                                                            self.ctx.now())  # fmt: skip
        if not message_id:
            raise UncertainWrite(f"Mercado Livre took the reply on {pack} without telling its id: read back next run")
        moderation = sent.get("message_moderation") or {}
        if str(moderation.get("status", "")).lower() == "rejected":
            raise Undelivered(
                f"Mercado Livre's moderation refused the reply ({moderation.get('reason')}): the buyer did not get it",
                str(message_id),
            )
        return str(message_id)

    def _send_claim_message(self, claim_id: str, text: str) -> str:
        claim = self.http.json("GET", f"/post-purchase/v1/claims/{claim_id}")
        messages = self.http.json("GET", f"/post-purchase/v1/claims/{claim_id}/messages") or []
        receiver = claim_receiver(messages)
        allowed = claim_actions(claim)
        if f"send_message_to_{receiver}" not in allowed:
            raise RecordRejected(
                f"Mercado Livre does not let the seller write to the {receiver} of claim {claim_id} now "
                f"(available actions: {', '.join(sorted(allowed)) or 'none'})"
            )
        body = {"receiver_role": receiver, "message": text, "attachments": []}
        sent = self.http.json("POST", f"/post-purchase/v1/claims/{claim_id}/actions/send-message", json=body,
                              safe_to_retry=False)  # fmt: skip
        if isinstance(sent, dict) and sent.get("date_created"):
            return claim_message_key(claim_id, sent)
        found = self.find_sent_reply(f"claim:{claim_id}", TicketMessage("out", text, self.ctx.now()), self.ctx.now())
        return found or claim_message_key(claim_id, {"sender_role": "respondent", "message": text,
                                                     "date_created": self.ctx.now().isoformat()})  # fmt: skip

    def find_sent_reply(
        self, channel_ticket_id: str, message: TicketMessage, since: datetime, taken: Collection[str] = ()
    ) -> str | None:
        kind, ident = ticket_kind(channel_ticket_id)
        after = utc(since) - REPLY_SLACK
        if kind == "pack":
            seller = self._seller_id()
            for sent in self._conversation(ident)[1]:
                if (str((sent.get("from") or {}).get("user_id")) == seller and sent.get("text") == message.body
                        and message_time(sent) >= after and str(sent["id"]) not in taken):  # fmt: skip
                    return str(sent["id"])
            return None
        for sent in self.http.json("GET", f"/post-purchase/v1/claims/{ident}/messages") or []:
            if (sent.get("sender_role") == "respondent" and sent.get("message") == message.body
                    and ml_time(sent["date_created"]) >= after and claim_message_key(ident, sent) not in taken):  # fmt: skip
                return claim_message_key(ident, sent)
        return None


class WindowRead:
    """The orders of one date_last_updated window (§6.1), page by page, each order once.

    Offset paging over a set that changes while it is read skips an order when one
    before it leaves its place (updated and sorted anew, or out of the window). So
    each page starts on the last order of the page before: when it does not, the set
    shifted under the paging and the window is read again. Orders arriving at the end
    shift nothing. Reading goes on to a page with nothing past that overlap (a `total`
    is not trusted to end it). `complete` is False when the window never held still."""

    def __init__(self, page: Callable[[int], dict[str, Any]], seen: set[int]) -> None:
        self._page = page  # offset -> one orders/search answer
        self._seen = seen  # order ids read this run, in any window
        self.complete = False

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        for _ in range(MAX_WINDOW_PASSES):
            steady, offset, last = True, 0, None
            while True:
                results = self._page(offset).get("results") or []
                if last is not None and (not results or int(results[0]["id"]) != last):
                    steady = False
                fresh = [order for order in results if int(order["id"]) not in self._seen]
                self._seen.update(int(order["id"]) for order in results)
                if fresh:
                    yield fresh
                if len(results) <= 1:
                    break
                last, offset = int(results[-1]["id"]), offset + len(results) - 1
            if steady:
                self.complete = True
                return


# ---------------------------------------------------------------------------------------
# Pure mappers: no I/O. Money is Decimal (JSON numbers parsed as Decimal).

PROMOTION_MAX = timedelta(days=14)  # ML's limit for a PRICE_DISCOUNT window (§5.2)
PROMOTION_RENEW = timedelta(days=13)  # a new window starts a day before the running one ends
PROMO_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # anchors the windows of a promotion with no start
ORDER_STATUS: Mapping[str, OrderStatus] = {
    "paid": OrderStatus.approved,
    "partially_refunded": OrderStatus.approved,
    "cancelled": OrderStatus.canceled,
    "invalid": OrderStatus.canceled,
    "pending_cancel": OrderStatus.canceled,
}
PACKAGE = (("height_cm", "SELLER_PACKAGE_HEIGHT", "cm"), ("width_cm", "SELLER_PACKAGE_WIDTH", "cm"),
           ("length_cm", "SELLER_PACKAGE_LENGTH", "cm"))  # fmt: skip
ME1_STATUS = {DeliveryStatus.delivered: "delivered", DeliveryStatus.returning: "not_delivered",
              DeliveryStatus.returned: "not_delivered"}  # fmt: skip


def ml_time(text: str) -> datetime:
    """ML's dates (offsets, or Z) as aware UTC."""
    return utc(datetime.fromisoformat(text))


def site_iso(moment: datetime) -> str:
    """ISO with milliseconds and the site's offset, as orders/search filters take it."""
    return moment.astimezone(SITE_ZONE).isoformat(timespec="milliseconds")


def site_local(moment: datetime) -> str:
    """Site time without an offset, as promotions take it (§5.2)."""
    return moment.astimezone(SITE_ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def attribute(attributes: Sequence[Mapping[str, Any]] | None, attribute_id: str) -> str | None:
    return next((a.get("value_name") for a in attributes or () if a.get("id") == attribute_id), None)


def listing_for_sku(items: Sequence[Mapping[str, Any]], sku: str) -> Listing | None:
    """The listing whose SELLER_SKU is `sku`: an item, or one of its variations. Several
    match (the same product listed twice)? The active one first, then the oldest id."""
    rank = {"active": 0, "paused": 1}
    found = []
    for item in items:
        if item.get("status") == "closed":
            continue
        if attribute(item.get("attributes"), "SELLER_SKU") == sku:
            found.append((item, Listing(str(item["id"]))))
        for variation in item.get("variations") or []:
            if attribute(variation.get("attributes"), "SELLER_SKU") == sku:
                found.append((item, Listing(str(item["id"]), int(variation["id"]))))
    if not found:
        return None
    found.sort(key=lambda pair: (rank.get(pair[0].get("status"), 2), pair[1].item_id))
    return found[0][1]


def product_payload(product: Product) -> dict[str, Any]:
    """What syncctl keeps in step on a listing: the name, SELLER_SKU, GTIN, brand and the
    seller's package measures (§3.2)."""
    package = {name: f"{_plain(getattr(product, attr))} {unit}"
               for attr, name, unit in PACKAGE if getattr(product, attr)}  # fmt: skip
    if product.weight_kg:
        package["SELLER_PACKAGE_WEIGHT"] = f"{_plain(product.weight_kg * 1000)} g"
    identity = {"SELLER_SKU": product.sku, "GTIN": product.ean}
    return {
        "name": product.parent_name or product.name,
        "identity": {key: value for key, value in identity.items() if value},
        "brand": product.brand,
        "package": package,
    }


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def listing_name(item: Mapping[str, Any]) -> str:
    return item.get("family_name") or item.get("title") or ""


def _name_field(item: Mapping[str, Any]) -> str:
    """User Products items carry the product's name as family_name; ML writes their title (§3.1)."""
    return "family_name" if item.get("family_name") else "title"


def title_frozen(item: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    return listing_name(item) != payload["name"] and int(item.get("sold_quantity") or 0) > 0


def item_changes(item: Mapping[str, Any], listing: Listing, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT /items body that brings the item in step; {} when it already is. The name
    changes only while the item has no sales (ML freezes it after)."""
    body: dict[str, Any] = {}
    if listing_name(item) != payload["name"] and not title_frozen(item, payload):
        body[_name_field(item)] = payload["name"]
    wanted = {"BRAND": payload["brand"]} if payload["brand"] else {}
    if listing.variation_id is None:  # a one-SKU item: its identity and package are the item's
        wanted |= payload["identity"] | payload["package"]
    attributes = _changed_attributes(item.get("attributes"), wanted)
    if attributes:
        body["attributes"] = attributes
    return body


def variation_changes(item: Mapping[str, Any], listing: Listing, payload: Mapping[str, Any]) -> dict[str, Any]:
    if listing.variation_id is None:
        return {}
    variation = next((v for v in item.get("variations") or [] if int(v["id"]) == listing.variation_id), None)
    if variation is None:
        raise RecordRejected(f"variation {listing} is gone from Mercado Livre: its link is stale")
    attributes = _changed_attributes(variation.get("attributes"), payload["identity"])
    return {"attributes": attributes} if attributes else {}


def _changed_attributes(current: Sequence[Mapping[str, Any]] | None, wanted: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"id": key, "value_name": value} for key, value in wanted.items() if attribute(current, key) != value]


def is_full(item: Mapping[str, Any]) -> bool:
    return (item.get("shipping") or {}).get("logistic_type") == "fulfillment"


def user_product_of(item: Mapping[str, Any], listing: Listing) -> str:
    variation = next((v for v in item.get("variations") or [] if int(v["id"]) == listing.variation_id), None)
    up_id = (variation or item).get("user_product_id")
    if not up_id:
        raise RecordRejected(f"{listing} has no user product on Mercado Livre: its stock cannot be set by warehouse")
    return str(up_id)


def stock_location(stock: Mapping[str, Any], store_id: str | None, up_id: str) -> dict[str, Any]:
    """The seller's warehouse that takes the ERP balance: options.store_id, or the only one."""
    places = [loc for loc in stock.get("locations") or [] if loc.get("type") == "seller_warehouse"]
    chosen = [loc for loc in places if store_id is None or str(loc.get("store_id")) == store_id]
    if len(chosen) != 1:
        stores = ", ".join(str(loc.get("store_id")) for loc in places) or "none"
        raise RecordRejected(
            f"{up_id}: cannot tell which warehouse takes the stock (seller warehouses: {stores}); "
            "set options.store_id"
        )
    return {"store_id": chosen[0]["store_id"], "network_node_id": chosen[0]["network_node_id"]}


def price_payload(price: EffectivePrice, now: datetime) -> dict[str, Any]:
    """The list price, and a running promotion as a PRICE_DISCOUNT window (§5.4). ML takes
    windows of at most 14 days: a longer promotion goes out as consecutive windows on a
    fixed grid, so the payload (and its hash) changes only when a new window is due."""
    for name, value in (("list price", price.list_price), ("sale price", price.sale_price)):
        if value is not None and value <= 0:
            raise RecordRejected(f"SKU {price.sku}: {name} {value} must be above 0")
    promotion = None
    if price.sale_price is not None and price.sale_price < price.list_price:
        start, finish = promotion_window(price.sale_starts_at, price.sale_ends_at, now)
        promotion = {"deal_price": price.sale_price, "start": start.isoformat(), "finish": finish.isoformat()}
    return {"price": price.list_price, "promotion": promotion}


def price_fingerprint(payload: Mapping[str, Any]) -> str:
    """The price and promotion of a price payload, comparable between SKUs."""
    promotion = payload["promotion"] or {}
    deal = promotion.get("deal_price")
    return f"{payload['price'].normalize()}|{'' if deal is None else deal.normalize()}|{promotion.get('finish') or ''}"


def promotion_window(starts: datetime | None, ends: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    anchor = utc(starts) if starts else PROMO_EPOCH
    start = anchor + PROMOTION_RENEW * max(0, (utc(now) - anchor) // PROMOTION_RENEW)
    finish = start + PROMOTION_MAX
    return start, min(finish, utc(ends)) if ends else finish


def promotion_body(wanted: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The POST body; a window that began already starts now (a start in the past is not taken)."""
    start = max(datetime.fromisoformat(wanted["start"]), utc(now))
    return {
        "deal_price": wanted["deal_price"],
        "start_date": site_local(start),
        "finish_date": site_local(datetime.fromisoformat(wanted["finish"])),
        "promotion_type": "PRICE_DISCOUNT",
    }


def promotion_matches(promotion: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return (
        Decimal(str(promotion.get("price"))) == wanted["deal_price"]
        and promotion.get("finish_date") == site_local(datetime.fromisoformat(wanted["finish"]))
    )


# -- orders --------------------------------------------------------------------------------


def order_window_start(
    cursor: str | None, since: datetime | None, now: datetime, lookback_days: int, overlap: timedelta
) -> datetime:
    """`since`, else the cursor (the start of the last complete run) less the overlap,
    else the first run's look-back."""
    if since is not None:
        return utc(since)
    if cursor:
        try:
            return utc(datetime.fromisoformat(cursor)) - overlap
        except ValueError:
            pass
    return utc(now) - timedelta(days=lookback_days)


def order_windows(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """Closed windows from `start` to `end`, ascending, on whole hours: ML truncates the
    date filters to the hour, so `from` is rounded down and the last `to` up (§6.1)."""
    low = utc(start).replace(minute=0, second=0, microsecond=0)
    top = utc(end).replace(minute=0, second=0, microsecond=0)
    if top < utc(end):
        top += timedelta(hours=1)
    windows = []
    while low < top:
        high = min(low + size, top)
        windows.append((low, high))
        low = high
    return windows or [(low, low + timedelta(hours=1))]


def purchase_key(order: Mapping[str, Any]) -> str:
    """The ERP order key: the pack id, or the order id when the order has no pack (§6.2)."""
    return str(order.get("pack_id") or order["id"])


def shipment_of(orders: Sequence[Mapping[str, Any]]) -> str | None:
    ids = [str((order.get("shipping") or {}).get("id")) for order in orders if (order.get("shipping") or {}).get("id")]
    return ids[0] if ids else None


def listing_of_line(line: Mapping[str, Any]) -> Listing:
    item = line.get("item") or {}
    variation = item.get("variation_id")
    return Listing(str(item.get("id")), int(variation) if variation else None)


def pack_status(orders: Sequence[Mapping[str, Any]]) -> OrderStatus | None:
    """A pack is live while one of its orders is paid; cancelled when all are; None while
    payment is pending (nothing to import yet)."""
    statuses = [ORDER_STATUS.get(str(order.get("status"))) for order in orders]
    if OrderStatus.approved in statuses:
        return OrderStatus.approved
    if statuses and all(status is OrderStatus.canceled for status in statuses):
        return OrderStatus.canceled
    return None


def partial_cancellation(key: str, orders: Sequence[Mapping[str, Any]]) -> str | None:
    if pack_status(orders) is not OrderStatus.approved:
        return None
    gone = [str(o["id"]) for o in orders if ORDER_STATUS.get(str(o.get("status"))) is OrderStatus.canceled]
    if not gone:
        return None
    return f"pack {key}: order(s) {', '.join(gone)} cancelled on Mercado Livre while the rest stands: review the ERP order"


def order_from_ml(
    key: str,
    orders: Sequence[Mapping[str, Any]],
    sku_by_listing: Mapping[str, str],
    shipment: Mapping[str, Any] | None = None,
) -> Order | None:
    """A pack (or a lone order) as one ERP order: one line per ML order, the shipping paid
    by the buyer, the buyer and the shipment's address. The lines of orders cancelled in
    a live pack are left out. None while payment is pending."""
    status = pack_status(orders)
    if status is None:
        return None
    kept = [o for o in orders if status is OrderStatus.canceled or ORDER_STATUS.get(str(o.get("status"))) is OrderStatus.approved]
    lines = tuple(_order_line(line, sku_by_listing) for order in kept for line in order.get("order_items") or [])
    payments = [p for order in kept for p in order.get("payments") or [] if p.get("status") == "approved"]
    shipping = sum((money(p.get("shipping_cost") or 0) for p in payments), Decimal("0.00"))
    items_total = sum((money(order.get("total_amount") or 0) for order in kept), Decimal("0.00"))
    buyer = orders[0].get("buyer") or {}
    return Order(
        channel_order_id=key,
        status=status,
        placed_at=min(ml_time(order["date_created"]) for order in orders),
        lines=lines,
        total=items_total + shipping,
        shipping_cost=shipping,
        discount=sum((money(p.get("coupon_amount") or 0) for p in payments), Decimal("0.00")),
        customer_name=" ".join(p for p in (buyer.get("first_name"), buyer.get("last_name")) if p) or buyer.get("nickname"),
        customer_document=(buyer.get("billing_info") or {}).get("doc_number"),
        customer_email=None,  # ML never hands out the buyer's e-mail
        shipping_address=_address(shipment),
        raw=json.dumps({"pack": key, "orders": list(orders), "shipment": shipment}, ensure_ascii=False, default=str),
        channel_status=",".join(sorted({str(order.get("status")) for order in orders})),
    )


def _order_line(line: Mapping[str, Any], sku_by_listing: Mapping[str, str]) -> OrderLine:
    listing = str(listing_of_line(line))
    return OrderLine(
        sku=(line.get("item") or {}).get("seller_sku") or sku_by_listing.get(listing) or "",
        quantity=int(line["quantity"]),
        unit_price=money(line["unit_price"]),
        channel_item_id=listing,
    )


def _address(shipment: Mapping[str, Any] | None) -> str | None:
    destination = (shipment or {}).get("destination") or {}
    address = destination.get("shipping_address")
    if not address:
        return None
    return json.dumps({"receiver_name": destination.get("receiver_name"), **address}, ensure_ascii=False, default=str)


# -- order updates -------------------------------------------------------------------------


def order_update_payloads(update: OrderUpdate) -> dict[str, dict[str, Any]]:
    """The NF-e, then tracking; a cancelled order gets nothing. Where each goes depends
    on the shipment's logistics, which the adapter reads when it sends them."""
    if update.status is OrderStatus.canceled:
        return {}
    parts = {}
    if update.invoice is not None:
        parts["invoice"] = invoice_payload(update)
    if update.shipment is not None and update.shipment.tracking_code:
        parts["tracking"] = tracking_payload(update.shipment)
    return parts


def invoice_payload(update: OrderUpdate) -> dict[str, Any]:
    invoice = update.invoice
    assert invoice is not None
    problem = access_key_problem(invoice.nfe_key)
    if problem:
        raise RecordRejected(f"order {update.channel_order_id}: {problem}")
    if not invoice.xml:
        raise RecordRejected(f"order {update.channel_order_id}: Mercado Livre takes the NF-e as its XML, and the ERP has none")
    return {"nfe_key": invoice.nfe_key, "number": invoice.number, "series": invoice.series,
            "issued_at": utc(invoice.issued_at).isoformat(), "xml": invoice.xml}  # fmt: skip


def tracking_payload(shipment: Shipment) -> dict[str, Any]:
    """An ME1 status: delivered and not_delivered are final on ML, so only a final ERP
    status sends them (§7.3)."""
    status = ME1_STATUS.get(shipment.delivery_status, "shipped") if shipment.delivery_status else "shipped"
    when = shipment.delivered_at if status != "shipped" and shipment.delivered_at else shipment.shipped_at
    return {
        "status": status,
        "tracking_number": shipment.tracking_code,
        "tracking_url": shipment.tracking_url,
        "carrier": shipment.carrier,
        "date": utc(when).isoformat() if when else None,
    }


def logistic(shipment: Mapping[str, Any]) -> tuple[str, str]:
    details = shipment.get("logistic") or {}
    return str(details.get("mode") or shipment.get("mode") or ""), str(details.get("type") or shipment.get("logistic_type") or "")


def me1_steps(shipment: Mapping[str, Any], payload: Mapping[str, Any]) -> list[str]:
    """The ME1 notifications still to send: none once ML holds a final status (never
    twice), `shipped` first when a delivery is reported on a shipment ML has as not
    shipped, nothing when ML already has this shipment shipped with this code."""
    current, wanted = shipment.get("status"), payload["status"]
    if current in TERMINAL_SHIPMENT:
        return []
    if wanted == "shipped":
        same = current == "shipped" and shipment.get("tracking_number") == payload["tracking_number"]
        return [] if same else ["shipped"]
    if wanted == "delivered" and current != "shipped":
        return ["shipped", "delivered"]
    return [wanted]


def me1_notification(status: str, payload: Mapping[str, Any], service_id: int | None, now: datetime) -> dict[str, Any]:
    """A V2 seller notification: substatus always present and JSON null unless returning (§7.3);
    a shipment the ERP gave no time is dated `now`."""
    details: dict[str, Any] = {"comment": payload.get("carrier") or status, "date": payload["date"] or utc(now).isoformat()}
    if service_id is not None:
        details["service_id"] = service_id
    body: dict[str, Any] = {"payload": details, "status": status,
                            "substatus": "returning_to_sender" if status == "not_delivered" else None}  # fmt: skip
    if payload.get("tracking_number"):
        body["tracking_number"] = payload["tracking_number"]
        body["tracking_url"] = payload.get("tracking_url") or ""
    return body


def multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    """One file as multipart/form-data; the boundary comes from the content, so the same
    file is always the same body."""
    boundary = "syncctl-" + hashlib.sha256(data).hexdigest()[:24]
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# -- SAC -------------------------------------------------------------------------------------


def ticket_kind(channel_ticket_id: str) -> tuple[str, str]:
    """("pack", pack id) for a post-sale conversation, ("claim", claim id) for a claim."""
    kind, _, ident = channel_ticket_id.partition(":")
    if kind not in ("pack", "claim") or not ident.isdigit():
        raise RecordRejected(f"{channel_ticket_id} is not a Mercado Livre conversation or claim")
    return kind, ident


def conversation_packs(unread: Mapping[str, Any]) -> list[str]:
    """Pack ids of the conversations /messages/unread lists ("/packs/{pack}/sellers/{seller}...")."""
    packs = []
    for entry in unread.get("results") or []:
        parts = str(entry.get("resource") or "").strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "packs" and parts[1] not in packs:
            packs.append(parts[1])
    return packs


def message_time(message: Mapping[str, Any]) -> datetime:
    dates = message.get("message_date") or {}
    return ml_time(dates.get("created") or dates.get("received") or dates.get("available"))


def ticket_from_conversation(
    pack: str, head: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], seller: str, now: datetime
) -> Ticket:
    """A pack's post-sale conversation as a ticket; the buyer's (or ML's agent's) messages
    are `in`. The seller's own are the ERP's `out` replies (or typed on ML) and stay out."""
    incoming = tuple(
        TicketMessage(
            direction="in",
            body=str(message["text"]),
            created_at=message_time(message),
            author="Mercado Livre" if str((message.get("from") or {}).get("user_id")) == AI_AGENT_ID else "buyer",
            channel_message_id=str(message["id"]),
        )
        for message in messages
        if str((message.get("from") or {}).get("user_id")) != seller and message.get("text")
    )
    times = [message_time(message) for message in messages]
    return Ticket(
        channel_ticket_id=f"pack:{pack}",
        subject=f"Mercado Livre: mensagens da compra {pack}",
        status=str((head.get("conversation_status") or {}).get("status") or "active").lower(),
        opened_at=min(times, default=utc(now)),
        channel_order_id=pack,
        messages=incoming,
        updated_at=max(times, default=None),
    )


def counterpart(status: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], seller: str) -> str:
    """Whom a reply goes to: whoever last wrote to the seller (the buyer, or ML's agent
    when it intermediates; §10.2)."""
    for message in reversed(messages):
        sender = str((message.get("from") or {}).get("user_id"))
        if sender != seller:
            return sender
    if "/conversations/" in str(status.get("path") or ""):
        return AI_AGENT_ID
    raise RecordRejected("the conversation has no message from the buyer to answer")


def claim_message_key(claim_id: str, message: Mapping[str, Any]) -> str:
    """Claim messages have no id (§10.3): one from who wrote it, when and what."""
    text = "\0".join((str(message.get("sender_role")), str(message.get("date_created")), str(message.get("message"))))
    return f"claim:{claim_id}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def ticket_from_claim(claim: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], order_key: str | None) -> Ticket:
    claim_id = str(claim["id"])
    incoming = tuple(
        TicketMessage(
            direction="in",
            body=str(message["message"]),
            created_at=ml_time(message["date_created"]),
            author=str(message.get("sender_role")),
            channel_message_id=claim_message_key(claim_id, message),
        )
        for message in messages
        if message.get("sender_role") != "respondent" and message.get("message")
    )
    return Ticket(
        channel_ticket_id=f"claim:{claim_id}",
        subject=f"Mercado Livre: reclamação {claim_id} ({claim.get('type')}, {claim.get('stage')})",
        status=str(claim.get("status") or "opened"),
        opened_at=ml_time(claim["date_created"]),
        channel_order_id=order_key,
        messages=incoming,
        updated_at=ml_time(claim["last_updated"]) if claim.get("last_updated") else None,
    )


def claim_receiver(messages: Sequence[Mapping[str, Any]]) -> str:
    """Whom the seller answers on a claim: whoever last wrote to it (the buyer, or ML's mediator)."""
    for message in reversed(messages):
        if message.get("sender_role") in ("complainant", "mediator"):
            return str(message["sender_role"])
    return "complainant"


def claim_actions(claim: Mapping[str, Any]) -> set[str]:
    """What the seller may do on the claim now (re-read right before acting: §10.3)."""
    respondent = next((p for p in claim.get("players") or [] if p.get("role") == "respondent"), {})
    return {str(action.get("action")) for action in respondent.get("available_actions") or []}
