"""A fake VTEX store: Catalog, Logistics, Pricing, OMS and the orders feed as one WSGI app.

It speaks the API as the VTEX reference describes it (its §7 is the behaviour
contract): same paths, auth headers, status codes and per-module error bodies,
with in-memory state behind one lock. Pricing is served under
`/{account}/pricing/...` (and `/api/pricing/...`), so a client's pricing base URL
is `<url>/{account}` and its store base URL is `<url>`.

Choices where VTEX documents nothing (switchable where it matters):
- Product/SKU ids, categories and brands are not checked against a category tree.
- A `FromOrders` (JSONata) feed filter is not evaluated: every status change passes.
- Duplicate RefId -> 409 with a plain-text body; unknown SKU price -> 404.
- `reservedQuantity` is whatever a test sets on `inventory[...]`; writes keep it.
"""

from __future__ import annotations

import base64
import math
import random
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from syncctl.sandbox.clocked import Clocked
from syncctl.sandbox.faults import Faults
from syncctl.sandbox.wire import json_response, read_json

Json = Any
Clock = Callable[[], datetime]
OrderLine = tuple[int | str, str, str, int, int]
"""(sku_id, ref_id, name, quantity, unit price in cents) — one line for `FakeVtex.add_order`."""

PRODUCT_ID_START = 1
SKU_ID_START = 1_000_000  # far from product ids, so a client mixing the two gets 404s
BRAND_ID_START = 2_000_000
ORDER_GROUP_START = 1_468_920_570_000
MAX_FEED_LOT = 10
DEFAULT_VISIBILITY_TIMEOUT_S = 250
DEFAULT_RETENTION_S = 345_600  # 4 days
MAX_LIST_PAGE, MAX_LIST_PER_PAGE, DEFAULT_LIST_PER_PAGE = 30, 100, 15
MAX_SKU_PAGE_SIZE = 1000

_OMS_PREFIXES = ("/api/oms/", "/api/orders/")
_PRICING_PATH = re.compile(r"^/[^/]+/pricing/")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LEAD_TIME = re.compile(r"^(\d+\.)?\d{2}:\d{2}:\d{2}$")
_IMAGE_URL = re.compile(r"^https?://\S+\.(jpg|png|gif)$", re.IGNORECASE)
_CREATION_WINDOW = re.compile(r"^creationDate:\[(.+) TO (.+)\]$")
_TRACKING_FIELDS = ("trackingNumber", "trackingUrl", "courier", "dispatchedDate")

# Every field of a product/SKU with the value a create gives it when omitted.
# A PUT is a full replacement instead: omitted fields become null, booleans false (see _fill).
_PRODUCT_FIELDS: dict[str, Json] = {
    "Name": None, "DepartmentId": None, "CategoryId": None, "BrandId": None, "LinkId": None,
    "RefId": None, "IsVisible": False, "Description": "", "DescriptionShort": "", "ReleaseDate": None,
    "KeyWords": "", "Title": "", "IsActive": False, "TaxCode": "", "MetaTagDescription": "",
    "SupplierId": None, "ShowWithoutStock": False, "AdWordsRemarketingCode": None,
    "LomadeeCampaignCode": None, "Score": 0,
}  # fmt: skip
_SKU_FIELDS: dict[str, Json] = {
    "ProductId": None, "IsActive": False, "ActivateIfPossible": False, "Name": None, "RefId": None,
    "PackagedHeight": None, "PackagedLength": None, "PackagedWidth": None, "PackagedWeightKg": None,
    "Height": 0, "Length": 0, "Width": 0, "WeightKg": 0, "CubicWeight": 0, "IsKit": False,
    "RewardValue": 0, "EstimatedDateArrival": None, "ManufacturerCode": "", "CommercialConditionId": 1,
    "MeasurementUnit": "un", "UnitMultiplier": 1, "ModalType": None, "KitItensSellApart": False,
    "Videos": (),
}  # fmt: skip
_PACKAGED = ("PackagedHeight", "PackagedLength", "PackagedWidth", "PackagedWeightKg")
# Numbers VTEX echoes with a fraction part even when integral (PackagedWeightKg: 250.0).
_SKU_DECIMAL_FIELDS = (
    *_PACKAGED,
    "Height",
    "Length",
    "Width",
    "WeightKg",
    "CubicWeight",
    "RewardValue",
    "UnitMultiplier",
)
_PRODUCT_MAX_LENGTHS = {"Name": 150, "RefId": 100}
_SKU_MAX_LENGTHS = {"Name": 200, "RefId": 50}

_ROUTES: list[tuple[str, str, str]] = [
    # Catalog
    ("GET", "/api/catalog_system/pvt/sku/stockkeepingunitidbyrefid/<ref_id>", "sku_id_by_ref_id"),
    ("POST", "/api/catalog_system/pub/sku/stockkeepingunitidsbyrefids", "sku_ids_by_ref_ids"),
    ("GET", "/api/catalog_system/pvt/sku/stockkeepingunitids", "list_sku_ids"),
    ("GET", "/api/catalog_system/pvt/sku/stockkeepingunitbyean/<ean>", "sku_context_by_ean"),
    ("GET", "/api/catalog_system/pvt/sku/stockkeepingunitbyid/<int:sku_id>", "sku_context_by_id"),
    ("GET", "/api/catalog_system/pvt/products/productgetbyrefid/<ref_id>", "product_by_ref_id"),
    ("POST", "/api/catalog/pvt/product", "create_product"),
    ("GET", "/api/catalog/pvt/product/<int:product_id>", "get_product"),
    ("PUT", "/api/catalog/pvt/product/<int:product_id>", "replace_product"),
    (
        "POST",
        "/api/catalog/pvt/product/<int:product_id>/salespolicy/<int:trade_policy_id>",
        "link_trade_policy",
    ),
    ("GET", "/api/catalog/pvt/stockkeepingunit", "sku_by_ref_id"),
    ("POST", "/api/catalog/pvt/stockkeepingunit", "create_sku"),
    ("GET", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>", "get_sku"),
    ("PUT", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>", "replace_sku"),
    ("GET", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>/ean", "list_eans"),
    ("DELETE", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>/ean", "delete_eans"),
    ("POST", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>/ean/<ean>", "add_ean"),
    ("DELETE", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>/ean/<ean>", "delete_ean"),
    ("GET", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>/file", "list_sku_files"),
    ("POST", "/api/catalog/pvt/stockkeepingunit/<int:sku_id>/file", "add_sku_file"),
    # Logistics (sku ids stay strings: "070" and "70" are different SKUs there)
    ("GET", "/api/logistics/pvt/configuration/warehouses", "list_warehouses"),
    ("GET", "/api/logistics/pvt/inventory/skus/<sku_id>", "get_inventory"),
    ("PUT", "/api/logistics/pvt/inventory/skus/<sku_id>/warehouses/<warehouse_id>", "set_inventory"),
    (
        "PATCH",
        "/api/logistics/pvt/inventory/skus/<sku_id>/warehouses/<warehouse_id>/quantity",
        "set_inventory_quantity",
    ),
    # Pricing (`account` is checked, then dropped, by _enter_pricing)
    ("GET", "/<account>/pricing/prices/<sku_id>", "get_price"),
    ("PUT", "/<account>/pricing/prices/<sku_id>", "replace_price"),
    ("GET", "/<account>/pricing/prices/<sku_id>/fixed", "list_fixed_prices"),
    ("PATCH", "/<account>/pricing/prices/<sku_id>/fixed", "merge_fixed_prices"),
    # Orders feed
    ("GET", "/api/orders/feed/config", "get_feed_config"),
    ("POST", "/api/orders/feed/config", "set_feed_config"),
    ("DELETE", "/api/orders/feed/config", "delete_feed_config"),
    ("GET", "/api/orders/feed", "read_feed"),
    ("POST", "/api/orders/feed", "commit_feed"),
    # OMS
    ("GET", "/api/oms/pvt/orders", "list_orders"),
    ("GET", "/api/oms/pvt/orders/<order_id>", "get_order"),
    ("POST", "/api/oms/pvt/orders/<order_id>/start-handling", "start_handling"),
    ("POST", "/api/oms/pvt/orders/<order_id>/invoice", "add_invoice"),
    ("PATCH", "/api/oms/pvt/orders/<order_id>/invoice/<invoice_number>", "update_tracking"),
    ("PUT", "/api/oms/pvt/orders/<order_id>/invoice/<invoice_number>/tracking", "add_tracking_events"),
    ("POST", "/api/oms/pvt/orders/<order_id>/cancel", "cancel_order"),
]
ENDPOINTS = frozenset(endpoint for _, _, endpoint in _ROUTES)
_URLS = Map(  # built once: compiling the rules is the slow part of a FakeVtex
    [Rule(path, methods=[method], endpoint=endpoint) for method, path, endpoint in _ROUTES],
    strict_slashes=False,
    merge_slashes=False,
)


class ApiError(Exception):
    """A handler's refusal, rendered in the error style of the route's module."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "1",
        plain_text: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.plain_text = plain_text
        self.headers = dict(headers or {})


@dataclass
class _FeedEvent:
    event_id: str
    order_id: str
    state: str
    last_state: str
    last_change: datetime
    current_change: datetime  # also when it entered the queue (retention counts from here)
    visible_at: datetime
    domain: str = "Fulfillment"


class _BurstCredits:
    """Pricing's write limit as VTEX describes it: `rate_per_s` requests a second are free,
    each one beyond spends a credit, credits refill at that rate while idle — i.e. a token
    bucket of `credits` refilled at `rate_per_s`. Not enforced unless `enforced`."""

    def __init__(self, rate_per_s: float, credits: int, start: datetime, *, enforced: bool) -> None:
        self.rate_per_s = rate_per_s
        self.credits = credits
        self.enforced = enforced
        self._tokens = float(credits)
        self._at = start

    def take(self, now: datetime) -> bool:
        if not self.enforced:
            return True
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def retry_after_s(self) -> int:
        return max(1, math.ceil((1 - self._tokens) / self.rate_per_s))

    def headers(self, now: datetime) -> dict[str, str]:
        self._refill(now)
        return {
            "Ratelimit-Limit": str(self.credits),
            "Ratelimit-Remaining": str(int(self._tokens)),
            "Ratelimit-Reset": str(math.ceil((self.credits - self._tokens) / self.rate_per_s)),
        }

    def _refill(self, now: datetime) -> None:
        elapsed = max((now - self._at).total_seconds(), 0.0)
        self._tokens = min(float(self.credits), self._tokens + elapsed * self.rate_per_s)
        self._at = now


class FakeVtex(Clocked):
    """The fake store. Call it as a WSGI app; drive it from tests with the plain methods
    (`add_order`, `set_order_status`, `advance`, ...) and read its state from the public
    dicts. Every HTTP request and helper call holds one lock. `clock` returns aware UTC
    datetimes (default: real time); `sleep` is what fault-injected delays call."""

    def __init__(
        self,
        account: str = "demostore",
        app_key: str = "vtexappkey-demo",
        app_token: str = "demo-token",
        clock: Clock | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        self.account = account
        self._credentials = (app_key, app_token)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._offset = timedelta()
        self._lock = threading.RLock()
        self.faults = Faults(sleep=sleep)
        self.denied: set[str] = set()
        self._next_ids = {"product": PRODUCT_ID_START, "sku": SKU_ID_START, "file": 1}
        # Catalog
        self.products: dict[int, dict[str, Json]] = {}
        self.skus: dict[int, dict[str, Json]] = {}
        self.eans: dict[int, list[str]] = {}
        self.sku_files: dict[int, list[dict[str, Json]]] = {}
        self.sales_policies: dict[int, set[int]] = {}
        self.categories: dict[str, int] = {}  # "A/B/C" -> id
        self.brands: dict[str, int] = {}  # name -> id
        self._product_by_ref: dict[str, int] = {}
        self._sku_by_ref: dict[str, int] = {}
        self._sku_by_ean: dict[str, int] = {}
        # Logistics
        self.warehouses: dict[str, dict[str, Json]] = {}
        self.inventory: dict[tuple[str, str], dict[str, Json]] = {}
        self.add_warehouse("1_1")
        # Pricing
        self.prices: dict[str, dict[str, Json]] = {}
        self._pricing_limit = _BurstCredits(33, 500, self.now(), enforced=False)
        # Orders
        self.orders: dict[str, dict[str, Json]] = {}
        self.feed_config: dict[str, Json] | None = None
        self.feed_duplicate_delivery = False  # deliver each event twice per lot, two handles
        self.feed_shuffle = False  # deliver visible events in random order
        self.list_index_delay_s = 0.0  # List orders only sees orders at least this old
        self._feed: dict[str, _FeedEvent] = {}
        self._handles: dict[str, str] = {}  # handle -> event id
        self._rng = random.Random(seed)  # ids, handles and receipts: the same run twice gives the same ones
        self._order_count = 0

    def _hex(self) -> str:
        return uuid.UUID(int=self._rng.getrandbits(128)).hex

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.faults.run(
            request,
            lambda: self._dispatch(request),
            lambda status, message: _error_response(request.path, ApiError(status, message)),
        )
        if _PRICING_PATH.match(request.path):
            with self._lock:
                response.headers.update(self._pricing_limit.headers(self.now()))
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
            self._authorize(request, endpoint)
            body = _read_json(request)
            with self._lock:
                if "account" in args:
                    self._enter_pricing(request, args.pop("account"))
                result = getattr(self, f"_on_{endpoint}")(request, body, **args)
                # Serialized under the lock: `result` may be live state another request could change.
                return result if isinstance(result, Response) else json_response(result)
        except ApiError as error:
            return _error_response(request.path, error)
        except HTTPException as error:  # no such route, or wrong method
            return _error_response(request.path, ApiError(error.code or 500, error.name))

    def _authorize(self, request: Request, endpoint: str) -> None:
        supplied = (request.headers.get("X-VTEX-API-AppKey"), request.headers.get("X-VTEX-API-AppToken"))
        if supplied != self._credentials:
            raise ApiError(401, "Unauthorized: missing or invalid X-VTEX-API-AppKey / X-VTEX-API-AppToken")
        if endpoint in self.denied:
            raise ApiError(
                403, "Forbidden: the appKey's role lacks the License Manager resource this route needs"
            )

    def _enter_pricing(self, request: Request, account: str) -> None:
        if account not in (self.account, "api"):
            raise ApiError(404, f"Account {account} not found")
        if request.method in _WRITE_METHODS and not self._pricing_limit.take(self.now()):
            retry_after = str(self._pricing_limit.retry_after_s())
            raise ApiError(429, "Too many requests", headers={"Retry-After": retry_after})

    # ------------------------------------------------------- test/demo helpers

    def deny(self, *endpoints: str) -> None:
        """Answer 403 on these routes (names from ENDPOINTS), as for a key missing a resource."""
        unknown = set(endpoints) - ENDPOINTS
        if unknown:
            raise ValueError(f"unknown endpoints: {sorted(unknown)}")
        with self._lock:
            self.denied.update(endpoints)

    def limit_pricing(self, rate_per_s: float = 33, credits: int = 500) -> None:
        """Enforce Pricing's burst-credit limit on writes (429 + Retry-After when out)."""
        with self._lock:
            self._pricing_limit = _BurstCredits(rate_per_s, credits, self.now(), enforced=True)

    def add_warehouse(self, warehouse_id: str, name: str | None = None) -> None:
        with self._lock:
            self.warehouses[warehouse_id] = {
                "id": warehouse_id,
                "name": name or f"Warehouse {warehouse_id}",
                "warehouseDocks": [{"dockId": "doca1", "time": "1.00:00:00", "cost": 0}],
                "pickupPointIds": [],
                "priority": 0,
                "isActive": True,
            }

    def configure_feed(
        self,
        statuses: Iterable[str],
        *,
        visibility_timeout_s: int = 300,
        retention_s: int = DEFAULT_RETENTION_S,
    ) -> None:
        """What POST /api/orders/feed/config does, for setting up a scenario."""
        config = _feed_config(
            {
                "filter": {"type": "FromWorkflow", "status": list(statuses)},
                "queue": {
                    "visibilityTimeoutInSeconds": visibility_timeout_s,
                    "MessageRetentionPeriodInSeconds": retention_s,
                },
            }
        )
        with self._lock:
            self.feed_config = config

    def add_order(
        self,
        order_id: str | None = None,
        *,
        items: Sequence[OrderLine],
        shipping_cents: int = 0,
        status: str = "ready-for-handling",
        customer: Mapping[str, Json] | None = None,
        address: Mapping[str, Json] | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Create an order shaped like GET /api/oms/pvt/orders/{id} (money in cents); emits a
        feed event when `status` is in the feed filter. Returns the order id."""
        with self._lock:
            self._order_count += 1
            order_id = order_id or f"{ORDER_GROUP_START + self._order_count}-01"
            if order_id in self.orders:
                raise ValueError(f"order {order_id} already exists")
            created = created_at or self.now()
            lines = [self._order_item(line) for line in items]
            order = _order_json(
                order_id,
                lines,
                shipping_cents=shipping_cents,
                status=status,
                created=created,
                customer=customer or {},
                address=address or {},
                warehouse_id=next(iter(self.warehouses)),
                profile_id=self._hex(),
            )
            self.orders[order_id] = order
            if self._feed_wants(status):
                previous = "window-to-cancel" if status == "ready-for-handling" else "order-created"
                self._enqueue(order, previous, created)
            return order_id

    def feed_backlog(self) -> int:
        """Events waiting in the feed, visible or not (what GET feed/config calls `quantity`)."""
        with self._lock:
            return len(self._feed)

    def set_order_status(self, order_id: str, status: str) -> None:
        """Move an order (e.g. to `cancellation-requested`); emits a feed event if filtered in."""
        with self._lock:
            self._change_status(self.orders[order_id], status)

    def emit_event(self, order_id: str) -> None:
        """Queue a feed event for the order's current status, whatever the filter says."""
        with self._lock:
            order = self.orders[order_id]
            self._enqueue(order, order["status"], datetime.fromisoformat(order["lastChange"]))

    # ----------------------------------------------------------------- Catalog

    def _on_sku_id_by_ref_id(self, request: Request, body: Json, ref_id: str) -> Json:
        return str(self._sku_id_for_ref(ref_id))

    def _on_sku_ids_by_ref_ids(self, request: Request, body: Json) -> Json:
        if not isinstance(body, list) or not all(isinstance(ref_id, str) for ref_id in body):
            raise ApiError(400, "The body must be a JSON array of RefIds")
        if len(set(body)) != len(body):
            raise ApiError(500, "An item with the same key has already been added.")  # what VTEX does
        return {ref_id: _str_or_none(self._sku_by_ref.get(ref_id)) for ref_id in body}

    def _on_list_sku_ids(self, request: Request, body: Json) -> Json:
        page, size = _int_arg(request, "page", 1), _int_arg(request, "pagesize", MAX_SKU_PAGE_SIZE)
        if page < 1 or not 1 <= size <= MAX_SKU_PAGE_SIZE:
            raise ApiError(400, f"page must be >= 1 and pagesize 1..{MAX_SKU_PAGE_SIZE}")
        return sorted(self.skus)[(page - 1) * size : page * size]

    def _on_sku_context_by_ean(self, request: Request, body: Json, ean: str) -> Json:
        sku_id = self._sku_by_ean.get(ean)
        if sku_id is None or not self.skus[sku_id]["IsActive"]:  # inactive SKUs are invisible here
            raise ApiError(404, "SKU not Found")
        return self._sku_context(sku_id)

    def _on_sku_context_by_id(self, request: Request, body: Json, sku_id: int) -> Json:
        self._sku(sku_id)
        return self._sku_context(sku_id)

    def _on_product_by_ref_id(self, request: Request, body: Json, ref_id: str) -> Json:
        product_id = self._product_by_ref.get(ref_id)
        return None if product_id is None else self.products[product_id]  # 200 null, not 404

    def _on_create_product(self, request: Request, body: Json) -> Json:
        body = _object(body)
        _require(body, "Name")
        _check_lengths(body, _PRODUCT_MAX_LENGTHS)
        placement = self._category_and_brand(body)
        product_id = self._new_id("product", self.products, body.get("Id"))
        product = {"Id": product_id, **_fill(body, _PRODUCT_FIELDS, replacing=False), **placement}
        product["LinkId"] = product["LinkId"] or _slug(product["Name"])
        product["ReleaseDate"] = product["ReleaseDate"] or self.now().strftime("%Y-%m-%dT00:00:00")
        return self._store_product(product)

    def _on_get_product(self, request: Request, body: Json, product_id: int) -> Json:
        return self._product(product_id)

    def _on_replace_product(self, request: Request, body: Json, product_id: int) -> Json:
        self._product(product_id)
        body = _object(body)
        _require(body, "Name", "CategoryId", "BrandId")
        _check_lengths(body, _PRODUCT_MAX_LENGTHS)
        return self._store_product({"Id": product_id, **_fill(body, _PRODUCT_FIELDS, replacing=True)})

    def _on_link_trade_policy(
        self, request: Request, body: Json, product_id: int, trade_policy_id: int
    ) -> Json:
        self._product(product_id)
        self.sales_policies.setdefault(product_id, set()).add(trade_policy_id)
        return _empty()

    def _on_sku_by_ref_id(self, request: Request, body: Json) -> Json:
        ref_id = request.args.get("RefId")
        if not ref_id:
            raise ApiError(400, "Query parameter RefId is required")
        return _sku_view(self.skus[self._sku_id_for_ref(ref_id)])

    def _on_create_sku(self, request: Request, body: Json) -> Json:
        body = self._valid_sku_body(body)
        _require(body, "RefId")
        if body.get("IsActive") is True:
            raise ApiError(
                400, "IsActive must be false when creating a SKU; activate it once it has an image"
            )
        sku_id = self._new_id("sku", self.skus, body.get("Id"))
        creation = _vtex_time(self.now(), zone="")
        return self._store_sku(
            {"Id": sku_id, **_fill(body, _SKU_FIELDS, replacing=False), "CreationDate": creation}
        )

    def _on_get_sku(self, request: Request, body: Json, sku_id: int) -> Json:
        return _sku_view(self._sku(sku_id))

    def _on_replace_sku(self, request: Request, body: Json, sku_id: int) -> Json:
        creation = self._sku(sku_id)["CreationDate"]
        body = self._valid_sku_body(body)
        return self._store_sku(
            {"Id": sku_id, **_fill(body, _SKU_FIELDS, replacing=True), "CreationDate": creation}
        )

    def _on_list_eans(self, request: Request, body: Json, sku_id: int) -> Json:
        self._sku(sku_id)
        return self.eans.get(sku_id, [])

    def _on_add_ean(self, request: Request, body: Json, sku_id: int, ean: str) -> Json:
        self._sku(sku_id)
        owner = self._sku_by_ean.get(ean, sku_id)
        if owner != sku_id:
            raise ApiError(409, f"EAN {ean} already belongs to SKU {owner}")
        eans = self.eans.setdefault(sku_id, [])
        if ean not in eans:
            eans.append(ean)
            self._sku_by_ean[ean] = sku_id
        return _empty()

    def _on_delete_ean(self, request: Request, body: Json, sku_id: int, ean: str) -> Json:
        self._sku(sku_id)
        if ean not in self.eans.get(sku_id, []):
            raise ApiError(404, f"EAN {ean} not found on SKU {sku_id}")
        self._drop_eans(sku_id, [ean])
        return _empty()

    def _on_delete_eans(self, request: Request, body: Json, sku_id: int) -> Json:
        self._sku(sku_id)
        self._drop_eans(sku_id, list(self.eans.get(sku_id, [])))
        return _empty()

    def _on_list_sku_files(self, request: Request, body: Json, sku_id: int) -> Json:
        self._sku(sku_id)
        return self.sku_files.get(sku_id, [])

    def _on_add_sku_file(self, request: Request, body: Json, sku_id: int) -> Json:
        sku = self._sku(sku_id)
        body = _object(body)
        _require(body, "Name", "Url")
        if not _IMAGE_URL.match(str(body["Url"])):
            raise ApiError(400, "Url must start with http(s):// and end in .jpg, .png or .gif")
        is_main = bool(body.get("IsMain"))
        files = self.sku_files.setdefault(sku_id, [])
        file_id = self._new_id("file", ())
        files.append(
            {
                "Id": file_id,
                "ArchiveId": file_id,
                "SkuId": sku_id,
                "Name": body["Name"],
                "IsMain": is_main,
                "Label": body.get("Label") or "",
                "Url": body["Url"],
                "Position": 0 if is_main else body.get("Position", len(files)),
            }
        )
        if sku["ActivateIfPossible"]:  # an image is what a new SKU waits for
            sku["IsActive"] = True
        return files

    def _sku_id_for_ref(self, ref_id: str) -> int:
        sku_id = self._sku_by_ref.get(ref_id)
        if sku_id is None:
            raise ApiError(404, f"SKU with RefId {ref_id} not found")
        return sku_id

    def _product(self, product_id: int) -> dict[str, Json]:
        if product_id not in self.products:
            raise ApiError(404, f"Product {product_id} not found")
        return self.products[product_id]

    def _sku(self, sku_id: int) -> dict[str, Json]:
        if sku_id not in self.skus:
            raise ApiError(404, f"SKU {sku_id} not found")
        return self.skus[sku_id]

    def _new_id(self, kind: str, taken: Collection[int], requested: Json = None) -> int:
        if requested is None:
            requested = self._next_ids[kind]
        elif not _is_int(requested) or requested < 1:
            raise ApiError(400, "Id must be a positive integer")
        if requested in taken:
            raise ApiError(409, f"Id {requested} already exists", plain_text=True)
        self._next_ids[kind] = max(self._next_ids[kind], requested + 1)
        return int(requested)

    def _category_and_brand(self, body: dict[str, Json]) -> dict[str, Json]:
        """Ids from CategoryId/BrandId, or from CategoryPath/BrandName (created when missing)."""
        category_id, department_id = body.get("CategoryId"), body.get("DepartmentId")
        if category_id is None and body.get("CategoryPath"):
            category_id, department_id = self._category_path(body["CategoryPath"])
        brand_id = body.get("BrandId")
        if brand_id is None and isinstance(body.get("BrandName"), str) and body["BrandName"]:
            brand_id = self.brands.setdefault(body["BrandName"], BRAND_ID_START + len(self.brands))
        if category_id is None or brand_id is None:
            raise ApiError(400, "CategoryId (or CategoryPath) and BrandId (or BrandName) are required")
        return {"CategoryId": category_id, "DepartmentId": department_id, "BrandId": brand_id}

    def _category_path(self, path: Json) -> tuple[int, int]:
        """Ids of the category at "A/B/C" and of its department "A", creating what is missing."""
        names = [name.strip() for name in path.split("/") if name.strip()] if isinstance(path, str) else []
        if not names:
            raise ApiError(400, 'CategoryPath must look like "Department/Category"')
        ids = [
            self.categories.setdefault("/".join(names[: depth + 1]), len(self.categories) + 1)
            for depth in range(len(names))
        ]
        return ids[-1], ids[0]

    def _store_product(self, product: dict[str, Json]) -> dict[str, Json]:
        old = self.products.get(product["Id"])
        _claim_ref_id(self._product_by_ref, old and old["RefId"], product["RefId"], product["Id"])
        self.products[product["Id"]] = product
        return product

    def _valid_sku_body(self, body: Json) -> dict[str, Json]:
        """Checks shared by SKU create and replace; PackagedWeightKg comes back as an int."""
        body = _object(body)
        _require(body, "ProductId", "Name", *_PACKAGED)
        _check_lengths(body, _SKU_MAX_LENGTHS)
        if not _is_int(body["ProductId"]) or body["ProductId"] not in self.products:
            raise ApiError(400, f"Product {body['ProductId']} not found")
        for name in _SKU_DECIMAL_FIELDS:
            _number(body, name)
        weight = body["PackagedWeightKg"]
        if weight != int(weight) or weight <= 0:
            raise ApiError(
                400, "PackagedWeightKg must be a positive integer (store weight unit, grams by default)"
            )
        return {**body, "PackagedWeightKg": int(weight)}

    def _store_sku(self, sku: dict[str, Json]) -> dict[str, Json]:
        old = self.skus.get(sku["Id"])
        _claim_ref_id(self._sku_by_ref, old and old["RefId"], sku["RefId"], sku["Id"])
        self.skus[sku["Id"]] = sku
        return _sku_view(sku)

    def _drop_eans(self, sku_id: int, eans: list[str]) -> None:
        for ean in eans:
            self.eans[sku_id].remove(ean)
            del self._sku_by_ean[ean]

    def _sku_context(self, sku_id: int) -> dict[str, Json]:
        sku = self.skus[sku_id]
        product = self.products[sku["ProductId"]]
        eans = self.eans.get(sku_id, [])
        return {
            "Id": sku_id,
            "ProductId": sku["ProductId"],
            "NameComplete": f"{product['Name']} {sku['Name']}",
            "ProductName": product["Name"],
            "SkuName": sku["Name"],
            "IsActive": sku["IsActive"],
            "ProductRefId": product["RefId"],
            "BrandId": _str_or_none(product["BrandId"]),
            "AlternateIds": {"Ean": eans[0] if eans else None, "RefId": sku["RefId"]},
            "Images": [
                {"ImageUrl": file["Url"], "ImageName": file["Name"], "FileId": file["Id"]}
                for file in self.sku_files.get(sku_id, [])
            ],
        }

    # --------------------------------------------------------------- Logistics

    def _on_list_warehouses(self, request: Request, body: Json) -> Json:
        return list(self.warehouses.values())

    def _on_get_inventory(self, request: Request, body: Json, sku_id: str) -> Json:
        balance = []
        for warehouse_id, warehouse in self.warehouses.items():
            entry = self.inventory.get((sku_id, warehouse_id))
            if entry is not None:
                balance.append(
                    {
                        "warehouseId": warehouse_id,
                        "warehouseName": warehouse["name"],
                        "totalQuantity": entry["totalQuantity"],
                        "reservedQuantity": entry["reservedQuantity"],
                        "hasUnlimitedQuantity": entry["hasUnlimitedQuantity"],
                        "timeToRefill": None,
                        "dateOfSupplyUtc": None,
                        "leadTime": entry["leadTime"],
                    }
                )
        return {"skuId": sku_id, "balance": balance}

    def _on_set_inventory(self, request: Request, body: Json, sku_id: str, warehouse_id: str) -> Json:
        body = _object({} if body is None else body)
        lead_time = body.get("leadTime") or "00:00:00"  # omitted fields are zeroed, not kept
        if not isinstance(lead_time, str) or not _LEAD_TIME.match(lead_time):
            raise ApiError(400, 'leadTime must look like "d.hh:mm:ss"')
        self._set_balance(
            sku_id,
            warehouse_id,
            body,
            totalQuantity=_quantity(body),
            hasUnlimitedQuantity=body.get("unlimitedQuantity") is True,
            leadTime=lead_time,
        )
        return True

    def _on_set_inventory_quantity(
        self, request: Request, body: Json, sku_id: str, warehouse_id: str
    ) -> Json:
        body = _object(body)
        if not isinstance(body.get("unlimitedQuantity"), bool) or body.get("quantity") is None:
            raise ApiError(400, "quantity and unlimitedQuantity are required")
        self._set_balance(
            sku_id,
            warehouse_id,
            body,
            totalQuantity=_quantity(body),
            hasUnlimitedQuantity=body["unlimitedQuantity"],
        )
        return _empty(204)

    def _set_balance(self, sku_id: str, warehouse_id: str, body: dict[str, Json], **changes: Json) -> None:
        if warehouse_id not in self.warehouses:  # ids are case-sensitive: "CD_SP" is not "cd_sp"
            raise ApiError(400, f"Warehouse {warehouse_id} not found")
        balance_time = body.get("dateUtcOnBalanceSystem")
        if balance_time is not None:
            _parse_time(balance_time, "dateUtcOnBalanceSystem", zone_required=True)
        entry = self.inventory.get((sku_id, warehouse_id)) or {
            "totalQuantity": 0,
            "reservedQuantity": 0,
            "hasUnlimitedQuantity": False,
            "leadTime": "00:00:00",
        }
        self.inventory[(sku_id, warehouse_id)] = {
            **entry,
            **changes,
            "dateUtcOnBalanceSystem": balance_time or _vtex_time(self.now()),
        }

    # ----------------------------------------------------------------- Pricing

    def _on_get_price(self, request: Request, body: Json, sku_id: str) -> Json:
        return self._price(sku_id)

    def _on_replace_price(self, request: Request, body: Json, sku_id: str) -> Json:
        body = _object(body)
        base, cost, markup, list_price = (
            _number(body, f) for f in ("basePrice", "costPrice", "markup", "listPrice")
        )
        if base is not None and cost is not None and markup is not None:
            raise ApiError(400, "Send at most two of basePrice, costPrice and markup")
        if base is None:
            if cost is None or markup is None:
                raise ApiError(400, "basePrice, or costPrice with markup, is required")
            base = (Decimal(cost) * (100 + Decimal(markup)) / 100).quantize(Decimal("0.01"))
        fixed = body.get("fixedPrices") or []  # the whole list is replaced: absent entries are deleted
        if not isinstance(fixed, list):
            raise ApiError(400, "fixedPrices must be an array")
        self.prices[sku_id] = {
            "itemId": sku_id,
            "listPrice": list_price,
            "costPrice": cost,
            "markup": markup,
            "basePrice": base,
            "fixedPrices": [_fixed_price(entry) for entry in fixed],
        }
        return _empty()

    def _on_list_fixed_prices(self, request: Request, body: Json, sku_id: str) -> Json:
        return self._price(sku_id)["fixedPrices"]

    def _on_merge_fixed_prices(self, request: Request, body: Json, sku_id: str) -> Json:
        if not isinstance(body, list):
            raise ApiError(400, "The body must be an array of fixed prices")
        incoming = [_fixed_price(entry) for entry in body]
        record = self.prices.setdefault(
            sku_id,
            {
                "itemId": sku_id,
                "listPrice": None,
                "costPrice": None,
                "markup": None,
                "basePrice": None,
                "fixedPrices": [],
            },
        )
        merged = {_fixed_price_key(price): price for price in record["fixedPrices"]}
        merged.update((_fixed_price_key(price), price) for price in incoming)
        record["fixedPrices"] = list(merged.values())
        return _empty()

    def _price(self, sku_id: str) -> dict[str, Json]:
        if sku_id not in self.prices:
            raise ApiError(404, f"Price for SKU {sku_id} not found")
        return self.prices[sku_id]

    # ------------------------------------------------------------- Orders feed

    def _on_get_feed_config(self, request: Request, body: Json) -> Json:
        config = self._require_feed_config()
        now = self.now()
        self._expire_events(now)
        oldest = min((event.current_change for event in self._feed.values()), default=now)
        return {
            **config,
            "quantity": len(self._feed),
            "approximateAgeOfOldestMessageInSeconds": round((now - oldest).total_seconds(), 1),
        }

    def _on_set_feed_config(self, request: Request, body: Json) -> Json:
        self.feed_config = _feed_config(body)
        return _empty()

    def _on_delete_feed_config(self, request: Request, body: Json) -> Json:
        self._require_feed_config()
        self.feed_config = None  # queued events stay until committed or expired
        return _empty()

    def _on_read_feed(self, request: Request, body: Json) -> Json:
        config = self._require_feed_config()
        maxlot = _int_arg(request, "maxlot", 0)  # missing -> 0 -> refused
        if not 1 <= maxlot <= MAX_FEED_LOT:
            raise ApiError(400, f"maxlot is required and must be 1..{MAX_FEED_LOT}")
        now = self.now()
        self._expire_events(now)
        hide_for = timedelta(seconds=config["queue"]["visibilityTimeoutInSeconds"])
        visible = [event for event in self._feed.values() if event.visible_at <= now]
        if self.feed_shuffle:
            self._rng.shuffle(visible)
        copies = 2 if self.feed_duplicate_delivery else 1
        lot: list[dict[str, Json]] = []
        for event in visible:
            for _ in range(copies):
                if len(lot) == maxlot:
                    return lot
                lot.append(self._deliver(event, now + hide_for))
        return lot

    def _on_commit_feed(self, request: Request, body: Json) -> Json:
        handles = _object(body).get("handles")
        if not isinstance(handles, list) or not all(isinstance(handle, str) for handle in handles):
            raise ApiError(400, "handles must be an array of strings")
        for handle in handles:  # unknown or stale handles are a no-op
            event_id = self._handles.pop(handle, None)
            if event_id is not None:
                self._feed.pop(event_id, None)
        return _empty()

    def _require_feed_config(self) -> dict[str, Json]:
        if self.feed_config is None:
            raise ApiError(404, "Feed configuration not found for this appKey")
        return self.feed_config

    def _feed_wants(self, status: str) -> bool:
        if self.feed_config is None:
            return False
        feed_filter = self.feed_config["filter"]
        return feed_filter["type"] == "FromOrders" or status in feed_filter["status"]

    def _enqueue(self, order: dict[str, Json], last_state: str, last_change: datetime) -> None:
        now = self.now()
        event = _FeedEvent(
            self._hex().upper(), order["orderId"], order["status"], last_state, last_change, now, now
        )
        self._feed[event.event_id] = event

    def _deliver(self, event: _FeedEvent, hidden_until: datetime) -> dict[str, Json]:
        handle = "AQEB" + base64.urlsafe_b64encode(self._rng.randbytes(30)).decode()  # new on every delivery
        self._handles[handle] = event.event_id
        event.visible_at = hidden_until
        return {
            "eventId": event.event_id,
            "handle": handle,
            "domain": event.domain,
            "state": event.state,
            "lastState": event.last_state,
            "orderId": event.order_id,
            "lastChange": _vtex_time(event.last_change, zone="Z"),
            "currentChange": _vtex_time(event.current_change, zone="Z"),
        }

    def _expire_events(self, now: datetime) -> None:
        seconds = (
            self.feed_config["queue"]["messageRetentionPeriodInSeconds"]
            if self.feed_config
            else DEFAULT_RETENTION_S
        )
        oldest_kept = now - timedelta(seconds=seconds)
        for event_id in [e.event_id for e in self._feed.values() if e.current_change <= oldest_kept]:
            del self._feed[event_id]

    # --------------------------------------------------------------------- OMS

    def _on_list_orders(self, request: Request, body: Json) -> Json:
        page, per_page = _int_arg(request, "page", 1), _int_arg(request, "per_page", DEFAULT_LIST_PER_PAGE)
        if not 1 <= page <= MAX_LIST_PAGE or not 1 <= per_page <= MAX_LIST_PER_PAGE:
            raise ApiError(400, f"page must be 1..{MAX_LIST_PAGE} and per_page 1..{MAX_LIST_PER_PAGE}")
        statuses = {status for status in request.args.get("f_status", "").split(",") if status}
        start, end = _creation_window(request.args.get("f_creationDate"))
        indexed_until = min(end, self.now() - timedelta(seconds=self.list_index_delay_s))
        found = [
            order
            for order in self.orders.values()
            if (not statuses or order["status"] in statuses) and start <= _created(order) <= indexed_until
        ]
        found.sort(
            key=_created, reverse=request.args.get("orderBy", "creationDate,desc") != "creationDate,asc"
        )
        shown = found[(page - 1) * per_page : page * per_page]
        return {
            "list": [_order_summary(order) for order in shown],
            "facets": [],
            "paging": {
                "total": len(found),
                "pages": math.ceil(len(found) / per_page),
                "currentPage": page,
                "perPage": per_page,
            },
            "stats": {
                "stats": {
                    "totalValue": {"Count": len(found), "Sum": sum(order["value"] for order in found)},
                    "totalItems": {"Count": len(found), "Sum": sum(_item_count(order) for order in found)},
                }
            },
        }

    def _on_get_order(self, request: Request, body: Json, order_id: str) -> Json:
        return self._order(order_id)

    def _on_start_handling(self, request: Request, body: Json, order_id: str) -> Json:
        order = self._order(order_id)
        if order["status"] != "ready-for-handling":
            raise ApiError(
                409, "Order status should be ready-for-handling to perform this action", code="OMS003"
            )
        self._change_status(order, "handling")
        return _empty(204)

    def _on_add_invoice(self, request: Request, body: Json, order_id: str) -> Json:
        order = self._order(order_id)
        package = _invoice_package(body, order)
        packages = order["packageAttachment"]["packages"]
        if any(existing["invoiceNumber"] == package["invoiceNumber"] for existing in packages):
            return self._receipt(order)  # a re-sent number only refreshes the receipt
        if order["status"] == "canceled":
            raise ApiError(400, "A canceled order cannot be invoiced")
        if package["type"] == "Input" and order["status"] != "invoiced":
            raise ApiError(400, "An Input (return) invoice needs a fully invoiced order")
        packages.append(package)
        invoiced = sum(existing["invoiceValue"] for existing in packages if existing["type"] == "Output")
        if package["type"] == "Output" and invoiced == order["value"]:
            self._change_status(order, "invoiced")
        return self._receipt(order)

    def _on_update_tracking(self, request: Request, body: Json, order_id: str, invoice_number: str) -> Json:
        order = self._order(order_id)
        package = self._package(order, invoice_number)
        body = _object(body)
        missing = [name for name in _TRACKING_FIELDS if name not in body]
        if missing or not isinstance(body["trackingNumber"], str):
            raise ApiError(
                400, "trackingNumber (a string), trackingUrl, courier and dispatchedDate are required"
            )
        package.update({name: body[name] for name in _TRACKING_FIELDS})
        return self._receipt(order)

    def _on_add_tracking_events(
        self, request: Request, body: Json, order_id: str, invoice_number: str
    ) -> Json:
        order = self._order(order_id)
        package = self._package(order, invoice_number)
        if not package["trackingNumber"]:
            raise ApiError(400, "The invoice has no tracking number yet")
        body = _object(body)
        events = body.get("events")
        if (
            not isinstance(body.get("isDelivered"), bool)
            or "deliveredDate" not in body
            or not isinstance(events, list)
        ):
            raise ApiError(400, "isDelivered, deliveredDate and events are required")
        for event in events:
            _require(_object(event, "Each tracking event"), "city", "state", "description", "date")
        package["courierStatus"] = {
            "finished": body["isDelivered"],
            "deliveredDate": body["deliveredDate"],
            "data": events,
        }
        return self._receipt(order)

    def _on_cancel_order(self, request: Request, body: Json, order_id: str) -> Json:
        order = self._order(order_id)
        if order["packageAttachment"]["packages"] or order["status"] == "invoiced":
            raise ApiError(400, "An invoiced or partially invoiced order cannot be canceled")
        if order["status"] != "canceled":
            reason = _object({} if body is None else body).get("reason")
            order["cancellationData"] = {"Reason": reason, "CancellationDate": _vtex_time(self.now())}
            self._change_status(order, "canceled")
        return self._receipt(order)

    def _order(self, order_id: str) -> dict[str, Json]:
        if order_id.startswith("seq"):
            order = next((o for o in self.orders.values() if o["sequence"] == order_id[3:]), None)
        else:
            order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, f"Order {order_id} not found")
        return order

    def _package(self, order: dict[str, Json], invoice_number: str) -> dict[str, Json]:
        for package in order["packageAttachment"]["packages"]:
            if package["invoiceNumber"] == invoice_number:
                return package
        raise ApiError(404, f"Invoice {invoice_number} not found on order {order['orderId']}")

    def _receipt(self, order: dict[str, Json]) -> dict[str, Json]:
        return {"date": _vtex_time(self.now()), "orderId": order["orderId"], "receipt": self._hex()}

    def _change_status(self, order: dict[str, Json], status: str) -> None:
        previous, previous_change = order["status"], datetime.fromisoformat(order["lastChange"])
        stamp = _vtex_time(self.now())
        order["status"] = status
        order["lastChange"] = stamp
        if status == "invoiced":
            order["invoicedDate"] = stamp
        if self._feed_wants(status):
            self._enqueue(order, previous, previous_change)

    def _order_item(self, line: OrderLine) -> dict[str, Json]:
        sku_id, ref_id, name, quantity, price = line
        catalog_id = int(sku_id) if str(sku_id).isdigit() else -1  # -1: matches no SKU
        sku = self.skus.get(catalog_id)  # a line may name a SKU the fake's catalog lacks
        eans = self.eans.get(catalog_id, [])
        return {
            "uniqueId": self._hex().upper(),
            "id": str(sku_id),
            "productId": str(sku["ProductId"]) if sku else "",
            "ean": eans[0] if eans else None,
            "refId": ref_id,
            "name": name,
            "quantity": quantity,
            "seller": "1",
            "price": price,
            "listPrice": price,
            "sellingPrice": price,
            "priceDefinition": {
                "calculatedSellingPrice": price,
                "total": price * quantity,
                "sellingPrices": [{"value": price, "quantity": quantity}],
            },
            "measurementUnit": "un",
            "unitMultiplier": Decimal(1),  # VTEX sends 1.0
            "tax": 0,
        }


# ---------------------------------------------------------------- JSON and errors


def _read_json(request: Request) -> Json:
    return read_json(request, ApiError(400, "The request body is not valid JSON"))


def _error_response(path: str, error: ApiError) -> Response:
    if error.plain_text:
        response = Response(error.message, error.status, mimetype="text/plain")
    elif path.startswith(_OMS_PREFIXES):
        envelope = {"error": {"code": error.code, "message": error.message, "exception": None}}
        response = json_response(envelope, error.status)
    else:  # Catalog, Logistics and Pricing answer a bare JSON string
        response = json_response(error.message, error.status)
    response.headers.update(error.headers)
    return response


def _empty(status: int = 200) -> Response:
    return Response(status=status)


# ------------------------------------------------------------------ validation


def _object(value: Json, what: str = "The request body") -> dict[str, Json]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return value


def _require(body: dict[str, Json], *fields: str) -> None:
    missing = [name for name in fields if body.get(name) is None or body.get(name) == ""]
    if missing:
        raise ApiError(400, f"Required field(s) missing: {', '.join(missing)}")


def _check_lengths(body: dict[str, Json], limits: Mapping[str, int]) -> None:
    for name, limit in limits.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ApiError(400, f"{name} must be a string of at most {limit} characters")


def _is_int(value: Json) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Json], name: str) -> int | Decimal | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | Decimal)):
        raise ApiError(400, f"{name} must be a number")
    return value


def _quantity(body: dict[str, Json]) -> int:
    quantity = body.get("quantity")
    if quantity is None:
        return 0
    if not _is_int(quantity) or quantity < 0:
        raise ApiError(400, "quantity must be a non-negative integer")
    return quantity


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None


def _parse_time(value: Json, name: str, *, zone_required: bool) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or (zone_required and moment.tzinfo is None):
        zone = " with a zone offset" if zone_required else ""
        raise ApiError(400, f"{name} must be an ISO-8601 date-time{zone}")
    return moment


def _cents(value: Json, name: str) -> int:
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ApiError(400, f'{name} must be integer cents, e.g. "10890"')


def _fill(body: dict[str, Json], fields: Mapping[str, Json], *, replacing: bool) -> dict[str, Json]:
    """Every field of `fields` from `body`. An omitted, empty or null field gets the create
    default, or, when `replacing` (PUT), is cleared: null, or false for booleans."""
    filled = {}
    for name, default in fields.items():
        value = body.get(name)
        if value is None or value == "":
            value = (False if isinstance(default, bool) else None) if replacing else default
        filled[name] = list(value) if isinstance(value, tuple | list) else value
    return filled


def _claim_ref_id(index: dict[str, int], old_ref: str | None, new_ref: str | None, owner: int) -> None:
    """Keep a RefId -> id index in step; a RefId belongs to one object (409 otherwise)."""
    if new_ref and index.get(new_ref, owner) != owner:
        raise ApiError(409, f"RefId {new_ref} already exists", plain_text=True)
    if old_ref and index.get(old_ref) == owner:
        del index[old_ref]
    if new_ref:
        index[new_ref] = owner


def _sku_view(sku: dict[str, Json]) -> dict[str, Json]:
    """The SKU as VTEX echoes it: dimension-like numbers carry a fraction (250 -> 250.0)."""
    return {**sku, **{name: Decimal(sku[name]) for name in _SKU_DECIMAL_FIELDS if sku[name] is not None}}


def _fixed_price(entry: Json) -> dict[str, Json]:
    entry = _object(entry, "Each fixed price")
    _require(entry, "tradePolicyId", "value", "minQuantity")
    if not isinstance(entry["tradePolicyId"], str):
        raise ApiError(400, 'tradePolicyId must be a string, e.g. "1"')
    if not _is_int(entry["minQuantity"]) or entry["minQuantity"] < 1:
        raise ApiError(400, "minQuantity must be an integer >= 1")
    price = {
        "tradePolicyId": entry["tradePolicyId"],
        "value": _number(entry, "value"),
        "listPrice": _number(entry, "listPrice"),
        "minQuantity": entry["minQuantity"],
    }
    window = entry.get("dateRange")
    if window is not None:
        window = _object(window, "dateRange")
        start = _parse_time(window.get("from"), "dateRange.from", zone_required=True)
        end = _parse_time(window.get("to"), "dateRange.to", zone_required=True)
        if end <= start:
            raise ApiError(400, "dateRange.to must be later than dateRange.from")
        price["dateRange"] = {"from": window["from"], "to": window["to"]}
    return price


def _fixed_price_key(price: dict[str, Json]) -> tuple[Any, ...]:
    """A fixed price's activation conditions: PATCH replaces the entry with the same ones."""
    window = price.get("dateRange")
    times = window and (datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"]))
    return price["tradePolicyId"], price["minQuantity"], times


def _feed_config(body: Json) -> dict[str, Json]:
    body = _object(body)
    feed_filter, queue = body.get("filter"), body.get("queue")
    if not isinstance(feed_filter, dict) or not isinstance(queue, dict):
        raise ApiError(400, "filter and queue are required")
    if "status" in feed_filter and ("expression" in feed_filter or "disableSingleFire" in feed_filter):
        raise ApiError(409, "A filter takes either status or expression/disableSingleFire, not both")
    kind = feed_filter.get("type")
    if kind == "FromWorkflow":
        statuses = feed_filter.get("status")
        if not isinstance(statuses, list) or not all(isinstance(status, str) for status in statuses):
            raise ApiError(400, "A FromWorkflow filter needs a status array")
    elif kind == "FromOrders":
        if not isinstance(feed_filter.get("expression"), str):
            raise ApiError(400, "A FromOrders filter needs an expression")
    else:
        raise ApiError(400, "filter.type must be FromWorkflow or FromOrders")
    visibility = queue.get("visibilityTimeoutInSeconds", DEFAULT_VISIBILITY_TIMEOUT_S)
    retention = queue.get(
        "MessageRetentionPeriodInSeconds", queue.get("messageRetentionPeriodInSeconds", DEFAULT_RETENTION_S)
    )
    if not (_is_int(visibility) and _is_int(retention) and visibility > 0 and retention > 0):
        raise ApiError(
            400, "visibilityTimeoutInSeconds and MessageRetentionPeriodInSeconds must be positive integers"
        )
    return {
        "filter": feed_filter,
        "queue": {"visibilityTimeoutInSeconds": visibility, "messageRetentionPeriodInSeconds": retention},
    }


def _invoice_package(body: Json, order: dict[str, Json]) -> dict[str, Json]:
    """A validated invoice notification as it is stored in packageAttachment.packages."""
    body = _object(body)
    _require(body, "type", "invoiceNumber", "invoiceValue", "issuanceDate", "items")
    if body["type"] not in ("Output", "Input"):
        raise ApiError(400, "type must be Output or Input")
    number = body["invoiceNumber"]
    if not isinstance(number, str) or "/" in number:
        raise ApiError(400, "invoiceNumber must be a string without '/'")
    value = _cents(body["invoiceValue"], "invoiceValue")
    if value <= 0:
        raise ApiError(400, "invoiceValue must be greater than zero")
    _parse_time(body["issuanceDate"], "issuanceDate", zone_required=False)
    if "courier" in body and body["courier"] is None:
        raise ApiError(400, 'courier may not be null; send "" when unknown')
    items = body["items"]
    if not isinstance(items, list) or not items:
        raise ApiError(400, "items must be a non-empty array")
    order_skus = {item["id"] for item in order["items"]}
    return {
        "type": body["type"],
        "invoiceNumber": number,
        "invoiceValue": value,
        "issuanceDate": body["issuanceDate"],
        "invoiceKey": body.get("invoiceKey"),
        "invoiceUrl": body.get("invoiceUrl"),
        "embeddedInvoice": body.get("embeddedInvoice"),
        "courier": body.get("courier", ""),
        "trackingNumber": body.get("trackingNumber"),
        "trackingUrl": body.get("trackingUrl"),
        "dispatchedDate": body.get("dispatchedDate"),
        "items": [_invoice_item(item, order_skus) for item in items],
        "courierStatus": None,
        "cfop": None,
        "volumes": None,
        "restitutions": {},
    }


def _invoice_item(item: Json, order_skus: set[str]) -> dict[str, Json]:
    item = _object(item, "Each invoice item")
    _require(item, "id", "price", "quantity")
    sku_id = str(item["id"])
    if sku_id not in order_skus:
        raise ApiError(400, f"Item {sku_id} is not in this order")
    if not _is_int(item["price"]) or item["price"] < 0:
        raise ApiError(400, "item price must be integer cents (unit price)")
    if not _is_int(item["quantity"]) or item["quantity"] < 1:
        raise ApiError(400, "item quantity must be an integer >= 1")
    return {
        "id": sku_id,
        "price": item["price"],
        "quantity": item["quantity"],
        "description": item.get("description"),
    }


def _creation_window(value: str | None) -> tuple[datetime, datetime]:
    """`creationDate:[A TO B]` as two datetimes; no filter is the widest window."""
    if not value:
        return datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    match = _CREATION_WINDOW.match(value)
    if match is None:
        raise ApiError(400, "f_creationDate must look like creationDate:[<ISO from> TO <ISO to>]")
    return (
        _parse_time(match[1], "f_creationDate", zone_required=True),
        _parse_time(match[2], "f_creationDate", zone_required=True),
    )


# ---------------------------------------------------------------------- orders


def _order_json(
    order_id: str,
    items: list[dict[str, Json]],
    *,
    shipping_cents: int,
    status: str,
    created: datetime,
    customer: Mapping[str, Json],
    address: Mapping[str, Json],
    warehouse_id: str,
    profile_id: str,
) -> dict[str, Json]:
    group = order_id.rsplit("-", 1)[0]
    items_total = sum(item["price"] * item["quantity"] for item in items)
    value = items_total + shipping_cents
    stamp = _vtex_time(created)
    return {
        "orderId": order_id,
        "sequence": group[-6:],
        "orderGroup": group,
        "marketplaceOrderId": "",
        "origin": "Marketplace",
        "affiliateId": "",
        "salesChannel": "1",
        "status": status,
        "value": value,
        "creationDate": stamp,
        "lastChange": stamp,
        "authorizedDate": stamp,
        "invoicedDate": None,
        "totals": [
            {"id": "Items", "name": "Total dos Itens", "value": items_total},
            {"id": "Discounts", "name": "Total dos Descontos", "value": 0},
            {"id": "Shipping", "name": "Total do Frete", "value": shipping_cents},
            {"id": "Tax", "name": "Total da Taxa", "value": 0},
        ],
        "items": items,
        "clientProfileData": {
            "email": f"{profile_id}@ct.vtex.com.br",  # VTEX masks the real address
            "firstName": "Ana",
            "lastName": "Souza",
            "documentType": "cpf",
            "document": "12345678909",
            "phone": "+5511988887777",
            "isCorporate": False,
            "corporateName": None,
            "corporateDocument": None,
            "stateInscription": None,
            "userProfileId": profile_id,
            **customer,
        },
        "shippingData": {
            "address": {
                "receiverName": "Ana Souza",
                "postalCode": "01310-100",
                "city": "São Paulo",
                "state": "SP",
                "country": "BRA",
                "street": "Avenida Paulista",
                "number": "1000",
                "neighborhood": "Bela Vista",
                "complement": "ap 12",
                "reference": None,
                **address,
            },
            "logisticsInfo": [
                {
                    "itemIndex": index,
                    "selectedSla": "Normal",
                    "price": shipping_cents if index == 0 else 0,
                    "shippingEstimate": "5bd",
                    "deliveryCompany": "Transportadora X",
                    "deliveryIds": [
                        {
                            "courierName": "Transportadora X",
                            "dockId": "doca1",
                            "warehouseId": warehouse_id,
                            "quantity": item["quantity"],
                        }
                    ],
                }
                for index, item in enumerate(items)
            ],
        },
        "paymentData": {
            "transactions": [
                {
                    "payments": [
                        {
                            "paymentSystemName": "Visa",
                            "value": value,
                            "installments": 1,
                            "group": "creditCard",
                        }
                    ]
                }
            ]
        },
        "packageAttachment": {"packages": []},
        "cancellationData": None,
    }


def _order_summary(order: dict[str, Json]) -> dict[str, Json]:
    """An entry of List orders (which never includes items)."""
    customer = order["clientProfileData"]
    return {
        "orderId": order["orderId"],
        "creationDate": order["creationDate"],
        "clientName": f"{customer['firstName']} {customer['lastName']}",
        "items": None,
        "totalValue": order["value"],
        "paymentNames": "Visa",
        "status": order["status"],
        "statusDescription": order["status"],
        "marketPlaceOrderId": order["marketplaceOrderId"],
        "sequence": order["sequence"],
        "salesChannel": order["salesChannel"],
        "affiliateId": order["affiliateId"],
        "origin": order["origin"],
        "workflowInErrorState": False,
        "workflowInRetry": False,
        "lastMessageUnread": None,
        "ShippingEstimatedDate": None,
        "ShippingEstimatedDateMax": None,
        "ShippingEstimatedDateMin": None,
        "orderIsComplete": True,
        "listId": None,
        "listType": None,
        "authorizedDate": order["authorizedDate"],
        "callCenterOperatorName": None,
        "totalItems": _item_count(order),
        "currencyCode": "BRL",
    }


def _created(order: dict[str, Json]) -> datetime:
    return datetime.fromisoformat(order["creationDate"])


def _item_count(order: dict[str, Json]) -> int:
    return sum(item["quantity"] for item in order["items"])


# ------------------------------------------------------------------------ misc


def _vtex_time(moment: datetime, zone: str = "+00:00") -> str:
    """VTEX's 7-digit fractions in UTC: 2025-03-10T14:32:07.9120000+00:00 (zone "Z" or "" too)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0" + zone


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _str_or_none(value: Json) -> str | None:
    return None if value is None else str(value)
