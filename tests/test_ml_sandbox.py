"""The fake Mercado Livre API keeps the rules of the reference's checklist (§11), so
the adapter's tests mean something."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from syncctl.sandbox.mercadolivre import (
    CLIENT_ID,
    CLIENT_SECRET,
    SELLER_ID,
    FakeMercadoLivre,
)

T0 = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Api:
    """Raw requests to the fake, signed in as the seller."""

    def __init__(self) -> None:
        self.fake = FakeMercadoLivre(clock=lambda: T0, sleep=lambda _s: None)
        self.client = httpx.Client(base_url="http://ml.test", transport=httpx.WSGITransport(app=self.fake))
        self.token = self.grant(grant_type="refresh_token", refresh_token=self.fake.issue_refresh_token()).json()[
            "access_token"
        ]

    def grant(self, **form: str) -> httpx.Response:
        body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
        return self.client.post("/oauth/token", data=body, headers=FORM)

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)


@pytest.fixture
def api() -> Api:
    return Api()


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert {"error", "status", "cause"} <= body.keys() and ("message" in body or "error_description" in body)
    return response.status_code, body["error"]


# -- OAuth ----------------------------------------------------------------------------------------


def test_refresh_tokens_are_single_use_and_only_the_latest_is_valid(api: Api) -> None:
    first = api.fake.issue_refresh_token()
    rotated = api.grant(grant_type="refresh_token", refresh_token=first).json()

    again = api.grant(grant_type="refresh_token", refresh_token=first)

    assert rotated["refresh_token"] != first and rotated["expires_in"] == 21600
    assert error(again) == (400, "invalid_grant") and "already used" in again.json()["error_description"]


def test_codes_are_single_use_and_need_the_redirect_uri_and_pkce_verifier(api: Api) -> None:
    api.fake.pkce = True
    code = api.fake.issue_code()
    no_verifier = api.grant(grant_type="authorization_code", code=code, redirect_uri=api.fake.redirect_uri)
    wrong_uri = api.grant(grant_type="authorization_code", code=code, redirect_uri="https://x", code_verifier="v")
    code = api.fake.issue_code()
    ok = api.grant(grant_type="authorization_code", code=code, redirect_uri=api.fake.redirect_uri, code_verifier="v")
    twice = api.grant(grant_type="authorization_code", code=code, redirect_uri=api.fake.redirect_uri, code_verifier="v")

    assert error(no_verifier) == (400, "invalid_request") and error(wrong_uri) == (400, "invalid_grant")
    assert ok.status_code == 200 and error(twice) == (400, "invalid_grant")


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda api: api.client.post("/oauth/token?grant_type=refresh_token", data={}, headers=FORM), (400, "invalid_request")),
        (lambda api: api.client.post("/oauth/token", json={"grant_type": "refresh_token"}), (400, "invalid_request")),
        (lambda api: api.grant(client_secret="wrong", grant_type="refresh_token", refresh_token="x"), (401, "invalid_client")),
        (lambda api: api.grant(grant_type="password"), (400, "unsupported_grant_type")),
    ],
    ids=["query-string", "json-body", "bad-secret", "grant-type"],
)
def test_the_token_endpoint_takes_only_a_form_body_from_the_app(api: Api, send: Any, expected: tuple[int, str]) -> None:
    assert error(send(api)) == expected


def test_access_tokens_expire_and_only_the_header_carries_them(api: Api) -> None:
    assert api.call("GET", "/users/me").json()["id"] == SELLER_ID
    in_query = api.client.get(f"/users/me?access_token={api.token}")
    api.fake.advance(21600)

    assert error(api.call("GET", "/users/me")) == (401, "not_found")
    assert error(in_query)[0] == 401 and error(api.client.get("/users/me"))[0] == 401


# -- items and stock ----------------------------------------------------------------------------------


def test_stock_zero_pauses_and_stock_back_reactivates_only_an_out_of_stock_pause(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="BONE")
    api.call("PUT", f"/items/{item}", json={"available_quantity": 0})
    paused = dict(api.fake.items[item])
    api.call("PUT", f"/items/{item}", json={"available_quantity": 3})
    active = api.fake.items[item]["status"]
    api.call("PUT", f"/items/{item}", json={"status": "paused"})
    api.call("PUT", f"/items/{item}", json={"available_quantity": 5})

    assert (paused["status"], paused["sub_status"], active) == ("paused", ["out_of_stock"], "active")
    assert api.fake.items[item]["status"] == "paused"  # a seller's pause stays


def test_items_refuse_what_ml_refuses(api: Api) -> None:
    full = api.fake.add_item("Caneca", sku="C", logistic_type="fulfillment")
    legacy = api.fake.add_item("Camiseta", variations=[("P", {"SIZE": "P"}, 1)])
    sold = api.fake.add_item("Boné", sku="B", sold_quantity=2)

    assert error(api.call("PUT", f"/items/{full}", json={"available_quantity": 1})) == (
        400, "item.available_quantity.not_modifiable")
    assert error(api.call("PUT", f"/items/{legacy}", json={"available_quantity": 1}))[0] == 400
    assert error(api.call("PUT", f"/items/{sold}", json={"title": "Novo"})) == (400, "item.title.not_modifiable")
    assert error(api.call("PUT", f"/items/{sold}", json={"color": "azul"})) == (400, "body.invalid_fields")


def test_variation_attributes_come_only_with_include_attributes_all(api: Api) -> None:
    item = api.fake.add_item("Camiseta", variations=[("CAM-P", {"SIZE": "P"}, 1)])

    bare = api.call("GET", f"/items/{item}").json()["variations"][0]
    full = api.call("GET", f"/items/{item}", params={"include_attributes": "all"}).json()["variations"][0]
    found = api.call("GET", f"/users/{SELLER_ID}/items/search", params={"seller_sku": "CAM-P"}).json()

    assert "attributes" not in bare and full["attributes"][0]["value_name"] == "CAM-P"
    assert found["results"] == [item]  # a variation's SELLER_SKU finds its item


def test_multiget_answers_per_item_up_to_20(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    answers = api.call("GET", "/items", params={"ids": f"{item},MLB404"}).json()

    assert [answer["code"] for answer in answers] == [200, 404]
    assert api.call("GET", "/items", params={"ids": ",".join(f"MLB{n}" for n in range(21))}).status_code == 400


def test_user_product_stock_needs_a_fresh_x_version(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    url = f"/user-products/{api.fake.items[item]['user_product_id']}/stock"
    version = api.call("GET", url).headers["x-version"]
    body = {"locations": [{"store_id": "9876543", "network_node_id": "BRP123451", "quantity": 4}]}

    missing = api.call("PUT", f"{url}/type/seller_warehouse", json=body)
    accepted = api.call("PUT", f"{url}/type/seller_warehouse", json=body, headers={"x-version": version})
    stale = api.call("PUT", f"{url}/type/seller_warehouse", json=body, headers={"x-version": version})

    assert (missing.status_code, accepted.status_code, stale.status_code) == (400, 200, 409)
    assert api.fake.items[item]["available_quantity"] == 4


def test_price_automation_refuses_a_price_alone_and_ignores_it_with_other_fields(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B", price=Decimal(50))
    api.fake.automated_prices.add(item)

    alone = api.call("PUT", f"/items/{item}", json={"price": 60})
    mixed = api.call("PUT", f"/items/{item}", json={"price": 60, "title": "Boné azul"})

    assert error(alone) == (400, api.fake.price_automation_error)
    assert mixed.status_code == 200 and mixed.json()["warnings"] and api.fake.items[item]["price"] == Decimal(50)


# -- promotions -------------------------------------------------------------------------------------


def discount(api: Api, item: str, deal: float, start: str, finish: str) -> httpx.Response:
    body = {"deal_price": deal, "start_date": start, "finish_date": finish, "promotion_type": "PRICE_DISCOUNT"}
    return api.call("POST", f"/seller-promotions/items/{item}", params={"app_version": "v2"}, json=body)


def test_price_discounts_keep_their_limits(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B", price=Decimal(50))
    paused = api.fake.add_item("Boné", sku="B2", price=Decimal(50), quantity=0)

    too_long = discount(api, item, 40, "2025-03-10T12:00:00", "2025-03-25T12:00:01")
    not_lower = discount(api, item, 50, "2025-03-10T12:00:00", "2025-03-12T12:00:00")
    with_offset = discount(api, item, 40, "2025-03-10T12:00:00-03:00", "2025-03-12T12:00:00")
    inactive = discount(api, paused, 40, "2025-03-10T12:00:00", "2025-03-12T12:00:00")
    accepted = discount(api, item, 40, "2025-03-10T12:00:00", "2025-03-24T12:00:00")
    second = discount(api, item, 39, "2025-03-10T12:00:00", "2025-03-12T12:00:00")
    sale = api.call("GET", f"/items/{item}/sale_price").json()

    assert [r.status_code for r in (too_long, not_lower, with_offset, inactive, second)] == [400] * 5
    assert accepted.status_code == 201 and (sale["amount"], sale["type"]) == (40, "promotion")
    assert api.call("DELETE", f"/seller-promotions/items/{item}",
                    params={"promotion_type": "PRICE_DISCOUNT", "app_version": "v2"}).status_code == 200  # fmt: skip
    assert api.fake.running_deal_price(item) is None
    assert api.call("GET", f"/seller-promotions/items/{item}").status_code == 400  # app_version=v2 required


# -- orders -------------------------------------------------------------------------------------------


def search(api: Api, **params: Any) -> httpx.Response:
    return api.call("GET", "/orders/search", params={"seller": str(SELLER_ID), **params})


def test_orders_search_truncates_date_filters_to_the_hour_and_pages(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B", quantity=100)
    api.fake.advance(30 * 60)  # orders updated at 15:30 UTC
    for _ in range(3):
        api.fake.add_order([(item, None, 1, Decimal(10))])

    to_the_minute = search(api, **{"order.date_last_updated.to": "2025-03-10T15:59:59.000+00:00"}).json()
    rounded_up = search(api, **{"order.date_last_updated.to": "2025-03-10T16:00:00.000+00:00", "limit": 2,
                                "offset": 2}).json()  # fmt: skip

    assert to_the_minute["paging"]["total"] == 0  # 15:59 counts as 15:00
    assert rounded_up["paging"] == {"total": 3, "offset": 2, "limit": 2} and len(rounded_up["results"]) == 1
    assert error(search(api, limit=51))[0] == 400
    assert error(search(api, **{"order.date_last_updated.from": "2025-03-10T15:00:00"}))[0] == 400  # no offset
    assert error(api.call("GET", "/orders/search", params={"seller": "1"})) == (403, "forbidden")


def test_a_status_change_moves_date_last_updated_and_packs_hold_their_orders(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B", quantity=100)
    pack, (first, second) = api.fake.add_order([(item, None, 1, Decimal(10)), (item, None, 1, Decimal(10))])
    api.fake.advance(60)
    api.fake.set_order_status(first, "cancelled")

    order = api.call("GET", f"/orders/{first}").json()
    assert (order["status"], order["date_last_updated"], order["pack_id"]) == ("cancelled", "2025-03-10T15:01:00.000Z", pack)
    assert [o["id"] for o in api.call("GET", f"/packs/{pack}").json()["orders"]] == [first, second]
    assert api.fake.items[item]["sold_quantity"] == 2


# -- shipments and NF-e -------------------------------------------------------------------------------

XML = b'<nfeProc><NFe><infNFe Id="NFe35240311222333000181550010000012341123456781"/></NFe></nfeProc>'


def test_invoice_data_unlocks_the_label_of_label_modes_only(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    _, [me2] = api.fake.add_order([(item, None, 1, Decimal(10))])
    _, [full] = api.fake.add_order([(item, None, 1, Decimal(10))], logistic_type="fulfillment")
    me2_shipment, full_shipment = (api.fake.orders[o]["shipping"]["id"] for o in (me2, full))
    url = f"/shipments/{me2_shipment}/invoice_data"

    def send(method: str, shipment_url: str, body: bytes = XML) -> int:
        return api.call(method, shipment_url, params={"siteId": "MLB"}, content=body,
                        headers={"Content-Type": "application/xml"}).status_code  # fmt: skip

    assert send("POST", url, b"<nfeProc/>") == 400  # no access key in it
    assert send("POST", url) == 201 and send("POST", url) == 400 and send("PUT", url) == 200
    assert send("POST", f"/shipments/{full_shipment}/invoice_data") == 400
    assert api.fake.shipments[me2_shipment]["substatus"] == "ready_to_print"


def test_one_fiscal_document_per_pack_until_it_is_deleted(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    key, _ = api.fake.add_order([(item, None, 1, Decimal(10))], mode="me1")
    url = f"/packs/{key}/fiscal_documents"

    def upload() -> httpx.Response:
        return api.call("POST", url, files={"fiscal_document": ("NFe.xml", XML, "application/xml")})

    first, second = upload(), upload()
    [document] = api.call("GET", url).json()["fiscal_documents"]
    api.call("DELETE", f"{url}/{document['id']}")

    assert (first.status_code, error(second)) == (201, (400, "fiscal_document.already_exists"))
    assert upload().status_code == 201


def test_me1_notifications_keep_their_rules(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    _, [order] = api.fake.add_order([(item, None, 1, Decimal(10))], mode="me1", logistic_type="default")
    _, [me2] = api.fake.add_order([(item, None, 1, Decimal(10))])
    url = f"/v2/shipments/{api.fake.orders[order]['shipping']['id']}/seller_notifications"
    payload = {"payload": {"date": "2025-03-10T12:00:00.000-03:00", "comment": "ok"}}

    def notify(shipment_url: str = url, **body: Any) -> int:
        return api.call("POST", shipment_url, json={**payload, **body}).status_code

    assert notify(status="shipped", substatus="null") == 400  # the string "null"
    assert notify(status="shipped", substatus=None, tracking_number="X") == 400  # without its URL
    assert notify(status="delivered", substatus=None) == 400  # not shipped yet
    assert notify(status="shipped", substatus=None, tracking_number="X", tracking_url="https://x") == 200
    assert notify(status="delivered", substatus=None) == 200
    assert notify(status="delivered", substatus=None) == 400  # final and irreversible
    assert notify(f"/v2/shipments/{api.fake.orders[me2]['shipping']['id']}/seller_notifications",
                  status="shipped", substatus=None) == 400  # fmt: skip


# -- messages and claims -------------------------------------------------------------------------------


def test_post_sale_messages_keep_their_rules(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    key, _ = api.fake.add_order([(item, None, 1, Decimal(10))])
    api.fake.add_buyer_message(key, "Oi")
    url = f"/messages/packs/{key}/sellers/{SELLER_ID}"

    def send(text: str) -> httpx.Response:
        body = {"from": {"user_id": str(SELLER_ID)}, "to": {"user_id": "987654321"}, "text": text}
        return api.call("POST", url, params={"tag": "post_sale"}, json=body)

    assert api.call("GET", url).status_code == 404  # tag=post_sale is required
    assert api.call("GET", "/messages/unread", params={"tag": "post_sale"}).status_code == 400  # and role
    unread = api.call("GET", "/messages/unread", params={"role": "seller", "tag": "post_sale"}).json()["results"]
    api.call("GET", url, params={"tag": "post_sale", "mark_as_read": "false"})
    still = api.fake.conversations[key]["messages"][0]["message_date"]["read"]
    api.call("GET", url, params={"tag": "post_sale"})  # mark_as_read defaults to true
    assert unread == [{"resource": f"/packs/{key}/sellers/{SELLER_ID}", "count": 1}] and still is None
    assert api.fake.conversations[key]["messages"][0]["message_date"]["read"] is not None
    assert error(send("x" * 351))[0] == 400
    assert send("Sim!").json()["message_moderation"]["status"] == "clean"
    assert send("Ligue 11 91234-5678").json()["message_moderation"]["reason"] == "PERSONAL_DATA"
    api.fake.block_conversation(key, "blocked_by_fulfillment")
    assert error(send("Oi")) == (403, "blocked_by_fulfillment")


def test_claims_keep_their_rules(api: Api) -> None:
    item = api.fake.add_item("Boné", sku="B")
    _, [order] = api.fake.add_order([(item, None, 1, Decimal(10))])
    claim = api.fake.add_claim(order, "Veio quebrado", actions=("refund",))
    base = "/post-purchase/v1/claims"

    assert api.call("GET", f"{base}/search", params={"offset": 0, "limit": 30}).status_code == 400
    assert api.call("GET", f"{base}/search", params={"players.user_id": SELLER_ID}).status_code == 400
    found = api.call("GET", f"{base}/search", params={"players.role": "respondent", "players.user_id": SELLER_ID})
    assert [c["id"] for c in found.json()["data"]] == [claim]
    assert [m["message"] for m in api.call("GET", f"{base}/{claim}/messages").json()] == ["Veio quebrado"]
    reply = api.call("POST", f"{base}/{claim}/actions/send-message", json={"receiver_role": "complainant",
                                                                           "message": "Vamos ver."})  # fmt: skip
    assert error(reply) == (400, "action.not_available")


# -- rate limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [True, False])
def test_an_endpoint_called_too_often_answers_429(api: Api, retry_after: bool) -> None:
    api.fake.rate_limit(2, retry_after=retry_after)
    statuses = [api.call("GET", "/users/me") for _ in range(3)]
    api.fake.advance(60)

    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert ("Retry-After" in statuses[2].headers) is retry_after
    assert error(statuses[2]) == (429, "local_rate_limited") and api.call("GET", "/users/me").status_code == 200
