"""The Mercado Livre adapter's exact requests, pinned per scenario by vcrpy cassettes.

Each test drives the adapter through one scenario. Normally the cassette plays back
(`record_mode="none"`, matched on method, URL and body, over a transport that fails if
reached), so a test fails as soon as the client's requests change. With
SYNCCTL_RECORD=1 the same tests record against a fresh FakeMercadoLivre instead (whose
answers follow shared/reference/mercadolivre.md) and mark each file as built, not
captured. Re-record only when a change of requests is intended, and read the diff.

Every scenario but the OAuth one starts with a token pair already in the state file,
so its cassette holds the scenario's own requests only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
from conftest import T0, ml_channel
from contract.suite import NFE_KEY, DictLinks
from vcr.cassette import Cassette

from syncctl.auth import RotatingTokens, Token
from syncctl.channels.mercadolivre import MercadoLivreChannel
from syncctl.domain import (
    DeliveryStatus,
    EffectivePrice,
    Invoice,
    OrderStatus,
    OrderUpdate,
    Product,
    Shipment,
    StockLevel,
    TicketMessage,
)
from syncctl.errors import RecordRejected
from syncctl.sandbox.mercadolivre import CLIENT_SECRET, FakeMercadoLivre
from syncctl.state import StateStore

CASSETTES = Path(__file__).parent / "cassettes" / "mercadolivre"
RECORDING = os.environ.get("SYNCCTL_RECORD") == "1"
RERECORD = "SYNCCTL_RECORD=1 pytest tests/test_ml_cassettes.py"
HEADER = (
    "# Built from the documented shapes in shared/reference/mercadolivre.md by driving syncctl against "
    f"syncctl/sandbox/mercadolivre.py; not a live capture. Re-record: {RERECORD}\n"
)
FILTERED = "<filtered>"
SESSION_TOKEN = "APP_USR-1234567890123456-cassette-session"  # the access token a scenario starts with
FIRST_REFRESH = "TG-first-refresh-token-of-the-cassettes-123456789"
NFE_XML = f'<nfeProc versao="4.00"><NFe><infNFe Id="NFe{NFE_KEY}"/></NFe></nfeProc>'
# The ids a fresh FakeMercadoLivre gives the first listing, its variations, and the first purchase.
ITEM, VARIATION_P = "MLB4000000001", 180000000001
PACK, FIRST_ORDER, SHIPMENT = 2000000900000001, 2000000000000001, 43000000001


def _hide_tokens(response: dict[str, Any]) -> dict[str, Any]:
    """Token answers keep their shape, not their tokens."""
    body = response["body"]["string"]
    text = body.decode() if isinstance(body, bytes) else body
    if '"refresh_token"' in text:
        fields = json.loads(text) | {"access_token": f"APP_USR-{FILTERED}", "refresh_token": f"TG-{FILTERED}"}
        response["body"]["string"] = json.dumps(fields).encode() if isinstance(body, bytes) else json.dumps(fields)
    return response


CASSETTE_VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="all" if RECORDING else "none",
    match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    filter_headers=[("authorization", FILTERED)],
    filter_post_data_parameters=[("client_secret", FILTERED), ("refresh_token", FILTERED)],
    before_record_response=_hide_tokens,
)


@dataclass
class Session:
    channel: MercadoLivreChannel
    links: DictLinks
    cassette: Cassette
    sleeps: list[float]

    @property
    def requests(self) -> list[tuple[str, str]]:
        return [(request.method, request.path) for request in self.cassette.requests]

    def body(self, method: str, path: str) -> Any:
        """The body of the last recorded request to `method path`: JSON, or the text."""
        [*_, request] = (r for r in self.cassette.requests if (r.method, r.path) == (method, path))
        text = request.body.decode() if isinstance(request.body, bytes) else request.body
        try:
            return json.loads(text)
        except ValueError:
            return text


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"playback reached the transport: {request.method} {request.url} is not in the cassette")


@contextmanager
def scenario(
    name: str,
    prepare: Callable[[FakeMercadoLivre], None] = lambda _fake: None,
    links: dict[str, dict[str, str]] | None = None,
    *,
    signed_in: bool = True,
    tmp: Path,
) -> Iterator[Session]:
    """Play `name`'s cassette back; when recording, `prepare` a fresh fake and record
    against it. `links` is what the Binder already has; `signed_in`: a pair in the state."""
    path = CASSETTES / f"{name}.yaml"
    state_path = tmp / "state.db"
    fake = FakeMercadoLivre(clock=lambda: T0, sleep=lambda _s: None)
    if signed_in:
        pair = Token(SESSION_TOKEN, T0 + timedelta(hours=6), refresh_token="TG-session", account=str(fake.seller_id))
        StateStore(state_path).set_token("channel:ml-test", RotatingTokens.row, pair.to_text(), T0)
        fake.access_tokens[SESSION_TOKEN] = (fake.seller_id, T0 + timedelta(hours=6))
    fake.issue_refresh_token(token=FIRST_REFRESH)
    with ExitStack() as stack:
        if RECORDING:
            prepare(fake)
            transport: httpx.BaseTransport = httpx.WSGITransport(app=fake)
            path.unlink(missing_ok=True)
        else:
            transport = httpx.MockTransport(_unreachable)
        session_links, sleeps = DictLinks(links), []
        channel = ml_channel(None, state_path, links=session_links, transport=transport, sleep=sleeps.append,
                             refresh_token=None if signed_in else FIRST_REFRESH)  # fmt: skip
        stack.callback(channel.http.close)
        with CASSETTE_VCR.use_cassette(path.name) as cassette:
            yield Session(channel, session_links, cassette, sleeps)
        if RECORDING:
            path.write_text(HEADER + path.read_text(encoding="utf-8"), encoding="utf-8")
        else:
            unplayed = len(cassette) - cassette.play_count
            assert cassette.all_played, f"{name}: the client skipped {unplayed} recorded request(s)"


def shirt_listing(fake: FakeMercadoLivre) -> None:
    """A legacy listing with two variations, live before syncctl came."""
    assert fake.add_item("Camiseta Básica", variations=[("CAM-P", {"SIZE": "P"}, 5), ("CAM-M", {"SIZE": "M"}, 3)],
                         price=Decimal("59.90")) == ITEM  # fmt: skip


LINKED = {"sku": {"CAM-P": f"{ITEM}/{VARIATION_P}"}}


# -- OAuth ------------------------------------------------------------------------------------


def test_first_refresh_is_a_form_post_then_the_bearer(tmp_path: Path) -> None:
    with scenario("oauth_first_refresh", signed_in=False, tmp=tmp_path) as session:
        session.channel.check_credentials()

    assert session.requests == [("POST", "/oauth/token"), ("GET", "/users/me")]
    token = session.cassette.requests[0]
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded" and "Authorization" not in token.headers
    assert session.body("POST", "/oauth/token").startswith("grant_type=refresh_token&refresh_token=")
    assert session.cassette.requests[1].headers["Authorization"] == FILTERED


# -- products, stock, prices --------------------------------------------------------------------


def test_linking_by_seller_sku_then_keeping_the_variation_in_step(tmp_path: Path) -> None:
    product = Product(sku="CAM-P", name="Camiseta P", parent_sku="CAM", parent_name="Camiseta Básica",
                      ean="7891234567895", brand="Marca Exemplo")  # fmt: skip
    with scenario("link_and_update_variation", shirt_listing, tmp=tmp_path) as session:
        session.channel.prepare_skus([product.sku])
        session.channel.push_product(product, session.channel.product_payload(product))

    assert session.links.by_kind["sku"] == {"CAM-P": f"{ITEM}/{VARIATION_P}"}
    assert session.requests == [
        ("GET", "/users/me"), ("GET", "/users/123456789/items/search"), ("GET", "/items"),
        ("PUT", f"/items/{ITEM}/variations/{VARIATION_P}"),
    ]  # fmt: skip
    assert session.body("PUT", f"/items/{ITEM}/variations/{VARIATION_P}") == {
        "attributes": [{"id": "GTIN", "value_name": "7891234567895"}]
    }


def test_stock_of_a_variation(tmp_path: Path) -> None:
    with scenario("push_stock_variation", shirt_listing, LINKED, tmp=tmp_path) as session:
        level = StockLevel("CAM-P", 12)
        session.channel.prepare_skus(["CAM-P"])
        session.channel.push_stock(level, session.channel.stock_payload(level))

    assert session.requests == [("GET", "/items"), ("GET", "/users/me"),
                                ("PUT", f"/items/{ITEM}/variations/{VARIATION_P}")]  # fmt: skip
    assert session.body("PUT", f"/items/{ITEM}/variations/{VARIATION_P}") == {"available_quantity": 12}


def test_price_then_a_price_discount(tmp_path: Path) -> None:
    price = EffectivePrice("CAM-P", Decimal("64.90"), Decimal("49.90"), T0 - timedelta(days=1), T0 + timedelta(days=5))
    with scenario("push_price_discount", shirt_listing, LINKED, tmp=tmp_path) as session:
        session.channel.prepare_skus(["CAM-P"])
        session.channel.push_price(price, session.channel.price_payload(price))

    promotions = f"/seller-promotions/items/{ITEM}"
    assert session.requests == [("GET", "/items"), ("PUT", f"/items/{ITEM}"), ("GET", promotions),
                                ("POST", promotions)]  # fmt: skip
    assert session.body("PUT", f"/items/{ITEM}") == {"price": 64.9}
    assert session.body("POST", promotions) == {
        "deal_price": 49.9, "start_date": "2026-11-26T09:00:00", "finish_date": "2026-12-01T09:00:00",
        "promotion_type": "PRICE_DISCOUNT",
    }  # fmt: skip


def _price_put_throttled(fake: FakeMercadoLivre) -> None:
    shirt_listing(fake)
    fake.faults.add(method="PUT", path_prefix="/items", status=429, headers={"Retry-After": "3"})


def test_a_429_waits_retry_after_then_goes_through(tmp_path: Path) -> None:
    with scenario("rate_limited_429", _price_put_throttled, LINKED, tmp=tmp_path) as session:
        session.channel.prepare_skus(["CAM-P"])
        price = EffectivePrice("CAM-P", Decimal("64.90"))
        session.channel.push_price(price, session.channel.price_payload(price))

    statuses = [response["status"]["code"] for response in session.cassette.responses]
    assert statuses == [200, 429, 200, 200]  # items, throttled PUT, its retry, promotions
    assert session.cassette.responses[1]["headers"]["retry-after"] == ["3"]
    assert session.sleeps == [3.0]


# -- orders, NF-e, tracking ---------------------------------------------------------------------


def _a_cart(fake: FakeMercadoLivre) -> None:
    shirt_listing(fake)
    cap = fake.add_item("Boné", sku="BONE")
    assert fake.add_order([(ITEM, VARIATION_P, 1, Decimal("59.90")), (cap, None, 1, Decimal("39.90"))]) == (
        PACK, [FIRST_ORDER, FIRST_ORDER + 1],
    )


def test_orders_search_by_hour_windows_then_the_pack_and_its_shipment(tmp_path: Path) -> None:
    with scenario("pull_orders_pack", _a_cart, tmp=tmp_path) as session:
        cursor = (T0 - timedelta(minutes=30)).isoformat()
        batches = list(session.channel.pull_orders(cursor, None))

    [order] = [order for batch in batches for order in batch.orders]
    assert order.channel_order_id == str(PACK) and len(order.lines) == 2
    assert batches[-1].cursor == T0.isoformat()
    search = next(r for r in session.cassette.requests if r.path == "/orders/search")
    query = dict(search.query)
    assert (query["order.date_last_updated.from"], query["order.date_last_updated.to"]) == (
        "2026-11-26T07:00:00.000-03:00", "2026-11-26T09:00:00.000-03:00",
    )  # from the cursor (11:30 UTC) less an hour of overlap, rounded down; to now (12:00 UTC)
    assert (query["sort"], query["limit"]) == ("date_asc", "50")
    # The page's pack read whole, its shipment (the address) for a new order, then a page
    # starting on the last order read: nothing past it, the end.
    assert session.requests == [
        ("GET", "/users/me"), ("GET", "/orders/search"), ("GET", f"/packs/{PACK}"),
        ("GET", f"/shipments/{SHIPMENT}"), ("GET", "/orders/search"),
    ]  # fmt: skip
    offsets = [dict(r.query)["offset"] for r in session.cassette.requests if r.path == "/orders/search"]
    assert offsets == ["0", "1"]


def _invoice_pending(fake: FakeMercadoLivre) -> None:
    _a_cart(fake)


def update(delivery: DeliveryStatus | None = None) -> OrderUpdate:
    return OrderUpdate(
        order_id=1, channel_order_id=str(PACK), status=OrderStatus.invoiced, lines=(), shipping_cost=Decimal("18.90"),
        invoice=Invoice(NFE_KEY, "1234", "1", T0, Decimal("118.70"), NFE_XML),
        shipment=Shipment(1, 1, "Jadlog", "JD123", "https://rastreio.example/JD123", shipped_at=T0,
                          delivery_status=delivery),
    )  # fmt: skip


def test_me2_nfe_import_unlocks_the_label(tmp_path: Path) -> None:
    links = {"shipment": {str(PACK): str(SHIPMENT)}}
    with scenario("nfe_import_me2", _invoice_pending, links, tmp=tmp_path) as session:
        session.channel.push_order_update(update(), "invoice", session.channel.order_update_payloads(update())["invoice"])

    invoice = f"/shipments/{SHIPMENT}/invoice_data"
    assert session.requests == [("GET", f"/shipments/{SHIPMENT}"), ("GET", invoice), ("POST", invoice)]
    posted = next(r for r in session.cassette.requests if r.method == "POST")
    assert posted.headers["Content-Type"] == "application/xml" and dict(posted.query) == {"siteId": "MLB"}
    assert session.body("POST", invoice) == NFE_XML


def _an_me1_order(fake: FakeMercadoLivre) -> None:
    shirt_listing(fake)
    fake.add_order([(ITEM, VARIATION_P, 1, Decimal("59.90"))], mode="me1", logistic_type="default")


def test_me1_tracking_goes_up_as_a_v2_seller_notification(tmp_path: Path) -> None:
    links = {"shipment": {str(FIRST_ORDER): str(SHIPMENT)}}
    me1 = OrderUpdate(**{**update(DeliveryStatus.in_transit).__dict__, "channel_order_id": str(FIRST_ORDER)})
    with scenario("me1_tracking", _an_me1_order, links, tmp=tmp_path) as session:
        payload = session.channel.order_update_payloads(me1)["tracking"]
        session.channel.push_order_update(me1, "tracking", payload)

    notify = f"/v2/shipments/{SHIPMENT}/seller_notifications"
    assert session.requests == [("GET", f"/shipments/{SHIPMENT}"), ("POST", notify)]
    assert session.body("POST", notify) == {
        "payload": {"comment": "Jadlog", "date": T0.isoformat()}, "status": "shipped", "substatus": None,
        "tracking_number": "JD123", "tracking_url": "https://rastreio.example/JD123",
    }  # fmt: skip


# -- SAC --------------------------------------------------------------------------------------------


def _a_buyer_asks(fake: FakeMercadoLivre) -> None:
    _a_cart(fake)
    fake.add_buyer_message(PACK, "Consegue enviar hoje?")


def test_a_buyers_message_comes_down_and_the_reply_goes_up(tmp_path: Path) -> None:
    with scenario("message_and_reply", _a_buyer_asks, tmp=tmp_path) as session:
        [batch] = list(session.channel.pull_tickets(None, None))
        session.channel.send_reply(f"pack:{PACK}", TicketMessage("out", "Sim, sai hoje!", T0, id=1))

    [ticket] = batch.tickets
    assert [m.body for m in ticket.messages] == ["Consegue enviar hoje?"]
    conversation = f"/messages/packs/{PACK}/sellers/123456789"
    assert session.requests == [
        ("GET", "/users/me"), ("GET", "/messages/unread"), ("GET", conversation),
        ("GET", "/post-purchase/v1/claims/search"), ("GET", conversation), ("POST", conversation),
    ]  # fmt: skip
    reads = [dict(r.query) for r in session.cassette.requests if r.path == conversation and r.method == "GET"]
    assert all(query["mark_as_read"] == "false" and query["tag"] == "post_sale" for query in reads)
    assert session.body("POST", conversation)["to"] == {"user_id": "987654321"}


def _a_listing_ml_refuses(fake: FakeMercadoLivre) -> None:
    shirt_listing(fake)
    fake.items[ITEM]["status"] = "closed"


def test_a_closed_listing_refuses_and_the_item_fails_alone(tmp_path: Path) -> None:
    with scenario("closed_item_400", _a_listing_ml_refuses, LINKED, tmp=tmp_path) as session:
        session.channel.prepare_skus(["CAM-P"])
        with pytest.raises(RecordRejected, match="HTTP 400 from Mercado Livre: Item MLB4000000001 is closed"):
            session.channel.push_price(EffectivePrice("CAM-P", Decimal("64.90")), session.channel.price_payload(
                EffectivePrice("CAM-P", Decimal("64.90"))))

    assert [response["status"]["code"] for response in session.cassette.responses][-1] == 400


# -- the files themselves ---------------------------------------------------------------------------


def test_every_cassette_is_marked_as_built_and_keeps_no_credentials() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) == 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.startswith(HEADER), f"{path.name} lacks the 'not a live capture' header"
        assert CLIENT_SECRET not in text and SESSION_TOKEN not in text and FIRST_REFRESH not in text, path.name
        assert "APP_USR-" not in text.replace(f"APP_USR-{FILTERED}", ""), path.name

