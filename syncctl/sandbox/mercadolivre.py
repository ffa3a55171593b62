"""A fake Mercado Livre seller API (api.mercadolibre.com) as one WSGI app.

It speaks the API as shared/reference/mercadolivre.md describes it (its §11 is the
behaviour checklist): OAuth with single-use codes and rotating single-use refresh
tokens, access tokens that expire; items with variations and User Products;
multi-warehouse stock with `x-version`; PRICE_DISCOUNT promotions and their limits;
orders/search with hour-truncated date filters and offset paging; packs, shipments,
NF-e (pack attachment and shipment import), ME1 seller notifications; post-sale
messages and claims with their rules; every error in ML's envelope. State is in
memory behind one lock; `clock` drives expiry and dates.

Where the reference leaves a behaviour open, the fake picks one and lets a test
change it (see the attributes set in `__init__`):
- `orders_sort_key`: what `sort=date_asc` orders by (date_created by default).
- `price_automation_error`: the error code of a price PUT on an automated listing.
- `enforce_ship_before_deliver`: ME1 `delivered` needs `shipped` first.
- Status codes the reference marks unconfirmed: 400 for a second fiscal document,
  a second terminal ME1 update, an over-long message; 403 for a blocked conversation.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from syncctl.sandbox.clocked import Clocked
from syncctl.sandbox.faults import Faults
from syncctl.sandbox.wire import json_response, read_json

Json = Any
Clock = Callable[[], datetime]

SELLER_ID = 123456789
BUYER_ID = 987654321
AI_AGENT_ID = 3037675074  # ML's messaging agent in MLB (reference §10.2)
CLIENT_ID = "1234567890123456"
CLIENT_SECRET = "fake-ml-client-secret"
REDIRECT_URI = "https://syncctl.example/ml/callback"
ACCESS_TTL_S = 21600
MAX_PROMOTION_DAYS = 14
SELLER_MAX_MESSAGE = 350
MAX_ORDERS_LIMIT = 50
MAX_ITEMS_SEARCH_LIMIT = 100
MAX_MULTIGET = 20
SITE_ZONE = ZoneInfo("America/Sao_Paulo")  # promotion dates are site time without an offset
ML_ZONE = timezone(timedelta(hours=-4))  # the offset ML writes most dates in
ITEM_START, VARIATION_START, UP_START = 4_000_000_001, 180_000_000_001, 2_300_000_001
ORDER_START, PACK_START, SHIPMENT_START = 2_000_000_000_000_001, 2_000_000_900_000_001, 43_000_000_001
CLAIM_START = 5_100_000_001
LABEL_MODES = frozenset({"drop_off", "xd_drop_off", "cross_docking", "xd_same_day"})  # invoice_data unlocks their label
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_FISCAL_TYPES = _XML_TYPES | {"application/pdf"}
_MAX_FISCAL_BYTES = 1 << 20
_NFE_KEY = re.compile(r"\d{44}")
_MODERATED = (  # (pattern, reason): what the fake's moderation refuses
    (re.compile(r"https?://|www\.", re.IGNORECASE), "SOCIAL_NETWORK_LINK"),
    (re.compile(r"\b\d{2}\s?9?\d{4}-?\d{4}\b|@\w+\.\w+"), "PERSONAL_DATA"),
)
_TERMINAL_SHIPMENT = frozenset({"delivered", "not_delivered"})

_ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/oauth/token", "token"),
    ("GET", "/users/me", "me"),
    ("GET", "/users/<int:user_id>", "user"),
    ("GET", "/users/<int:user_id>/items/search", "search_items"),
    ("GET", "/items", "multiget_items"),
    ("GET", "/items/<item_id>", "get_item"),
    ("PUT", "/items/<item_id>", "update_item"),
    ("PUT", "/items/<item_id>/variations/<int:variation_id>", "update_variation"),
    ("GET", "/items/<item_id>/sale_price", "sale_price"),
    ("GET", "/user-products/<up_id>/stock", "get_up_stock"),
    ("PUT", "/user-products/<up_id>/stock/type/seller_warehouse", "set_up_stock"),
    ("GET", "/seller-promotions/items/<item_id>", "list_promotions"),
    ("POST", "/seller-promotions/items/<item_id>", "add_promotion"),
    ("DELETE", "/seller-promotions/items/<item_id>", "delete_promotion"),
    ("GET", "/orders/search", "search_orders"),
    ("GET", "/orders/<int:order_id>", "get_order"),
    ("GET", "/packs/<int:pack_id>", "get_pack"),
    ("GET", "/shipments/<int:shipment_id>", "get_shipment"),
    ("PUT", "/shipments/<int:shipment_id>", "update_custom_shipment"),
    ("GET", "/shipments/<int:shipment_id>/invoice_data", "get_invoice_data"),
    ("POST", "/shipments/<int:shipment_id>/invoice_data", "add_invoice_data"),
    ("PUT", "/shipments/<int:shipment_id>/invoice_data", "replace_invoice_data"),
    ("POST", "/v2/shipments/<int:shipment_id>/seller_notifications", "seller_notification"),
    ("GET", "/packs/<int:pack_id>/fiscal_documents", "list_fiscal_documents"),
    ("POST", "/packs/<int:pack_id>/fiscal_documents", "add_fiscal_documents"),
    ("DELETE", "/packs/<int:pack_id>/fiscal_documents/<file_id>", "delete_fiscal_document"),
    ("GET", "/messages/unread", "unread_messages"),
    ("GET", "/messages/packs/<int:pack_id>/sellers/<int:seller_id>", "get_conversation"),
    ("POST", "/messages/packs/<int:pack_id>/sellers/<int:seller_id>", "send_message"),
    ("GET", "/post-purchase/v1/claims/search", "search_claims"),
    ("GET", "/post-purchase/v1/claims/<int:claim_id>", "get_claim"),
    ("GET", "/post-purchase/v1/claims/<int:claim_id>/messages", "claim_messages"),
    ("POST", "/post-purchase/v1/claims/<int:claim_id>/actions/send-message", "claim_reply"),
]
ENDPOINTS = frozenset(endpoint for _, _, endpoint in _ROUTES)
_URLS = Map(
    [Rule(path, methods=[method], endpoint=endpoint) for method, path, endpoint in _ROUTES],
    strict_slashes=False,
    merge_slashes=False,
)


class ApiError(Exception):
    """A refusal in ML's envelope: {message, error, status, cause}."""

    def __init__(
        self, status: int, error: str, message: str, *, cause: Json = (), headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.cause = list(cause)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Json]:
        return {"message": self.message, "error": self.error, "status": self.status, "cause": self.cause}


class OAuthError(ApiError):
    """The token endpoint's envelope: error_description instead of message."""

    def body(self) -> dict[str, Json]:
        return {"error_description": self.message, "error": self.error, "status": self.status, "cause": []}


@dataclass
class _Bucket:
    """The fake's optional rate limit: `per_minute` requests per endpoint, refilled continuously."""

    per_minute: int
    retry_after: bool
    tokens: float
    at: datetime

    def take(self, now: datetime) -> bool:
        elapsed = max((now - self.at).total_seconds(), 0.0)
        self.tokens = min(float(self.per_minute), self.tokens + elapsed * self.per_minute / 60)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FakeMercadoLivre(Clocked):
    """The fake API. Call it as a WSGI app; drive it from tests with the plain methods
    (`issue_refresh_token`, `add_item`, `add_order`, `add_buyer_message`, `advance`, ...)
    and read its state from the public dicts."""

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        redirect_uri: str = REDIRECT_URI,
        seller_id: int = SELLER_ID,
        seller_tags: Iterable[str] = ("normal", "user_product_seller"),
        expires_in: int = ACCESS_TTL_S,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        self.client = (client_id, client_secret)
        self.redirect_uri = redirect_uri
        self.seller_id = seller_id
        self.expires_in = expires_in
        self.pkce = False  # the app's PKCE switch: on, a code exchange needs code_verifier
        self._clock = clock or (lambda: datetime.now(UTC))
        self._offset = timedelta()
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self.faults = Faults(sleep=sleep)
        # OAuth
        self.codes: dict[str, int] = {}
        self.refresh_tokens: dict[str, int] = {}  # only the latest per user is valid
        self.access_tokens: dict[str, tuple[int, datetime]] = {}
        self.token_requests: list[dict[str, str]] = []  # every form the token endpoint got
        # Catalogue
        self.users: dict[int, dict[str, Json]] = {
            seller_id: {"id": seller_id, "nickname": "LOJA_EXEMPLO", "site_id": "MLB", "tags": list(seller_tags)},
            BUYER_ID: {"id": BUYER_ID, "nickname": "COMPRADOR123", "site_id": "MLB", "tags": ["normal"]},
        }
        self.items: dict[str, dict[str, Json]] = {}
        self.user_products: dict[str, dict[str, Json]] = {}  # up id -> {"locations", "version"}
        self.promotions: dict[str, list[dict[str, Json]]] = {}
        self.automated_prices: set[str] = set()
        self.price_automation_error = "item.price.not_modifiable.automation"
        # Orders
        self.orders: dict[int, dict[str, Json]] = {}
        self.packs: dict[int, dict[str, Json]] = {}
        self.shipments: dict[int, dict[str, Json]] = {}
        self.invoice_data: dict[int, str] = {}
        self.fiscal_documents: dict[int, list[dict[str, Json]]] = {}
        self.seller_notifications: dict[int, list[dict[str, Json]]] = {}
        self.orders_sort_key = "date_created"
        self.enforce_ship_before_deliver = True
        self.after_orders_page: Callable[[int], None] | None = None  # called with each answered offset
        # SAC
        self.conversations: dict[int, dict[str, Json]] = {}
        self.claims: dict[int, dict[str, Json]] = {}
        self.claim_messages: dict[int, list[dict[str, Json]]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._limit: tuple[int, bool] | None = None
        self._next = {"item": ITEM_START, "variation": VARIATION_START, "up": UP_START, "order": ORDER_START,
                      "pack": PACK_START, "shipment": SHIPMENT_START, "claim": CLAIM_START, "file": 1}  # fmt: skip

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.faults.run(
            request, lambda: self._dispatch(request),
            lambda status, message: _error_response(ApiError(status, "injected_fault", message)),
        )  # fmt: skip
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
            with self._lock:
                self._rate_limit(endpoint)
                user = None if endpoint == "token" else self._authenticate(request)
                result = getattr(self, f"_on_{endpoint}")(request, user, **args)
                return result if isinstance(result, Response) else json_response(result)
        except ApiError as error:
            return _error_response(error)
        except HTTPException as error:
            return _error_response(ApiError(error.code or 500, "not_found", error.name))

    def _authenticate(self, request: Request) -> int:
        if "access_token" in request.args:
            raise ApiError(401, "unauthorized", "access_token in the query string is not accepted: use the header")
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        grant = self.access_tokens.get(token)
        if grant is None or self.now() >= grant[1]:
            raise ApiError(401, "not_found", "invalid_token")
        return grant[0]

    def _rate_limit(self, endpoint: str) -> None:
        if self._limit is None:
            return
        per_minute, retry_after = self._limit
        bucket = self._buckets.setdefault(endpoint, _Bucket(per_minute, retry_after, float(per_minute), self.now()))
        if not bucket.take(self.now()):
            headers = {"Retry-After": str(max(1, round(60 / per_minute)))} if retry_after else {}
            raise ApiError(429, "local_rate_limited", "Too many requests", headers=headers)

    # ------------------------------------------------------- test/demo helpers

    def rate_limit(self, per_minute: int, *, retry_after: bool = True) -> None:
        """Answer 429 to an endpoint called more than `per_minute` times a minute."""
        with self._lock:
            self._limit = (per_minute, retry_after)
            self._buckets.clear()

    def issue_code(self, user_id: int | None = None) -> str:
        """An authorization code, as if the seller had just approved the app."""
        with self._lock:
            code = f"TG-{self._hex(24)}-{user_id or self.seller_id}"
            self.codes[code] = user_id or self.seller_id
            return code

    def issue_refresh_token(self, user_id: int | None = None, *, token: str | None = None) -> str:
        """A valid refresh token (the one the seller's first authorization gave); `token`
        chooses its text (a test's config holds a fixed one)."""
        with self._lock:
            return self._new_refresh_token(user_id or self.seller_id, token)

    def expire_access_tokens(self) -> None:
        with self._lock:
            self.access_tokens = {token: (user, self.now()) for token, (user, _) in self.access_tokens.items()}

    def refresh_grants(self) -> list[str]:
        """The refresh tokens presented to the token endpoint, in order."""
        return [form.get("refresh_token", "") for form in self.token_requests if form.get("grant_type") == "refresh_token"]

    def add_item(
        self,
        title: str,
        *,
        sku: str | None = None,
        price: Decimal = Decimal("59.90"),
        quantity: int = 10,
        variations: Iterable[tuple[str, Mapping[str, str], int]] = (),
        gtin: str | None = None,
        logistic_type: str = "cross_docking",
        family_name: str | None = None,
        user_product_id: str | None = None,
        sold_quantity: int = 0,
        status: str | None = None,
        listing_type_id: str = "gold_special",
    ) -> str:
        """A listing already live. `variations` are (SELLER_SKU, attribute combination,
        quantity) of a legacy item; `family_name` makes it a User Products item."""
        with self._lock:
            item_id = f"MLB{self._take('item')}"
            attributes = [{"id": "BRAND", "name": "Marca", "value_name": "Marca Exemplo"}]
            if sku:
                attributes.append({"id": "SELLER_SKU", "name": "SKU", "value_name": sku})
            if gtin:
                attributes.append({"id": "GTIN", "name": "Código universal de produto", "value_name": gtin})
            rows = [self._variation(variation_sku, combination, quantity_, price)
                    for variation_sku, combination, quantity_ in variations]  # fmt: skip
            total = sum(row["available_quantity"] for row in rows) if rows else quantity
            up_id = user_product_id or (f"MLBU{self._take('up')}" if not rows else None)
            item = {
                "id": item_id, "site_id": "MLB", "title": title, "family_name": family_name,
                "seller_id": self.seller_id, "category_id": "MLB108720", "price": price, "base_price": price,
                "currency_id": "BRL", "initial_quantity": total, "available_quantity": total,
                "sold_quantity": sold_quantity, "buying_mode": "buy_it_now", "listing_type_id": listing_type_id,
                "condition": "new", "permalink": f"https://produto.mercadolivre.com.br/MLB-{item_id[3:]}-_JM",
                "status": status or ("active" if total > 0 else "paused"),
                "sub_status": [] if total > 0 else ["out_of_stock"], "seller_custom_field": None,
                "user_product_id": up_id, "inventory_id": f"INV{item_id[3:]}" if logistic_type == "fulfillment" else None,
                "shipping": {"mode": "me2", "logistic_type": logistic_type, "free_shipping": False},
                "attributes": attributes, "variations": rows,
                "date_created": _ml_time(self.now(), UTC), "last_updated": _ml_time(self.now(), UTC),
            }  # fmt: skip
            self.items[item_id] = item
            if up_id and up_id not in self.user_products:
                self.user_products[up_id] = {"version": 1, "locations": [
                    {"type": "seller_warehouse", "network_node_id": "BRP123451", "store_id": "9876543", "quantity": total},
                ]}  # fmt: skip
            return item_id

    def add_order(
        self,
        lines: Iterable[tuple[str, int | None, int, Decimal]],
        *,
        mode: str = "me2",
        logistic_type: str = "cross_docking",
        shipping_cost: Decimal = Decimal("18.90"),
        status: str = "paid",
        buyer_id: int = BUYER_ID,
    ) -> tuple[int, list[int]]:
        """A purchase of (item id, variation id, quantity, unit price) lines: one order per
        line, sharing a pack when there are several. Returns (pack or order id, order ids)."""
        with self._lock:
            lines = list(lines)
            now = self.now()
            shipment_id = self._take("shipment")
            pack_id = self._take("pack") if len(lines) > 1 else None
            order_ids = []
            for index, (item_id, variation_id, quantity, unit_price) in enumerate(lines):
                order_id = self._take("order")
                cost = shipping_cost if index == 0 else Decimal(0)
                self.orders[order_id] = self._order(order_id, pack_id, shipment_id, item_id, variation_id,
                                                    quantity, unit_price, cost, status, buyer_id)  # fmt: skip
                order_ids.append(order_id)
                self._sell(item_id, variation_id, quantity)
            key = pack_id or order_ids[0]
            if pack_id is not None:
                self.packs[pack_id] = {
                    "id": pack_id, "status": "released", "status_detail": None,
                    "date_created": _ml_time(now), "last_updated": _ml_time(now), "family_pack_id": None,
                    "buyer": {"id": buyer_id}, "shipment": {"id": shipment_id},
                    "orders": [{"id": order_id} for order_id in order_ids],
                }  # fmt: skip
            self.shipments[shipment_id] = self._shipment(shipment_id, mode, logistic_type, lines, buyer_id)
            self.conversations[key] = {"status": "active", "substatus": None, "agent": False, "messages": [],
                                       "buyer_id": buyer_id, "shipment_id": shipment_id}  # fmt: skip
            return key, order_ids

    def set_order_status(self, order_id: int, status: str) -> None:
        """A status change on ML's side (a cancellation, say): date_last_updated moves."""
        with self._lock:
            order = self.orders[order_id]
            order["status"] = status
            order["tags"] = [tag for tag in order["tags"] if tag not in ("paid", "not_paid")] + (
                ["paid"] if status == "paid" else ["not_paid"]
            )
            if status == "cancelled":
                order["cancel_detail"] = {"group": "buyer", "code": "BUYER_CANCEL", "description": "Cancelada"}
            self._touch(order)

    def touch_order(self, order_id: int) -> None:
        """Some change ML does not tell about (feedback, a tag): date_last_updated moves."""
        with self._lock:
            self._touch(self.orders[order_id])

    def add_buyer_message(self, pack_id: int, text: str, *, from_agent: bool = False) -> str:
        """A message from the buyer (or from ML's messaging agent) in a purchase's conversation."""
        with self._lock:
            conversation = self.conversations[pack_id]
            sender = AI_AGENT_ID if from_agent else conversation["buyer_id"]
            return self._post_message(pack_id, sender, self.seller_id, text, read=False)["id"]

    def intermediate(self, pack_id: int) -> None:
        """ML's messaging agent takes the conversation over (MLB, since 2026)."""
        with self._lock:
            self.conversations[pack_id]["agent"] = True

    def block_conversation(self, pack_id: int, substatus: str = "blocked_by_mediation") -> None:
        with self._lock:
            self.conversations[pack_id].update(status="blocked", substatus=substatus)

    def add_claim(self, order_id: int, text: str, *, actions: Iterable[str] = ("send_message_to_complainant",)) -> int:
        """A buyer's claim (mediation) on an order, with its first message."""
        with self._lock:
            claim_id = self._take("claim")
            now = _ml_time(self.now())
            self.claims[claim_id] = {
                "id": claim_id, "resource": "order", "resource_id": order_id, "status": "opened",
                "type": "mediations", "stage": "claim", "parent_id": None, "reason_id": "PDD9939",
                "fulfilled": True, "quantity_type": "total", "claimed_quantity": 1, "claim_version": 1,
                "site_id": "MLB", "related_entities": [], "resolution": None,
                "players": [
                    {"role": "complainant", "type": "buyer", "user_id": self.orders[order_id]["buyer"]["id"],
                     "available_actions": []},
                    {"role": "respondent", "type": "seller", "user_id": self.seller_id,
                     "available_actions": [{"action": a, "mandatory": False, "due_date": None} for a in actions]},
                ],
                "date_created": now, "last_updated": now,
            }  # fmt: skip
            self.claim_messages[claim_id] = []
            self._post_claim_message(claim_id, "complainant", "respondent", text)
            return claim_id

    # ------------------------------------------------------------------ OAuth

    def _on_token(self, request: Request, user: None) -> Json:
        if request.args:
            raise OAuthError(400, "invalid_request", "parameters must go in the body, not the query string")
        if request.mimetype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        form = {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}
        self.token_requests.append(form)
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            raise OAuthError(401, "invalid_client", "invalid client_id or client_secret")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            user_id = self._spend_code(form)
        elif grant_type == "refresh_token":
            user_id = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if user_id is None:
                raise _invalid_grant()
        else:
            raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        access = f"APP_USR-{self.client[0]}-{self.now():%m%d%H}-{self._hex(32)}-{user_id}"
        self.access_tokens[access] = (user_id, self.now() + timedelta(seconds=self.expires_in))
        return {
            "access_token": access, "token_type": "bearer", "expires_in": self.expires_in,
            "scope": "offline_access read write", "user_id": user_id,
            "refresh_token": self._new_refresh_token(user_id),
        }  # fmt: skip

    def _spend_code(self, form: Mapping[str, str]) -> int:
        if self.pkce and not form.get("code_verifier"):
            raise OAuthError(400, "invalid_request", "code_verifier is a required parameter")
        user_id = self.codes.pop(form.get("code", ""), None)
        if user_id is None or form.get("redirect_uri") != self.redirect_uri:
            raise _invalid_grant()
        return user_id

    def _new_refresh_token(self, user_id: int, token: str | None = None) -> str:
        for old in [t for t, owner in self.refresh_tokens.items() if owner == user_id]:
            del self.refresh_tokens[old]  # only the latest one is valid
        token = token or f"TG-{self._hex(24)}-{user_id}"
        self.refresh_tokens[token] = user_id
        return token

    # ---------------------------------------------------------------- users

    def _on_me(self, request: Request, user: int) -> Json:
        return self.users[user]

    def _on_user(self, request: Request, user: int, user_id: int) -> Json:
        if user_id not in self.users:
            raise ApiError(404, "not_found", f"User {user_id} not found")
        return self.users[user_id]

    # ---------------------------------------------------------------- items

    def _on_search_items(self, request: Request, user: int, user_id: int) -> Json:
        self._own(user, user_id)
        offset, limit = _int_arg(request, "offset", 0), _int_arg(request, "limit", 50)
        if limit > MAX_ITEMS_SEARCH_LIMIT:
            raise ApiError(400, "bad_request", f"limit must be at most {MAX_ITEMS_SEARCH_LIMIT}")
        sku, status = request.args.get("seller_sku"), request.args.get("status")
        found = [
            item_id for item_id, item in self.items.items()
            if (sku is None or sku in _skus_of(item)) and (status is None or item["status"] == status)
        ]  # fmt: skip
        return {
            "seller_id": str(user_id), "query": None, "paging": {"limit": limit, "offset": offset, "total": len(found)},
            "results": found[offset:offset + limit], "orders": [], "available_orders": [],
        }  # fmt: skip

    def _on_multiget_items(self, request: Request, user: int) -> Json:
        ids = [item_id for item_id in request.args.get("ids", "").split(",") if item_id]
        if not ids or len(ids) > MAX_MULTIGET:
            raise ApiError(400, "bad_request", f"ids must list 1 to {MAX_MULTIGET} items")
        projection = [name for name in request.args.get("attributes", "").split(",") if name]
        full = request.args.get("include_attributes") == "all"
        answers = []
        for item_id in ids:
            item = self.items.get(item_id)
            if item is None:
                answers.append({"code": 404, "body": ApiError(404, "not_found", f"Item {item_id} not found").body()})
                continue
            view = _item_view(item, full)
            if projection:
                view = {key: view[key] for key in ["id", *projection] if key in view}
            answers.append({"code": 200, "body": view})
        return answers

    def _on_get_item(self, request: Request, user: int, item_id: str) -> Json:
        return _item_view(self._item(item_id), request.args.get("include_attributes") == "all")

    def _on_update_item(self, request: Request, user: int, item_id: str) -> Json:
        item = self._item(item_id)
        self._own(user, item["seller_id"])
        body = _object(_read_json(request))
        unknown = set(body) - {"title", "family_name", "price", "available_quantity", "attributes", "status"}
        if unknown:
            raise ApiError(400, "body.invalid_fields", f"fields not updatable here: {', '.join(sorted(unknown))}")
        if item["status"] == "closed":
            raise ApiError(400, "item.closed", f"Item {item_id} is closed: relist it")
        warnings = []
        if "price" in body and item_id in self.automated_prices:
            if set(body) == {"price"}:
                raise ApiError(400, self.price_automation_error,
                               "Price cannot be modified: the item has price automation active")  # fmt: skip
            body = {key: value for key, value in body.items() if key != "price"}
            warnings.append({"type": "warning", "code": "item.price.ignored.automation",
                             "message": "price ignored: price automation is active"})  # fmt: skip
        for name in ("title", "family_name"):
            if name in body and item["sold_quantity"] > 0 and body[name] != item[name]:
                raise ApiError(400, f"item.{name}.not_modifiable", f"{name} cannot change once the item has sales")
        if "price" in body:
            price = _positive(body["price"], "price")
            item.update(price=price, base_price=price)
            for variation in item["variations"]:
                variation["price"] = price  # legacy items: one price for every variation
        if "available_quantity" in body:
            if item["variations"]:
                raise ApiError(400, "item.available_quantity.invalid",
                               "the item has variations: set available_quantity on each variation")  # fmt: skip
            self._set_quantity(item, None, body["available_quantity"])
        if "attributes" in body:
            _merge_attributes(item["attributes"], body["attributes"])
        for name in ("title", "family_name"):
            if name in body:
                item[name] = _text(body[name], name)
        if "status" in body:
            item["status"] = body["status"]
        item["last_updated"] = _ml_time(self.now(), UTC)
        return {**_item_view(item, True), **({"warnings": warnings} if warnings else {})}

    def _on_update_variation(self, request: Request, user: int, item_id: str, variation_id: int) -> Json:
        item = self._item(item_id)
        self._own(user, item["seller_id"])
        variation = self._variation_of(item, variation_id)
        body = _object(_read_json(request))
        unknown = set(body) - {"available_quantity", "price", "attributes"}
        if unknown:
            raise ApiError(400, "body.invalid_fields", f"fields not updatable here: {', '.join(sorted(unknown))}")
        if "price" in body and _positive(body["price"], "price") != item["price"]:
            raise ApiError(400, "item.variations.price.invalid", "all variations of an item share one price")
        if "available_quantity" in body:
            self._set_quantity(item, variation, body["available_quantity"])
        if "attributes" in body:
            _merge_attributes(variation["attributes"], body["attributes"])
        item["last_updated"] = _ml_time(self.now(), UTC)
        return _variation_view(variation, True)

    def _on_sale_price(self, request: Request, user: int, item_id: str) -> Json:
        item = self._item(item_id)
        running = self._running_promotion(item_id)
        amount = running["price"] if running else item["price"]
        return {"price_id": "1", "amount": amount, "regular_amount": item["price"] if running else None,
                "currency_id": "BRL", "type": "promotion" if running else "standard",
                "conditions": {}, "metadata": {"promotion_type": "PRICE_DISCOUNT"} if running else {}}  # fmt: skip

    def _set_quantity(self, item: dict[str, Json], variation: dict[str, Json] | None, quantity: Json) -> None:
        if item["shipping"]["logistic_type"] == "fulfillment":
            raise ApiError(400, "item.available_quantity.not_modifiable",
                           "Full (fulfillment) stock is what is in Mercado Livre's warehouse: it cannot be set")  # fmt: skip
        if not _is_int(quantity) or quantity < 0:
            raise ApiError(400, "item.available_quantity.invalid", "available_quantity must be an integer >= 0")
        (variation or item)["available_quantity"] = quantity
        if variation is not None:
            item["available_quantity"] = sum(v["available_quantity"] for v in item["variations"])
        self._follow_stock(item)

    def _follow_stock(self, item: dict[str, Json]) -> None:
        """0 pauses for out_of_stock; stock back reactivates only an out_of_stock pause."""
        if item["available_quantity"] == 0 and item["status"] == "active":
            item.update(status="paused", sub_status=["out_of_stock"])
        elif item["available_quantity"] > 0 and item["status"] == "paused" and item["sub_status"] == ["out_of_stock"]:
            item.update(status="active", sub_status=[])

    # ---------------------------------------------------- user-product stock

    def _on_get_up_stock(self, request: Request, user: int, up_id: str) -> Response:
        stock = self._user_product(up_id)
        response = json_response({"locations": stock["locations"], "user_id": user, "id": up_id})
        response.headers["x-version"] = str(stock["version"])
        return response

    def _on_set_up_stock(self, request: Request, user: int, up_id: str) -> Response:
        stock = self._user_product(up_id)
        version = request.headers.get("x-version")
        if version is None:
            raise ApiError(400, "bad_request", "x-version header is required")
        if version != str(stock["version"]):
            raise ApiError(409, "conflict", f"x-version {version} is stale: GET the stock again")
        locations = _object(_read_json(request)).get("locations")
        if not isinstance(locations, list) or not locations:
            raise ApiError(400, "bad_request", "locations must be a non-empty list")
        for wanted in locations:
            place = next((loc for loc in stock["locations"] if loc["type"] == "seller_warehouse"
                          and loc.get("store_id") == wanted.get("store_id")
                          and loc.get("network_node_id") == wanted.get("network_node_id")), None)  # fmt: skip
            if place is None or not _is_int(wanted.get("quantity")) or wanted["quantity"] < 0:
                raise ApiError(400, "bad_request", f"unknown stock location or bad quantity: {wanted}")
            place["quantity"] = wanted["quantity"]
        stock["version"] += 1
        total = sum(loc["quantity"] for loc in stock["locations"])
        for item in self.items.values():
            if item["user_product_id"] == up_id:
                item["available_quantity"] = total
                self._follow_stock(item)
        response = json_response({"locations": stock["locations"], "id": up_id})
        response.headers["x-version"] = str(stock["version"])
        return response

    # ------------------------------------------------------------- promotions

    def _on_list_promotions(self, request: Request, user: int, item_id: str) -> Json:
        self._require_v2(request)
        self._item(item_id)
        for promotion in self.promotions.get(item_id, []):
            promotion["status"] = self._promotion_status(promotion)
        return self.promotions.get(item_id, [])

    def _on_add_promotion(self, request: Request, user: int, item_id: str) -> Json:
        self._require_v2(request)
        item = self._item(item_id)
        body = _object(_read_json(request))
        if body.get("promotion_type") != "PRICE_DISCOUNT":
            raise ApiError(400, "bad_request", "promotion_type must be PRICE_DISCOUNT")
        if item["status"] != "active" or item["listing_type_id"] == "free":
            raise ApiError(400, "item.not_eligible", "only active items not of the free listing type take discounts")
        deal = _positive(body.get("deal_price"), "deal_price")
        if deal >= item["price"]:
            raise ApiError(400, "deal_price.invalid", "deal_price must be below the item's price")
        start, finish = _site_time(body.get("start_date"), "start_date"), _site_time(body.get("finish_date"), "finish_date")
        if finish <= start or finish - start > timedelta(days=MAX_PROMOTION_DAYS):
            raise ApiError(400, "dates.invalid", f"a discount lasts at most {MAX_PROMOTION_DAYS} days")
        if any(p["status"] in ("started", "pending") for p in self._promotions(item_id)):
            raise ApiError(400, "promotion.already_exists", "the item has a PRICE_DISCOUNT: delete it first")
        promotion = {"id": f"OFFER-{item_id}-{self._take('file')}", "type": "PRICE_DISCOUNT", "price": deal,
                     "original_price": item["price"], "start_date": body["start_date"],
                     "finish_date": body["finish_date"]}  # fmt: skip
        promotion["status"] = self._promotion_status(promotion)
        self.promotions.setdefault(item_id, []).append(promotion)
        return json_response({"price": deal, "original_price": item["price"]}, 201)

    def _on_delete_promotion(self, request: Request, user: int, item_id: str) -> Json:
        self._require_v2(request)
        self._item(item_id)
        if request.args.get("promotion_type") != "PRICE_DISCOUNT":
            raise ApiError(400, "bad_request", "promotion_type is required")
        self.promotions[item_id] = [p for p in self._promotions(item_id) if p["type"] != "PRICE_DISCOUNT"]
        return {"status": "ok"}

    def _promotions(self, item_id: str) -> list[dict[str, Json]]:
        for promotion in self.promotions.get(item_id, []):
            promotion["status"] = self._promotion_status(promotion)
        return self.promotions.get(item_id, [])

    def _promotion_status(self, promotion: dict[str, Json]) -> str:
        now = self.now()
        start, finish = _site_time(promotion["start_date"]), _site_time(promotion["finish_date"])
        return "pending" if now < start else "started" if now < finish else "finished"

    def _running_promotion(self, item_id: str) -> dict[str, Json] | None:
        return next((p for p in self._promotions(item_id) if p["status"] == "started"), None)

    def running_deal_price(self, item_id: str) -> Decimal | None:
        """The PRICE_DISCOUNT price buyers see now, if one runs."""
        with self._lock:
            running = self._running_promotion(item_id)
            return None if running is None else running["price"]

    # ----------------------------------------------------------------- orders

    def _on_search_orders(self, request: Request, user: int) -> Json:
        if request.args.get("seller") != str(user):
            raise ApiError(403, "forbidden", "seller must be the token's user")
        offset, limit = _int_arg(request, "offset", 0), _int_arg(request, "limit", MAX_ORDERS_LIMIT)
        if not 1 <= limit <= MAX_ORDERS_LIMIT:
            raise ApiError(400, "bad_request", f"limit must be 1 to {MAX_ORDERS_LIMIT}")
        found = [order for order in self.orders.values() if self._matches(order, request.args)]
        key = self.orders_sort_key
        found.sort(key=lambda order: (_parse_ml_time(order[key]), order["id"]),
                   reverse=request.args.get("sort") == "date_desc")  # fmt: skip
        answer = {
            "query": "", "results": found[offset:offset + limit],
            "sort": {"id": request.args.get("sort", "date_asc"), "name": "Date"}, "available_sorts": [],
            "filters": [{"id": "seller", "values": [{"id": str(user)}]}],
            "paging": {"total": len(found), "offset": offset, "limit": limit}, "display": "complete",
        }  # fmt: skip
        response = json_response(answer)  # serialized now: before the hook changes things
        if self.after_orders_page is not None:
            self.after_orders_page(offset)
        return response

    def _matches(self, order: dict[str, Json], args: Mapping[str, str]) -> bool:
        status = args.get("order.status")
        if status and order["status"] != status:
            return False
        for field in ("date_last_updated", "date_created"):
            moment = _parse_ml_time(order[field])
            low, high = args.get(f"order.{field}.from"), args.get(f"order.{field}.to")
            # ML truncates these filters to the hour: minutes and seconds are ignored.
            if low and moment < _hour(_query_time(low, f"order.{field}.from")):
                return False
            if high and moment > _hour(_query_time(high, f"order.{field}.to")):
                return False
        return True

    def _on_get_order(self, request: Request, user: int, order_id: int) -> Json:
        order = self.orders.get(order_id)
        if order is None or order["seller"]["id"] != user:
            raise ApiError(404, "order_not_found", "Order not found.")
        return order

    def _on_get_pack(self, request: Request, user: int, pack_id: int) -> Json:
        pack = self.packs.get(pack_id)
        if pack is None:
            raise ApiError(404, "pack_not_found", f"Pack {pack_id} not found")
        return pack

    # ------------------------------------------------------- shipments, NF-e

    def _on_get_shipment(self, request: Request, user: int, shipment_id: int) -> Json:
        return self._shipment_of(shipment_id)

    def _on_update_custom_shipment(self, request: Request, user: int, shipment_id: int) -> Json:
        shipment = self._shipment_of(shipment_id)
        if shipment["logistic"]["mode"] not in ("custom", "not_specified"):
            raise ApiError(400, "shipment.mode.invalid", "only custom shipments take tracking this way")
        body = _object(_read_json(request))
        shipment["tracking_number"] = _text(body.get("tracking_number"), "tracking_number")
        shipment["status"] = body.get("status", shipment["status"])
        return shipment

    def _on_get_invoice_data(self, request: Request, user: int, shipment_id: int) -> Json:
        self._shipment_of(shipment_id)
        xml = self.invoice_data.get(shipment_id)
        if xml is None:
            raise ApiError(404, "invoice_not_found", f"No invoice for shipment {shipment_id}")
        key = _NFE_KEY.search(xml)
        return {"shipment_id": shipment_id, "site_id": "MLB", "fiscal_key": key.group() if key else None}

    def _on_add_invoice_data(self, request: Request, user: int, shipment_id: int) -> Json:
        return self._store_invoice_data(request, shipment_id, replacing=False)

    def _on_replace_invoice_data(self, request: Request, user: int, shipment_id: int) -> Json:
        return self._store_invoice_data(request, shipment_id, replacing=True)

    def _store_invoice_data(self, request: Request, shipment_id: int, *, replacing: bool) -> Response:
        shipment = self._shipment_of(shipment_id)
        if request.args.get("siteId") != "MLB":
            raise ApiError(400, "bad_request", "siteId=MLB is required")
        if request.mimetype not in _XML_TYPES:
            raise ApiError(400, "bad_request", "the body must be the NF-e XML (application/xml)")
        if shipment["logistic"]["mode"] != "me2" or shipment["logistic"]["type"] not in LABEL_MODES:
            raise ApiError(400, "shipment.logistic.invalid", "this shipment does not take an NF-e import")
        if (shipment_id in self.invoice_data) != replacing:
            raise ApiError(400, "invoice.conflict", "use PUT to replace an invoice" if not replacing else "no invoice to replace")
        xml = request.get_data(as_text=True)
        if not _NFE_KEY.search(xml):
            raise ApiError(400, "invoice.invalid", "the XML carries no 44-digit access key")
        self.invoice_data[shipment_id] = xml
        if shipment["substatus"] == "invoice_pending":
            shipment["substatus"] = "ready_to_print"
        return json_response({"status": "ok", "shipment_id": shipment_id}, 200 if replacing else 201)

    def _on_seller_notification(self, request: Request, user: int, shipment_id: int) -> Json:
        shipment = self._shipment_of(shipment_id)
        if shipment["logistic"]["mode"] != "me1":
            raise ApiError(400, "shipment.mode.invalid", "seller notifications are for me1 shipments")
        body = _object(_read_json(request))
        status = body.get("status")
        if status not in ("shipped", "delivered", "not_delivered"):
            raise ApiError(400, "bad_request", "status must be shipped, delivered or not_delivered")
        if "substatus" not in body or body["substatus"] == "null":
            raise ApiError(400, "bad_request", 'substatus must be present: JSON null, not the string "null"')
        if ("tracking_number" in body) != ("tracking_url" in body):
            raise ApiError(400, "bad_request", "tracking_number and tracking_url go together")
        if not isinstance(body.get("payload"), dict) or not body["payload"].get("date"):
            raise ApiError(400, "bad_request", "payload.date is required")
        if shipment["status"] in _TERMINAL_SHIPMENT:
            raise ApiError(400, "shipment.status.final", f"shipment is {shipment['status']}: final and irreversible")
        if status == "delivered" and self.enforce_ship_before_deliver and shipment["status"] != "shipped":
            raise ApiError(400, "shipment.status.transition", "a shipment is shipped before it is delivered")
        shipment.update(status=status, substatus=body["substatus"])
        if body.get("tracking_number"):
            shipment.update(tracking_number=body["tracking_number"], tracking_url=body["tracking_url"])
        self.seller_notifications.setdefault(shipment_id, []).append(body)
        return {"status": "OK"}

    def _on_list_fiscal_documents(self, request: Request, user: int, pack_id: int) -> Json:
        self._purchase(pack_id)
        documents = self.fiscal_documents.get(pack_id, [])
        return {"fiscal_documents": [{key: doc[key] for key in ("id", "file_name", "file_type")} for doc in documents]}

    def _on_add_fiscal_documents(self, request: Request, user: int, pack_id: int) -> Response:
        self._purchase(pack_id)
        files = request.files.getlist("fiscal_document")
        if not files:
            raise ApiError(400, "bad_request", "multipart field fiscal_document is required")
        if self.fiscal_documents.get(pack_id):
            raise ApiError(400, "fiscal_document.already_exists", "the pack has a fiscal document: delete it first")
        stored = []
        for upload in files:
            data = upload.read()
            if upload.mimetype not in _FISCAL_TYPES or len(data) > _MAX_FISCAL_BYTES:
                raise ApiError(400, "fiscal_document.invalid", "PDF or XML files of at most 1 MB")
            stored.append({"id": f"{self.seller_id}_{self._hex(8)}", "file_name": upload.filename,
                           "file_type": upload.mimetype, "content": data})  # fmt: skip
        self.fiscal_documents[pack_id] = stored
        return json_response({"ids": [doc["id"] for doc in stored]}, 201)

    def _on_delete_fiscal_document(self, request: Request, user: int, pack_id: int, file_id: str) -> Json:
        documents = self.fiscal_documents.get(pack_id, [])
        if not any(doc["id"] == file_id for doc in documents):
            raise ApiError(404, "not_found", f"fiscal document {file_id} not found")
        self.fiscal_documents[pack_id] = [doc for doc in documents if doc["id"] != file_id]
        return {"status": "ok"}

    # ---------------------------------------------------------------- messages

    def _on_unread_messages(self, request: Request, user: int) -> Json:
        if request.args.get("role") != "seller":
            raise ApiError(400, "bad_request", "role is required")
        self._require_post_sale(request)
        results = []
        for pack_id, conversation in self.conversations.items():
            unread = [m for m in conversation["messages"] if m["to"]["user_id"] == user and not m["message_date"]["read"]]
            if unread:
                results.append({"resource": f"/packs/{pack_id}/sellers/{user}", "count": len(unread)})
        return {"user_id": user, "results": results}

    def _on_get_conversation(self, request: Request, user: int, pack_id: int, seller_id: int) -> Json:
        self._require_post_sale(request)
        self._own(user, seller_id)
        conversation = self._conversation(pack_id)
        offset, limit = _int_arg(request, "offset", 0), _int_arg(request, "limit", 10)
        messages = conversation["messages"]
        if request.args.get("mark_as_read", "true") != "false":
            for message in messages:
                if message["to"]["user_id"] == user and not message["message_date"]["read"]:
                    message["message_date"]["read"] = _ml_time(self.now(), UTC)
        path = f"/packs/{pack_id}/sellers/{seller_id}" + ("/conversations/post_sale" if conversation["agent"] else "")
        return {
            "paging": {"limit": limit, "offset": offset, "total": len(messages)},
            "conversation_status": {"path": path, "status": conversation["status"],
                                    "substatus": conversation["substatus"], "status_date": _ml_time(self.now(), UTC),
                                    "status_update_allowed": False, "claim_id": None,
                                    "shipping_id": conversation["shipment_id"]},
            "messages": messages[offset:offset + limit],
            "seller_max_message_length": SELLER_MAX_MESSAGE, "buyer_max_message_length": 3500,
        }  # fmt: skip

    def _on_send_message(self, request: Request, user: int, pack_id: int, seller_id: int) -> Response:
        self._require_post_sale(request)
        self._own(user, seller_id)
        conversation = self._conversation(pack_id)
        body = _object(_read_json(request))
        text = _text(body.get("text"), "text")
        if len(text) > SELLER_MAX_MESSAGE:
            raise ApiError(400, "bad_request", f"text is longer than {SELLER_MAX_MESSAGE} characters")
        if conversation["status"] != "active":
            raise ApiError(403, conversation["substatus"] or "blocked", "the conversation does not take messages")
        if str((body.get("from") or {}).get("user_id")) != str(user):
            raise ApiError(400, "bad_request", "from.user_id must be the seller")
        counterpart = AI_AGENT_ID if conversation["agent"] else conversation["buyer_id"]
        if str((body.get("to") or {}).get("user_id")) != str(counterpart):
            raise ApiError(400, "bad_request", f"to.user_id must be {counterpart}")
        message = self._post_message(pack_id, user, counterpart, text, read=True)
        return json_response(message, 201)

    def _post_message(self, pack_id: int, sender: int, receiver: int, text: str, *, read: bool) -> dict[str, Json]:
        now = _ml_time(self.now(), UTC)
        reason = next((why for pattern, why in _MODERATED if pattern.search(text)), None)
        message = {
            "id": self._hex(32), "site_id": "MLB", "client_id": int(self.client[0]),
            "from": {"user_id": sender}, "to": {"user_id": receiver}, "status": "available", "subject": None,
            "text": text,
            "message_date": {"received": now, "available": now, "notified": now, "created": now,
                             "read": now if read else None},
            "message_moderation": {"status": "rejected" if reason else "clean", "reason": reason,
                                   "source": "online", "moderation_date": now},
            "message_attachments": None,
            "message_resources": [{"id": str(pack_id), "name": "packs"}, {"id": str(self.seller_id), "name": "sellers"}],
            "conversation_first_message": not self.conversations[pack_id]["messages"],
        }  # fmt: skip
        self.conversations[pack_id]["messages"].append(message)
        return message

    # ------------------------------------------------------------------ claims

    def _on_search_claims(self, request: Request, user: int) -> Json:
        args = request.args
        if "players.user_id" in args and "players.role" not in args:
            raise ApiError(400, "bad_request", "players.user_id needs players.role")
        if not set(args) - {"offset", "limit"}:
            raise ApiError(400, "bad_request", "at least one filter is required")
        offset, limit = _int_arg(request, "offset", 0), _int_arg(request, "limit", 30)
        if limit > 100 or offset + limit >= 10000:
            raise ApiError(400, "bad_request", "limit <= 100 and offset + limit < 10000")
        found = [
            claim for claim in self.claims.values()
            if (args.get("status") in (None, claim["status"]))
            and ("players.user_id" not in args or any(
                p["role"] == args["players.role"] and str(p["user_id"]) == args["players.user_id"]
                for p in claim["players"]))
        ]  # fmt: skip
        return {"paging": {"total": len(found), "offset": offset, "limit": limit}, "data": found[offset:offset + limit]}

    def _on_get_claim(self, request: Request, user: int, claim_id: int) -> Json:
        return self._claim(claim_id)

    def _on_claim_messages(self, request: Request, user: int, claim_id: int) -> Json:
        self._claim(claim_id)
        return self.claim_messages[claim_id]

    def _on_claim_reply(self, request: Request, user: int, claim_id: int) -> Response:
        claim = self._claim(claim_id)
        body = _object(_read_json(request))
        receiver = body.get("receiver_role")
        action = {"complainant": "send_message_to_complainant", "mediator": "send_message_to_mediator"}.get(receiver)
        respondent = next(p for p in claim["players"] if p["role"] == "respondent")
        if action is None or action not in {a["action"] for a in respondent["available_actions"]}:
            raise ApiError(400, "action.not_available", f"{action or receiver} is not an available action now")
        message = self._post_claim_message(claim_id, "respondent", receiver, _text(body.get("message"), "message"))
        return json_response(message, 201)

    def _post_claim_message(self, claim_id: int, sender: str, receiver: str, text: str) -> dict[str, Json]:
        now = _ml_time(self.now())
        message = {
            "sender_role": sender, "receiver_role": receiver, "message": text, "translated_message": None,
            "date_created": now, "last_updated": now, "message_date": now, "date_read": None, "attachments": [],
            "status": "available", "stage": "claim",
            "message_moderation": {"status": "clean", "reason": "", "source": "online", "date_moderated": None},
            "repeated": False,
        }  # fmt: skip
        self.claim_messages[claim_id].append(message)
        return message

    # -------------------------------------------------------------- internals

    def _take(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] += 1
        return value

    def _hex(self, length: int) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(length))

    def _own(self, user: int, owner: int) -> None:
        if user != owner:
            raise ApiError(403, "forbidden", "the token's user does not own this resource")

    def _item(self, item_id: str) -> dict[str, Json]:
        item = self.items.get(item_id)
        if item is None:
            raise ApiError(404, "item.not_found", f"Item {item_id} not found")
        return item

    def _variation_of(self, item: dict[str, Json], variation_id: int) -> dict[str, Json]:
        variation = next((v for v in item["variations"] if v["id"] == variation_id), None)
        if variation is None:
            raise ApiError(404, "variation.not_found", f"Variation {variation_id} not found")
        return variation

    def _variation(self, sku: str, combination: Mapping[str, str], quantity: int, price: Decimal) -> dict[str, Json]:
        return {
            "id": self._take("variation"), "price": price, "available_quantity": quantity, "sold_quantity": 0,
            "attribute_combinations": [{"id": key, "name": key.title(), "value_name": value}
                                       for key, value in combination.items()],
            "attributes": [{"id": "SELLER_SKU", "name": "SKU", "value_name": sku}],
            "picture_ids": [], "user_product_id": f"MLBU{self._take('up')}", "inventory_id": None,
        }  # fmt: skip

    def _user_product(self, up_id: str) -> dict[str, Json]:
        stock = self.user_products.get(up_id)
        if stock is None:
            raise ApiError(404, "not_found", f"User product {up_id} not found")
        return stock

    def _sell(self, item_id: str, variation_id: int | None, quantity: int) -> None:
        item = self.items.get(item_id)
        if item is None:
            return
        item["sold_quantity"] += quantity
        target = self._variation_of(item, variation_id) if variation_id else item
        target["available_quantity"] = max(0, target["available_quantity"] - quantity)
        if variation_id:
            target["sold_quantity"] += quantity
            item["available_quantity"] = sum(v["available_quantity"] for v in item["variations"])
        self._follow_stock(item)

    def _order(
        self, order_id: int, pack_id: int | None, shipment_id: int, item_id: str, variation_id: int | None,
        quantity: int, unit_price: Decimal, shipping_cost: Decimal, status: str, buyer_id: int,
    ) -> dict[str, Json]:
        now = self.now()
        item = self.items.get(item_id) or {"title": item_id, "category_id": "MLB108720", "attributes": [], "variations": []}
        variation = next((v for v in item["variations"] if v["id"] == variation_id), None)
        skus = _attribute(variation["attributes"] if variation else item["attributes"], "SELLER_SKU")
        total = unit_price * quantity
        return {
            "id": order_id, "date_created": _ml_time(now), "date_closed": _ml_time(now), "last_updated": _ml_time(now),
            "date_last_updated": _ml_time(now, UTC), "pack_id": pack_id, "status": status, "status_detail": None,
            "fulfilled": None, "tags": (["pack_order"] if pack_id else []) + ["paid" if status == "paid" else "not_paid"],
            "order_items": [{
                "item": {"id": item_id, "title": item["title"], "category_id": item["category_id"],
                         "variation_id": variation_id,
                         "variation_attributes": variation["attribute_combinations"] if variation else [],
                         "seller_sku": skus, "seller_custom_field": None},
                "quantity": quantity, "unit_price": unit_price, "full_unit_price": unit_price, "currency_id": "BRL",
                "sale_fee": (total * Decimal("0.14")).quantize(Decimal("0.01")), "listing_type_id": "gold_special"}],
            "total_amount": total, "paid_amount": total + shipping_cost, "currency_id": "BRL",
            "buyer": {"id": buyer_id, "nickname": self.users.get(buyer_id, {}).get("nickname", "COMPRADOR"),
                      "first_name": "Maria", "last_name": "Silva"},
            "seller": {"id": self.seller_id},
            "payments": [{"id": order_id + 50_000_000_000, "order_id": order_id, "status": "approved",
                          "status_detail": "accredited", "transaction_amount": total, "shipping_cost": shipping_cost,
                          "total_paid_amount": total + shipping_cost, "marketplace_fee": Decimal(0),
                          "coupon_amount": Decimal(0), "installments": 1, "payment_type": "credit_card",
                          "date_approved": _ml_time(now), "currency_id": "BRL"}],
            "shipping": {"id": shipment_id}, "cancel_detail": None, "mediations": [],
            "context": {"channel": "marketplace", "site": "MLB", "flows": []},
        }  # fmt: skip

    def _shipment(self, shipment_id: int, mode: str, logistic_type: str, lines: list[Any], buyer_id: int) -> dict[str, Json]:
        now = _ml_time(self.now())
        label_pending = mode == "me2" and logistic_type in LABEL_MODES
        return {
            "id": shipment_id, "status": "ready_to_ship",
            "substatus": "invoice_pending" if label_pending else "ready_to_print" if mode == "me2" else None,
            "date_created": now, "last_updated": now,
            "declared_value": sum((unit * qty for _, _, qty, unit in lines), Decimal(0)),
            "logistic": {"direction": "forward", "mode": mode, "type": logistic_type},
            "tracking_number": None, "tracking_method": None,
            "origin": {"type": "selling_address", "sender_id": self.seller_id, "shipping_address": {"zip_code": "01001000"}},
            "destination": {"type": "buying_address", "receiver_id": buyer_id, "receiver_name": "Maria Silva",
                            "shipping_address": {"address_line": "Rua Exemplo 123", "zip_code": "22290140",
                                                 "city": {"id": "BR-RJ-03", "name": "Rio de Janeiro"},
                                                 "state": {"id": "BR-RJ", "name": "Rio de Janeiro"}}},
            "dimensions": {"height": 3, "width": 25, "length": 30, "weight": 250},
        }  # fmt: skip

    def _touch(self, order: dict[str, Json]) -> None:
        order["date_last_updated"] = _ml_time(self.now(), UTC)
        order["last_updated"] = _ml_time(self.now())

    def _shipment_of(self, shipment_id: int) -> dict[str, Json]:
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            raise ApiError(404, "shipment_not_found", f"Shipment {shipment_id} not found")
        return shipment

    def _purchase(self, pack_id: int) -> None:
        """A pack id, or the id of an order without a pack: pack-keyed APIs take both."""
        if pack_id not in self.packs and not (pack_id in self.orders and self.orders[pack_id]["pack_id"] is None):
            raise ApiError(404, "pack_not_found", f"Pack {pack_id} not found")

    def _conversation(self, pack_id: int) -> dict[str, Json]:
        self._purchase(pack_id)
        return self.conversations[pack_id]

    def _claim(self, claim_id: int) -> dict[str, Json]:
        claim = self.claims.get(claim_id)
        if claim is None:
            raise ApiError(404, "claim_not_found", f"Claim {claim_id} not found")
        return claim

    @staticmethod
    def _require_v2(request: Request) -> None:
        if request.args.get("app_version") != "v2":
            raise ApiError(400, "bad_request", "app_version=v2 is required")

    @staticmethod
    def _require_post_sale(request: Request) -> None:
        if request.args.get("tag") != "post_sale":
            raise ApiError(404, "not_found", "tag=post_sale is required")


# ---------------------------------------------------------------- JSON and errors


def _error_response(error: ApiError) -> Response:
    response = json_response(error.body(), error.status)
    response.headers.update(error.headers)
    return response


def _invalid_grant() -> OAuthError:
    return OAuthError(400, "invalid_grant", "Error validating grant. Your authorization code or refresh token may "
                                            "be expired or it was already used")  # fmt: skip


def _read_json(request: Request) -> Json:
    if request.get_data().strip() and request.mimetype != "application/json":
        raise ApiError(400, "bad_request", "Content-Type must be application/json")
    return read_json(request, ApiError(400, "bad_request", "the body is not valid JSON"))


def _object(value: Json) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return value


def _text(value: Json, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "bad_request", f"{name} must be a non-empty string")
    return value


def _is_int(value: Json) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Json, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value <= 0:
        raise ApiError(400, "bad_request", f"{name} must be a number above 0")
    return Decimal(value)


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer") from None


# ---------------------------------------------------------------- items


def _attribute(attributes: Iterable[Mapping[str, Json]], attribute_id: str) -> str | None:
    return next((a.get("value_name") for a in attributes if a.get("id") == attribute_id), None)


def _skus_of(item: Mapping[str, Json]) -> set[str]:
    skus = {_attribute(item["attributes"], "SELLER_SKU")}
    skus |= {_attribute(v["attributes"], "SELLER_SKU") for v in item["variations"]}
    return {sku for sku in skus if sku}


def _merge_attributes(current: list[dict[str, Json]], changes: Json) -> None:
    """Attributes are merged by id: those not sent keep their value."""
    if not isinstance(changes, list) or not all(isinstance(c, dict) and c.get("id") for c in changes):
        raise ApiError(400, "bad_request", "attributes must be a list of {id, value_name}")
    for change in changes:
        found = next((a for a in current if a["id"] == change["id"]), None)
        if found is None:
            current.append({"id": change["id"], "name": change["id"].title(), "value_name": change.get("value_name")})
        else:
            found["value_name"] = change.get("value_name")


def _variation_view(variation: Mapping[str, Json], full: bool) -> dict[str, Json]:
    # Without include_attributes=all, variations come without their `attributes` (SELLER_SKU, GTIN).
    return {key: value for key, value in variation.items() if full or key != "attributes"}


def _item_view(item: Mapping[str, Json], full: bool) -> dict[str, Json]:
    return {**item, "variations": [_variation_view(v, full) for v in item["variations"]]}


# ---------------------------------------------------------------- times


def _ml_time(moment: datetime, zone: timezone | ZoneInfo = ML_ZONE) -> str:
    """As ML writes dates: milliseconds and an offset (-04:00), or Z for UTC."""
    text = moment.astimezone(zone).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _parse_ml_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _query_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(400, "bad_request", f"{name} must be ISO-8601 with an offset")
    return moment


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _site_time(value: Json, name: str = "date") -> datetime:
    """Promotion dates: site (São Paulo) time without an offset, YYYY-MM-DDTHH:MM:SS."""
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S") if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ApiError(400, "bad_request", f"{name} must be YYYY-MM-DDTHH:MM:SS in site time, without an offset")
    return moment.replace(tzinfo=SITE_ZONE)
