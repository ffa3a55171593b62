"""The fake VTEX API: the behaviour the VTEX channel relies on (reference §7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from syncctl.sandbox import FakeVtex, serve
from syncctl.sandbox.faults import DROPPED

START = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
AUTH = {"X-VTEX-API-AppKey": "vtexappkey-demo", "X-VTEX-API-AppToken": "demo-token"}
PRICES = "/demostore/pricing/prices"
FEED_STATUSES = ["ready-for-handling", "handling", "invoiced", "cancellation-requested", "canceled"]
SHIRT = (1070, "ERP-000123-P", "Camiseta Básica P", 1, 9990)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fake(sleeps: list[float]) -> FakeVtex:
    return FakeVtex(clock=lambda: START, sleep=sleeps.append)


@pytest.fixture
def client(fake: FakeVtex) -> Iterator[httpx.Client]:
    transport = httpx.WSGITransport(app=fake)
    with httpx.Client(transport=transport, base_url="http://vtex.test", headers=AUTH) as client:
        yield client


def decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def create_product(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"Name": "Camiseta Básica", "CategoryId": 12, "BrandId": 2000004, "RefId": "ERP-000123", **fields}
    response = client.post("/api/catalog/pvt/product", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sku_body(product_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "ProductId": product_id,
        "Name": "P",
        "RefId": "ERP-000123-P",
        "IsActive": False,
        "PackagedHeight": 3,
        "PackagedLength": 30,
        "PackagedWidth": 25,
        "PackagedWeightKg": 250,
        **fields,
    }


def create_sku(client: httpx.Client, product_id: int, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/catalog/pvt/stockkeepingunit", json=sku_body(product_id, **fields))
    assert response.status_code == 200, response.text
    return response.json()


def invoice_body(number: str = "000123", value: int = 10890, **fields: Any) -> dict[str, Any]:
    return {
        "type": "Output",
        "invoiceNumber": number,
        "invoiceValue": str(value),
        "issuanceDate": "2025-03-11T09:15:00-03:00",
        "invoiceKey": "35250312345678000199550010000001231000001234",
        "courier": "",
        "trackingNumber": "",
        "items": [{"id": "1070", "price": 9990, "quantity": 1}],
        **fields,
    }


# ---------------------------------------------------------------- auth


def test_missing_or_wrong_credentials_get_401_in_each_modules_error_style(client: httpx.Client) -> None:
    catalog = client.get("/api/catalog/pvt/product/1", headers={"X-VTEX-API-AppToken": "wrong"})
    oms = client.get("/api/oms/pvt/orders/1-01", headers={"X-VTEX-API-AppKey": ""})

    assert catalog.status_code == 401 and isinstance(catalog.json(), str)
    assert oms.status_code == 401
    assert oms.json()["error"]["code"] == "1" and oms.json()["error"]["exception"] is None


def test_auth_header_names_are_case_insensitive(fake: FakeVtex) -> None:
    headers = {"x-vtex-api-appkey": "vtexappkey-demo", "X-VTEX-API-APPTOKEN": "demo-token"}
    with httpx.Client(transport=httpx.WSGITransport(app=fake), base_url="http://vtex.test") as client:
        assert client.get("/api/logistics/pvt/configuration/warehouses", headers=headers).status_code == 200


def test_a_denied_route_answers_403_and_others_still_work(fake: FakeVtex, client: httpx.Client) -> None:
    fake.deny("list_warehouses")

    assert client.get("/api/logistics/pvt/configuration/warehouses").status_code == 403
    assert client.get("/api/logistics/pvt/inventory/skus/1").status_code == 200
    with pytest.raises(ValueError):
        fake.deny("no_such_route")


# -------------------------------------------------------------- catalog


def test_productgetbyrefid_answers_200_null_for_an_unknown_refid(client: httpx.Client) -> None:
    response = client.get("/api/catalog_system/pvt/products/productgetbyrefid/NOPE")

    assert response.status_code == 200 and response.json() is None


def test_product_create_by_path_and_brand_name_creates_them_and_refid_is_unique(
    fake: FakeVtex, client: httpx.Client
) -> None:
    product = create_product(
        client, CategoryId=None, BrandId=None, CategoryPath="Roupas/Camisetas", BrandName="Acme"
    )
    duplicate = client.post(
        "/api/catalog/pvt/product",
        json={"Name": "Other", "CategoryId": 1, "BrandId": 1, "RefId": "ERP-000123"},
    )
    found = client.get("/api/catalog_system/pvt/products/productgetbyrefid/ERP-000123").json()

    assert fake.categories == {"Roupas": 1, "Roupas/Camisetas": 2}
    assert (product["CategoryId"], product["DepartmentId"]) == (2, 1)
    assert product["BrandId"] == fake.brands["Acme"]
    assert product["LinkId"] == "camiseta-basica"
    assert duplicate.status_code == 409 and duplicate.headers["content-type"].startswith("text/plain")
    assert found["Id"] == product["Id"]


def test_product_create_without_category_or_brand_is_400(client: httpx.Client) -> None:
    response = client.post("/api/catalog/pvt/product", json={"Name": "X", "CategoryId": 1})

    assert response.status_code == 400


def test_product_put_is_a_full_replacement(client: httpx.Client) -> None:
    product = create_product(client, Description="Algodão", IsActive=True, IsVisible=True)

    response = client.put(
        f"/api/catalog/pvt/product/{product['Id']}",
        json={"Name": "Camiseta Nova", "CategoryId": 12, "BrandId": 2000004, "RefId": "ERP-000123"},
    )
    stored = client.get(f"/api/catalog/pvt/product/{product['Id']}").json()

    assert response.status_code == 200
    assert stored["Name"] == "Camiseta Nova"
    assert stored["Description"] is None and stored["LinkId"] is None
    assert stored["IsActive"] is False and stored["IsVisible"] is False


def test_product_put_needs_name_category_and_brand(client: httpx.Client) -> None:
    product = create_product(client)

    response = client.put(f"/api/catalog/pvt/product/{product['Id']}", json={"Name": "X", "BrandId": 1})

    assert response.status_code == 400 and "CategoryId" in response.json()


def test_linking_a_trade_policy(fake: FakeVtex, client: httpx.Client) -> None:
    product = create_product(client)

    assert client.post(f"/api/catalog/pvt/product/{product['Id']}/salespolicy/1").status_code == 200
    assert client.post("/api/catalog/pvt/product/999/salespolicy/1").status_code == 404
    assert fake.sales_policies == {product["Id"]: {1}}


@pytest.mark.parametrize(
    "override",
    [
        {"IsActive": True},
        {"PackagedWeightKg": None},
        {"PackagedHeight": None},
        {"PackagedWeightKg": Decimal("0.25")},
    ],
    ids=["active-on-create", "no-weight", "no-height", "fractional-weight"],
)
def test_sku_create_refusals(client: httpx.Client, override: dict[str, Any]) -> None:
    product = create_product(client)
    body = json.loads(json.dumps(sku_body(product["Id"], **override), default=float))

    response = client.post("/api/catalog/pvt/stockkeepingunit", json=body)

    assert response.status_code == 400


def test_sku_weight_is_stored_as_an_int_and_echoed_with_a_fraction(
    fake: FakeVtex, client: httpx.Client
) -> None:
    sku = create_sku(client, create_product(client)["Id"])

    assert fake.skus[sku["Id"]]["PackagedWeightKg"] == 250
    assert '"PackagedWeightKg": 250.0' in client.get(f"/api/catalog/pvt/stockkeepingunit/{sku['Id']}").text
    assert sku["IsActive"] is False and sku["CreationDate"]


def test_sku_put_without_isactive_deactivates_it(client: httpx.Client) -> None:
    product = create_product(client)
    sku = create_sku(client, product["Id"], ManufacturerCode="M-1")
    url = f"/api/catalog/pvt/stockkeepingunit/{sku['Id']}"
    client.put(url, json=sku_body(product["Id"], IsActive=True))

    response = client.put(url, json={k: v for k, v in sku_body(product["Id"]).items() if k != "IsActive"})

    assert response.status_code == 200
    assert response.json()["IsActive"] is False
    assert response.json()["ManufacturerCode"] is None  # omitted in the PUT -> cleared
    assert response.json()["CreationDate"] == sku["CreationDate"]


def test_refid_lookups(client: httpx.Client) -> None:
    sku = create_sku(client, create_product(client)["Id"])
    bulk = "/api/catalog_system/pub/sku/stockkeepingunitidsbyrefids"

    one = client.get("/api/catalog_system/pvt/sku/stockkeepingunitidbyrefid/ERP-000123-P")
    missing = client.get("/api/catalog_system/pvt/sku/stockkeepingunitidbyrefid/NOPE")
    many = client.post(bulk, json=["ERP-000123-P", "NOPE"])
    duplicated = client.post(bulk, json=["ERP-000123-P", "ERP-000123-P"])
    full = client.get("/api/catalog/pvt/stockkeepingunit", params={"RefId": "ERP-000123-P"})

    assert one.json() == str(sku["Id"])
    assert missing.status_code == 404
    assert many.json() == {"ERP-000123-P": str(sku["Id"]), "NOPE": None}
    assert duplicated.status_code == 500
    assert full.json()["Id"] == sku["Id"]


def test_ean_flow_and_lookup_by_ean_sees_only_active_skus(client: httpx.Client) -> None:
    product = create_product(client)
    sku = create_sku(client, product["Id"])
    base = f"/api/catalog/pvt/stockkeepingunit/{sku['Id']}/ean"
    by_ean = "/api/catalog_system/pvt/sku/stockkeepingunitbyean/7891234567895"

    assert client.post(f"{base}/7891234567895").status_code == 200
    assert client.get(base).json() == ["7891234567895"]
    assert client.get(by_ean).status_code == 404  # inactive SKU
    client.put(f"/api/catalog/pvt/stockkeepingunit/{sku['Id']}", json=sku_body(product["Id"], IsActive=True))
    assert client.get(by_ean).json()["AlternateIds"] == {"Ean": "7891234567895", "RefId": "ERP-000123-P"}

    client.post(f"{base}/7890000000001")
    assert client.delete(f"{base}/7891234567895").status_code == 200
    assert client.get(base).json() == ["7890000000001"]
    assert client.delete(base).status_code == 200
    assert client.get(base).json() == []
    assert client.get(by_ean).status_code == 404


def test_an_image_activates_a_sku_that_asked_for_it(client: httpx.Client) -> None:
    sku = create_sku(client, create_product(client)["Id"], ActivateIfPossible=True)
    files = f"/api/catalog/pvt/stockkeepingunit/{sku['Id']}/file"

    bad = client.post(files, json={"Name": "x", "Url": "https://cdn.test/x.webp"})
    good = client.post(files, json={"IsMain": True, "Name": "x", "Url": "https://cdn.test/x.jpg"})

    assert bad.status_code == 400
    assert good.status_code == 200 and good.json()[0]["IsMain"] is True
    assert client.get(f"/api/catalog/pvt/stockkeepingunit/{sku['Id']}").json()["IsActive"] is True


def test_sku_ids_are_paged(client: httpx.Client) -> None:
    product = create_product(client)
    ids = [create_sku(client, product["Id"], RefId=f"R{n}")["Id"] for n in range(3)]
    url = "/api/catalog_system/pvt/sku/stockkeepingunitids"

    assert client.get(url, params={"page": 1, "pagesize": 2}).json() == ids[:2]
    assert client.get(url, params={"page": 2, "pagesize": 2}).json() == ids[2:]
    assert client.get(url, params={"page": 1, "pagesize": 1001}).status_code == 400


# ------------------------------------------------------------ logistics


def test_warehouses_default_to_one(fake: FakeVtex, client: httpx.Client) -> None:
    fake.add_warehouse("cd_sp", "CD São Paulo")

    assert [w["id"] for w in client.get("/api/logistics/pvt/configuration/warehouses").json()] == [
        "1_1",
        "cd_sp",
    ]


def test_inventory_put_zeroes_omitted_fields(fake: FakeVtex, client: httpx.Client) -> None:
    url = "/api/logistics/pvt/inventory/skus/1070/warehouses/1_1"
    first = client.put(url, json={"quantity": 37, "unlimitedQuantity": True, "leadTime": "1.00:00:00"})

    second = client.put(url, json={})

    assert first.status_code == 200 and first.json() is True
    assert second.json() is True
    balance = client.get("/api/logistics/pvt/inventory/skus/1070").json()["balance"]
    assert len(balance) == 1
    assert balance[0]["totalQuantity"] == 0
    assert balance[0]["hasUnlimitedQuantity"] is False
    assert balance[0]["leadTime"] == "00:00:00"
    assert fake.inventory[("1070", "1_1")]["totalQuantity"] == 0


def test_inventory_warehouse_ids_are_case_sensitive(client: httpx.Client) -> None:
    response = client.put(
        "/api/logistics/pvt/inventory/skus/1070/warehouses/1_1".upper(), json={"quantity": 1}
    )

    assert response.status_code == 404  # the path itself differs in case
    assert (
        client.put(
            "/api/logistics/pvt/inventory/skus/1070/warehouses/CD_SP", json={"quantity": 1}
        ).status_code
        == 400
    )


def test_inventory_patch_quantity_keeps_lead_time(client: httpx.Client) -> None:
    url = "/api/logistics/pvt/inventory/skus/1070/warehouses/1_1"
    client.put(url, json={"quantity": 5, "unlimitedQuantity": False, "leadTime": "2.00:00:00"})

    response = client.patch(f"{url}/quantity", json={"quantity": 9, "unlimitedQuantity": False})
    missing = client.patch(f"{url}/quantity", json={"quantity": 9})

    assert response.status_code == 204
    assert missing.status_code == 400
    balance = client.get("/api/logistics/pvt/inventory/skus/1070").json()["balance"][0]
    assert (balance["totalQuantity"], balance["leadTime"]) == (9, "2.00:00:00")


# -------------------------------------------------------------- pricing


def fixed(value: str, min_quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "tradePolicyId": "1",
        "value": Decimal(value),
        "listPrice": Decimal("129.9"),
        "minQuantity": min_quantity,
        **extra,
    }


def send(client: httpx.Client, method: str, url: str, body: Any) -> httpx.Response:
    """Send `body` with Decimals as JSON numbers."""
    content = json.dumps(body, default=lambda value: float(value))
    return client.request(method, url, content=content, headers={"Content-Type": "application/json"})


BLACK_FRIDAY = {"from": "2025-11-28T00:00:00-03:00", "to": "2025-11-30T23:59:59-03:00"}


def test_price_put_replaces_the_whole_fixed_price_list(fake: FakeVtex, client: httpx.Client) -> None:
    url = f"{PRICES}/1070"
    send(
        client,
        "PUT",
        url,
        {
            "basePrice": Decimal("99.9"),
            "fixedPrices": [fixed("79.9", dateRange=BLACK_FRIDAY), fixed("94.9", 3)],
        },
    )

    response = send(
        client,
        "PUT",
        url,
        {"basePrice": Decimal("89.9"), "listPrice": Decimal("129.9"), "fixedPrices": [fixed("94.9", 3)]},
    )
    stored = client.get(url)

    assert response.status_code == 200
    assert '"basePrice": 89.9' in stored.text
    assert decimal_json(stored)["fixedPrices"] == [
        {"tradePolicyId": "1", "value": Decimal("94.9"), "listPrice": Decimal("129.9"), "minQuantity": 3}
    ]
    assert fake.prices["1070"]["basePrice"] == Decimal("89.9")
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(stored.headers)


def test_price_put_refusals_and_what_vtex_lets_through(client: httpx.Client) -> None:
    url = f"{PRICES}/1070"
    backwards = {"from": BLACK_FRIDAY["to"], "to": BLACK_FRIDAY["from"]}

    all_three = send(client, "PUT", url, {"basePrice": 10, "costPrice": 5, "markup": 100})
    bad_range = send(client, "PUT", url, {"basePrice": 10, "fixedPrices": [fixed("9", dateRange=backwards)]})
    no_zone = send(
        client,
        "PUT",
        url,
        {
            "basePrice": 10,
            "fixedPrices": [
                fixed("9", dateRange={"from": "2025-11-28T00:00:00", "to": "2025-11-29T00:00:00"})
            ],
        },
    )
    negative = send(client, "PUT", url, {"basePrice": Decimal("-1.5")})
    from_markup = send(client, "PUT", f"{PRICES}/2", {"costPrice": Decimal(40), "markup": 150})

    assert [r.status_code for r in (all_three, bad_range, no_zone)] == [400, 400, 400]
    assert negative.status_code == 200  # like VTEX: no guard against negative prices
    assert from_markup.status_code == 200
    assert decimal_json(client.get(f"{PRICES}/2"))["basePrice"] == Decimal(100)


def test_patch_fixed_merges_by_policy_quantity_and_range(client: httpx.Client) -> None:
    url = f"{PRICES}/1070"
    send(
        client,
        "PUT",
        url,
        {"basePrice": 100, "fixedPrices": [fixed("79.9", dateRange=BLACK_FRIDAY), fixed("94.9", 3)]},
    )
    same_window_other_offset = {"from": "2025-11-28T03:00:00Z", "to": "2025-12-01T02:59:59Z"}

    response = send(
        client, "PATCH", f"{url}/fixed", [fixed("69.9", dateRange=same_window_other_offset), fixed("90", 5)]
    )
    values = sorted(price["value"] for price in decimal_json(client.get(f"{url}/fixed")))

    assert response.status_code == 200
    assert values == [Decimal("69.9"), Decimal(90), Decimal("94.9")]


def test_unknown_price_is_404_and_the_api_prefix_is_served_too(client: httpx.Client) -> None:
    assert client.get(f"{PRICES}/999").status_code == 404
    send(client, "PUT", "/api/pricing/prices/999", {"basePrice": 1})
    assert client.get(f"{PRICES}/999").status_code == 200
    assert client.get("/otherstore/pricing/prices/999").status_code == 404


def test_pricing_burst_credits_answer_429_with_retry_after_when_spent(
    fake: FakeVtex, client: httpx.Client
) -> None:
    fake.limit_pricing(rate_per_s=1, credits=2)
    url = f"{PRICES}/1070"

    statuses = [send(client, "PUT", url, {"basePrice": 10}).status_code for _ in range(2)]
    throttled = send(client, "PUT", url, {"basePrice": 11})
    fake.advance(1)
    after_wait = send(client, "PUT", url, {"basePrice": 12})

    assert statuses == [200, 200]
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert throttled.headers["Ratelimit-Remaining"] == "0"
    assert after_wait.status_code == 200
    assert fake.prices["1070"]["basePrice"] == 12


# ----------------------------------------------------------- orders feed


def configure(client: httpx.Client, visibility: int = 300) -> httpx.Response:
    return client.post(
        "/api/orders/feed/config",
        json={
            "filter": {"type": "FromWorkflow", "status": FEED_STATUSES},
            "queue": {"visibilityTimeoutInSeconds": visibility, "MessageRetentionPeriodInSeconds": 345600},
        },
    )


def read_feed(client: httpx.Client, maxlot: int = 10) -> list[dict[str, Any]]:
    response = client.get("/api/orders/feed", params={"maxlot": maxlot})
    assert response.status_code == 200, response.text
    return response.json()


def test_feed_and_its_config_are_404_until_configured(client: httpx.Client) -> None:
    assert client.get("/api/orders/feed", params={"maxlot": 10}).status_code == 404
    assert client.get("/api/orders/feed/config").status_code == 404
    assert client.get("/api/orders/feed/config").json()["error"]["message"]


def test_feed_config_round_trip_and_refusals(client: httpx.Client) -> None:
    mixed = client.post(
        "/api/orders/feed/config",
        json={"filter": {"type": "FromWorkflow", "status": ["handling"], "expression": "x"}, "queue": {}},
    )
    no_queue = client.post("/api/orders/feed/config", json={"filter": {"type": "FromWorkflow", "status": []}})

    assert mixed.status_code == 409
    assert no_queue.status_code == 400
    assert configure(client).status_code == 200
    config = client.get("/api/orders/feed/config").json()
    assert config["queue"] == {"visibilityTimeoutInSeconds": 300, "messageRetentionPeriodInSeconds": 345600}
    assert config["quantity"] == 0 and "approximateAgeOfOldestMessageInSeconds" in config
    assert client.delete("/api/orders/feed/config").status_code == 200
    assert client.get("/api/orders/feed/config").status_code == 404


def test_feed_lifecycle_visibility_timeout_and_commit(fake: FakeVtex, client: httpx.Client) -> None:
    configure(client, visibility=300)
    order_id = fake.add_order(items=[SHIRT], shipping_cents=900)

    first = read_feed(client)
    hidden = read_feed(client)
    fake.advance(299)
    still_hidden = read_feed(client)
    fake.advance(1)
    again = read_feed(client)
    commit = client.post("/api/orders/feed", json={"handles": [again[0]["handle"]]})
    fake.advance(300)

    assert [(e["orderId"], e["state"], e["domain"]) for e in first] == [
        (order_id, "ready-for-handling", "Fulfillment")
    ]
    assert hidden == [] and still_hidden == []
    assert again[0]["eventId"] == first[0]["eventId"] and again[0]["handle"] != first[0]["handle"]
    assert commit.status_code == 200
    assert read_feed(client) == []
    assert client.post("/api/orders/feed", json={"handles": ["unknown"]}).status_code == 200


@pytest.mark.parametrize("params", [{}, {"maxlot": 0}, {"maxlot": 11}, {"maxlot": "ten"}])
def test_maxlot_must_be_1_to_10(client: httpx.Client, params: dict[str, Any]) -> None:
    configure(client)

    assert client.get("/api/orders/feed", params=params).status_code == 400


def test_lots_hold_at_most_maxlot_events(fake: FakeVtex, client: httpx.Client) -> None:
    configure(client)
    for _ in range(3):
        fake.add_order(items=[SHIRT])

    assert len(read_feed(client, maxlot=2)) == 2
    assert len(read_feed(client, maxlot=2)) == 1


def test_only_statuses_in_the_filter_make_events(fake: FakeVtex, client: httpx.Client) -> None:
    configure(client)
    order_id = fake.add_order(items=[SHIRT], status="payment-approved")
    assert read_feed(client) == []

    fake.set_order_status(order_id, "cancellation-requested")
    events = read_feed(client)

    assert [(e["state"], e["lastState"]) for e in events] == [("cancellation-requested", "payment-approved")]


def test_duplicate_delivery_gives_one_event_two_handles(fake: FakeVtex, client: httpx.Client) -> None:
    configure(client)
    fake.feed_duplicate_delivery = True
    fake.add_order(items=[SHIRT])

    lot = read_feed(client)

    assert len(lot) == 2 and lot[0]["eventId"] == lot[1]["eventId"] and lot[0]["handle"] != lot[1]["handle"]


def test_events_expire_after_the_retention_period(fake: FakeVtex, client: httpx.Client) -> None:
    fake.configure_feed(FEED_STATUSES, retention_s=600)
    fake.add_order(items=[SHIRT])
    fake.emit_event(next(iter(fake.orders)))
    fake.advance(600)

    assert read_feed(client) == []


# ------------------------------------------------------------------- OMS


def test_get_order_has_the_documented_shape_in_cents(fake: FakeVtex, client: httpx.Client) -> None:
    order_id = fake.add_order(
        items=[SHIRT, (1071, "ERP-000123-M", "Camiseta M", 2, 1000)], shipping_cents=900
    )

    order = client.get(f"/api/oms/pvt/orders/{order_id}").json()
    by_sequence = client.get(f"/api/oms/pvt/orders/seq{order['sequence']}")
    missing = client.get("/api/oms/pvt/orders/0000000000000-01")

    assert order["value"] == 9990 + 2000 + 900
    assert {t["id"]: t["value"] for t in order["totals"]} == {
        "Items": 11990,
        "Discounts": 0,
        "Shipping": 900,
        "Tax": 0,
    }
    assert [(i["id"], i["refId"], i["quantity"], i["price"]) for i in order["items"]] == [
        ("1070", "ERP-000123-P", 1, 9990),
        ("1071", "ERP-000123-M", 2, 1000),
    ]
    assert order["clientProfileData"]["email"].endswith("@ct.vtex.com.br")
    assert sum(info["price"] for info in order["shippingData"]["logisticsInfo"]) == 900
    assert order["orderGroup"] == order_id.split("-")[0]
    assert order["packageAttachment"] == {"packages": []}
    assert by_sequence.json()["orderId"] == order_id
    assert missing.status_code == 404 and "error" in missing.json()


def test_start_handling_is_204_once_then_409_oms003(fake: FakeVtex, client: httpx.Client) -> None:
    configure(client)
    order_id = fake.add_order(items=[SHIRT])
    url = f"/api/oms/pvt/orders/{order_id}/start-handling"

    first, second = client.post(url), client.post(url)

    assert first.status_code == 204 and first.content == b""
    assert second.status_code == 409 and second.json()["error"]["code"] == "OMS003"
    assert fake.orders[order_id]["status"] == "handling"
    assert [e["state"] for e in read_feed(client)] == ["ready-for-handling", "handling"]


def test_invoices_summing_to_the_order_value_make_it_invoiced(fake: FakeVtex, client: httpx.Client) -> None:
    order_id = fake.add_order(
        items=[SHIRT, (1071, "R-M", "M", 1, 1000)], shipping_cents=900, status="handling"
    )
    url = f"/api/oms/pvt/orders/{order_id}/invoice"
    items = [{"id": "1070", "price": 9990, "quantity": 1}]

    partial = client.post(url, json=invoice_body("000123", 10890, items=items))
    status_after_partial = fake.orders[order_id]["status"]
    rest = client.post(
        url, json=invoice_body("000124", 1000, items=[{"id": "1071", "price": 1000, "quantity": 1}])
    )

    assert partial.status_code == 200 and partial.json()["orderId"] == order_id
    assert status_after_partial == "handling"
    assert rest.status_code == 200
    assert fake.orders[order_id]["status"] == "invoiced"
    assert fake.orders[order_id]["invoicedDate"] is not None
    assert [p["invoiceValue"] for p in fake.orders[order_id]["packageAttachment"]["packages"]] == [
        10890,
        1000,
    ]


def test_resending_an_invoice_number_gives_a_new_receipt_only(fake: FakeVtex, client: httpx.Client) -> None:
    order_id = fake.add_order(items=[SHIRT], shipping_cents=900, status="handling")
    url = f"/api/oms/pvt/orders/{order_id}/invoice"

    first = client.post(url, json=invoice_body())
    again = client.post(url, json=invoice_body(invoiceKey="changed"))

    assert first.json()["receipt"] != again.json()["receipt"]
    packages = fake.orders[order_id]["packageAttachment"]["packages"]
    assert len(packages) == 1 and packages[0]["invoiceKey"].startswith("3525")


@pytest.mark.parametrize(
    "override",
    [
        {"invoiceNumber": "000123/1"},
        {"invoiceValue": "0"},
        {"invoiceValue": "108.90"},
        {"issuanceDate": None},
        {"courier": None},
        {"type": "Sale"},
        {"items": []},
        {"items": [{"id": "1070", "price": 99.9, "quantity": 1}]},
        {"items": [{"id": "9999", "price": 9990, "quantity": 1}]},
    ],
    ids=[
        "slash",
        "zero",
        "not-cents",
        "no-date",
        "null-courier",
        "bad-type",
        "no-items",
        "float-price",
        "foreign-item",
    ],
)
def test_invoice_validation(fake: FakeVtex, client: httpx.Client, override: dict[str, Any]) -> None:
    order_id = fake.add_order(items=[SHIRT], shipping_cents=900, status="handling")

    response = client.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=invoice_body(**override))

    assert response.status_code == 400 and "error" in response.json()
    assert fake.orders[order_id]["packageAttachment"]["packages"] == []


def test_cancel_before_invoice_and_refusal_after(fake: FakeVtex, client: httpx.Client) -> None:
    configure(client)
    open_order = fake.add_order(items=[SHIRT])
    invoiced = fake.add_order(items=[SHIRT], status="handling")
    client.post(f"/api/oms/pvt/orders/{invoiced}/invoice", json=invoice_body(value=5000))
    read_feed(client)  # drain creation events

    canceled = client.post(f"/api/oms/pvt/orders/{open_order}/cancel", json={"reason": "Sem estoque"})
    refused = client.post(f"/api/oms/pvt/orders/{invoiced}/cancel", json={"reason": "x"})

    assert canceled.status_code == 200 and canceled.json()["orderId"] == open_order
    assert fake.orders[open_order]["status"] == "canceled"
    assert refused.status_code == 400
    fake.advance(300)
    assert [e["state"] for e in read_feed(client) if e["orderId"] == open_order][-1] == "canceled"


def test_tracking_patch_then_events(fake: FakeVtex, client: httpx.Client) -> None:
    order_id = fake.add_order(items=[SHIRT], shipping_cents=900, status="handling")
    base = f"/api/oms/pvt/orders/{order_id}/invoice"
    client.post(base, json=invoice_body())
    events = {
        "isDelivered": True,
        "deliveredDate": "2025-03-13 15:20",
        "events": [{"city": "Cajamar", "state": "SP", "description": "Coletado", "date": "2025-03-11"}],
    }
    tracking = {
        "trackingNumber": "BR1",
        "trackingUrl": None,
        "courier": "Transportadora X",
        "dispatchedDate": None,
    }

    too_early = client.put(f"{base}/000123/tracking", json=events)
    unknown = client.patch(f"{base}/999/", json=tracking)
    incomplete = client.patch(f"{base}/000123", json={"trackingNumber": "BR1"})
    patched = client.patch(f"{base}/000123", json=tracking)
    delivered = client.put(f"{base}/000123/tracking", json=events)

    assert too_early.status_code == 400 and unknown.status_code == 404 and incomplete.status_code == 400
    assert patched.status_code == 200 and delivered.status_code == 200
    package = fake.orders[order_id]["packageAttachment"]["packages"][0]
    assert package["trackingNumber"] == "BR1" and package["courier"] == "Transportadora X"
    assert package["courierStatus"]["finished"] is True


def test_list_orders_filters_and_limits(fake: FakeVtex, client: httpx.Client) -> None:
    old = fake.add_order(items=[SHIRT], created_at=datetime(2025, 3, 1, tzinfo=UTC))
    recent = fake.add_order(items=[SHIRT], shipping_cents=900)
    fake.add_order(items=[SHIRT], status="handling")
    url = "/api/oms/pvt/orders"
    window = "creationDate:[2025-03-05T00:00:00.000Z TO 2025-03-10T23:59:59.999Z]"

    ready = client.get(url, params={"f_status": "ready-for-handling", "per_page": 100}).json()
    windowed = client.get(url, params={"f_status": "ready-for-handling", "f_creationDate": window}).json()
    paged = client.get(url, params={"per_page": 1, "page": 2, "orderBy": "creationDate,asc"}).json()

    assert {o["orderId"] for o in ready["list"]} == {old, recent}
    assert all(o["items"] is None for o in ready["list"])
    assert [o["orderId"] for o in windowed["list"]] == [recent]
    assert windowed["list"][0]["totalValue"] == 10890
    assert paged["paging"] == {"total": 3, "pages": 3, "currentPage": 2, "perPage": 1}
    assert client.get(url, params={"page": 31}).status_code == 400
    assert client.get(url, params={"per_page": 101}).status_code == 400
    assert client.get(url, params={"f_creationDate": "yesterday"}).status_code == 400


def test_list_orders_can_lag_like_the_index(fake: FakeVtex, client: httpx.Client) -> None:
    fake.list_index_delay_s = 240
    fake.add_order(items=[SHIRT])

    assert client.get("/api/oms/pvt/orders").json()["list"] == []
    fake.advance(240)
    assert len(client.get("/api/oms/pvt/orders").json()["list"]) == 1


# ---------------------------------------------------------------- faults


def test_429_with_retry_after_for_n_requests_then_ok(fake: FakeVtex, client: httpx.Client) -> None:
    rule = fake.faults.add(
        method="PUT", path_prefix="/api/logistics", status=429, headers={"Retry-After": "1"}, times=2
    )
    url = "/api/logistics/pvt/inventory/skus/1070/warehouses/1_1"

    responses = [client.put(url, json={"quantity": n}) for n in (1, 2, 3)]

    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "1"
    assert rule.hits == 2
    assert fake.inventory[("1070", "1_1")]["totalQuantity"] == 3
    assert [(r.method, r.status, r.body) for r in fake.requests_log] == [
        ("PUT", 429, {"quantity": 1}),
        ("PUT", 429, {"quantity": 2}),
        ("PUT", 200, {"quantity": 3}),
    ]
    assert fake.faults.count("PUT", "/api/logistics") == 3


def test_apply_then_500_on_inventory_put_really_applies(fake: FakeVtex, client: httpx.Client) -> None:
    fake.faults.add(method="PUT", path_prefix="/api/logistics/pvt/inventory", status=500, apply_first=True)

    response = client.put("/api/logistics/pvt/inventory/skus/1070/warehouses/1_1", json={"quantity": 37})

    assert response.status_code == 500
    assert fake.inventory[("1070", "1_1")]["totalQuantity"] == 37


def test_pricing_fault_responses_carry_rate_limit_headers(fake: FakeVtex, client: httpx.Client) -> None:
    fake.faults.add(path_prefix="/demostore/pricing", status=429, headers={"Retry-After": "3"})

    response = client.get(f"{PRICES}/1070")

    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert "Ratelimit-Remaining" in response.headers


def test_lock_contention_body_and_delay_use_the_rule(
    fake: FakeVtex, client: httpx.Client, sleeps: list[float]
) -> None:
    fake.faults.add(
        method="PUT", path_prefix="/api/logistics", status=423, body="Unable to acquire lock for key: x"
    )
    fake.faults.add(path_prefix="/api/oms", delay_s=45)
    order_id = fake.add_order(items=[SHIRT])

    locked = client.put("/api/logistics/pvt/inventory/skus/1/warehouses/1_1", json={"quantity": 1})
    slow = client.get(f"/api/oms/pvt/orders/{order_id}")

    assert locked.status_code == 423 and locked.text.startswith("Unable to acquire lock")
    assert ("1", "1_1") not in fake.inventory
    assert slow.status_code == 200 and sleeps == [45]


def test_dropped_connection_and_malformed_body(fake: FakeVtex, client: httpx.Client) -> None:
    fake.faults.add(path_prefix="/api/orders/feed", drop_connection=True)
    fake.faults.add(path_prefix="/api/catalog", malformed_body=True)

    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/orders/feed", params={"maxlot": 10})
    malformed = client.get("/api/catalog/pvt/product/1")

    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    assert fake.requests_log[0].status == DROPPED


# ---------------------------------------------------------------- server


def test_serve_answers_real_requests_on_loopback() -> None:
    fake = FakeVtex()
    fake.faults.add(path_prefix="/api/orders/feed", drop_connection=True)
    with serve(fake) as server:
        assert server.url.startswith("http://127.0.0.1:")
        response = httpx.get(
            f"{server.url}/api/logistics/pvt/configuration/warehouses", headers=AUTH, timeout=5
        )
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/api/orders/feed", params={"maxlot": 1}, headers=AUTH, timeout=5)

    assert response.status_code == 200 and response.json()[0]["id"] == "1_1"


def test_serve_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError):
        serve(FakeVtex(), host="0.0.0.0")
