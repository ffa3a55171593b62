"""Mercado Livre end to end: embedded ERP -> syncctl's jobs -> the fake ML API (in
process), beside the shop's VTEX. The issue's acceptance list, each as a test."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from conftest import ENV, ML_ENV, T0, Shop
from typer.testing import CliRunner

from syncctl.cli import app
from syncctl.demo import mercadolivre_now, seed_mercadolivre
from syncctl.jobs.result import Outcome, combine_exit_codes
from syncctl.sandbox.mercadolivre import CLIENT_ID, SELLER_ID, FakeMercadoLivre
from syncctl.sandbox.server import serve
from syncctl.state import StateStore

ML = "ml-main"
ML_BLOCK = """\
  ml-main:
    type: mercadolivre
    auto: true
    base_url: http://ml.test
    credentials:
      client_id: ${ML_CLIENT_ID}
      client_secret: ${ML_CLIENT_SECRET}
      refresh_token: ${ML_REFRESH_TOKEN}
    stock:
      from_warehouses: [CD-SP, LOJA-01]
      debit_warehouse: CD-SP
"""
NFE_KEY = "35261112345678000199550010000012341000012343"
runner = CliRunner()


class Seller:
    """The shop's Mercado Livre: the fake, its live listings (as the demo seeds them)."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.fake = FakeMercadoLivre(client_id=CLIENT_ID, client_secret=ML_ENV["ML_CLIENT_SECRET"], clock=shop.clock,
                                     sleep=lambda _s: None)  # fmt: skip
        self.fake.issue_refresh_token(token=ML_ENV["ML_REFRESH_TOKEN"])
        self.listings = seed_mercadolivre(self.fake)
        self.app: Callable[..., Iterable[bytes]] = self.fake
        shop.carrier_apps[ML] = lambda environ, start: self.app(environ, start)  # the transport for ml-main
        shop.extra = ML_BLOCK
        shop.write_config()

    def run(self, job: str, **options: Any) -> list[Any]:
        return self.shop.run(job, [ML], **options)

    def sell(self, *lines: tuple[str, int, str], **order: Any) -> tuple[str, list[int]]:
        """A purchase of (sku, quantity, unit price) lines on Mercado Livre."""
        key, ids = self.fake.add_order([(self.listings[sku], None, qty, Decimal(price)) for sku, qty, price in lines],
                                       **order)  # fmt: skip
        return str(key), ids

    def erp_order(self, key: str) -> dict[str, Any]:
        [row] = self.shop.erp_rows("orders", channel=ML, channel_order_id=key)
        return row

    def writes(self, prefix: str = "/") -> list[tuple[str, str, Any]]:
        return [(r.method, r.path, r.body) for r in self.fake.requests_log
                if r.method != "GET" and r.path.startswith(prefix) and r.path != "/oauth/token"]  # fmt: skip


@pytest.fixture
def ml(shop: Shop) -> Seller:
    return Seller(shop)


def only(results: list[Any]) -> Any:
    [result] = results
    return result


# -- OAuth ---------------------------------------------------------------------------------------


def test_an_expired_access_token_mid_run_is_refreshed_and_the_run_completes(ml: Seller) -> None:
    calls = 0

    def expires_on_the_tenth_call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        nonlocal calls
        calls += 1
        if calls == 10:
            ml.fake.expire_access_tokens()  # ML voids the token while the run goes on
        return ml.fake(environ, start_response)

    ml.app = expires_on_the_tenth_call
    results = [r for r in ml.shop.run("run-all") if r.channel == ML]

    assert [r.outcome for r in results] == [Outcome.ok] * 6
    assert [r.status for r in ml.fake.requests_log].count(401) == 1
    assert len(ml.fake.refresh_grants()) == 2
    assert {r["sku"]: r["stock"] for r in mercadolivre_now(ml.fake, [])["listings"]} == {
        "CAM-BASICA-P": 13, "CAM-BASICA-M": 25, "CAM-BASICA-G": 4, "BONE-AZUL": 12, "CANECA-300": 5,
    }  # fmt: skip


def test_a_refused_refresh_token_is_exit_3_with_how_to_reauthorize(ml: Seller) -> None:
    ml.fake.issue_refresh_token()  # the config's token is no longer the latest: spent
    results = ml.run("push-stock")

    assert only(results).outcome is Outcome.auth and combine_exit_codes([r.exit_code for r in results]) == 3
    assert "syncctl channel auth ml-main --code CODE" in only(results).message
    assert ML_ENV["ML_REFRESH_TOKEN"] not in only(results).message


# -- run-all across channels ----------------------------------------------------------------------


def vtex_stock(shop: Shop, ref: str) -> int:
    return shop.fake.inventory[(shop.vtex_sku_id(ref), "1_1")]["totalQuantity"]


def test_run_all_pulls_orders_from_every_channel_before_pushing_stock_to_any(ml: Seller) -> None:
    ml.shop.run("run-all")
    before = vtex_stock(ml.shop, "BONE-AZUL")
    ml.sell(("BONE-AZUL", 2, "59.90"))
    ml.shop.clock.advance(minutes=1)

    results = ml.shop.run("run-all")

    assert [(r.channel, r.job) for r in results][:2] == [("vtex-main", "pull-orders"), (ML, "pull-orders")]
    assert vtex_stock(ml.shop, "BONE-AZUL") == before - 2  # the sale on ML, in VTEX's stock at once


def test_a_channel_refused_while_pulling_orders_runs_nothing_else_and_the_others_go_on(ml: Seller) -> None:
    ml.fake.issue_refresh_token()  # the config's token is no longer the latest: spent
    results = ml.shop.run("run-all")

    on_ml = [r for r in results if r.channel == ML]
    assert [r.outcome for r in on_ml] == [Outcome.auth] * len(on_ml) and len(on_ml) == 6
    assert all(r.message.startswith("not run: ") for r in on_ml[1:])
    assert len(ml.fake.refresh_grants()) == 1  # asked once, not once per job
    assert {r.outcome for r in results if r.channel == "vtex-main"} == {Outcome.ok}


def test_channel_auth_stores_the_first_pair_from_a_code_read_from_stdin(ml: Seller) -> None:
    ml.shop.config_path.write_text(ml.shop.config_path.read_text().replace(
        "      refresh_token: ${ML_REFRESH_TOKEN}\n",
        f"      refresh_token: ${{ML_REFRESH_TOKEN}}\n    options: {{redirect_uri: \"{ml.fake.redirect_uri}\"}}\n",
    ))  # fmt: skip
    code = ml.fake.issue_code()
    with serve(ml.fake) as server:
        ml.shop.config_path.write_text(ml.shop.config_path.read_text().replace("http://ml.test", server.url))
        result = runner.invoke(app, ["--config", str(ml.shop.config_path), "channel", "auth", ML, "--code", "-"],
                               input=f"{code}\n", env=ENV)  # fmt: skip
        vtex = runner.invoke(app, ["--config", str(ml.shop.config_path), "channel", "auth", "vtex-main"], env=ENV)

    assert result.exit_code == 0, result.output
    assert f"ml-main: token pair stored for Mercado Livre user {SELLER_ID}" in result.output
    assert code not in result.output and ml.fake.token_requests[-1]["code"] == code
    assert StateStore(ml.shop.root / "state.db").token(f"channel:{ML}", "oauth") is not None
    assert vtex.exit_code == 2 and "authenticates with static keys" in vtex.output


# -- products, stock, prices ---------------------------------------------------------------------


def test_stock_and_price_pushes_reach_ml_with_the_documented_payloads_and_full_is_skipped(ml: Seller) -> None:
    ml.run("push-products")
    stock = only(ml.run("push-stock"))
    prices = only(ml.run("push-prices"))

    assert (stock.sent, stock.skipped, stock.failed) == (4, 1, 0)
    assert stock.notes == [
        f"CANECA-300: {ml.listings['CANECA-300']} is a Full listing: its stock is what sits in Mercado Livre's "
        "warehouse, not sent"
    ]
    cap, promoted = ml.listings["BONE-AZUL"], ml.listings["CAM-BASICA-P"]
    stock_puts = {path: body for method, path, body in ml.writes() if body and "available_quantity" in body}
    assert stock_puts[f"/items/{cap}"] == {"available_quantity": 12}  # CD-SP 12 (+ LOJA-01 none)
    assert f"/items/{ml.listings['CANECA-300']}" not in stock_puts
    assert (prices.sent, prices.failed) == (5, 0)
    assert ("PUT", f"/items/{promoted}", {"price": Decimal("99.9")}) in ml.writes()
    [(_, _, promotion)] = ml.writes("/seller-promotions")
    assert promotion["promotion_type"] == "PRICE_DISCOUNT" and promotion["deal_price"] == Decimal("79.9")
    assert ml.fake.running_deal_price(promoted) == Decimal("79.90")

    again = only(ml.run("push-stock"))
    assert (again.sent, again.skipped, again.unchanged, again.notes) == (0, 0, 5, [])  # the Full note once


def test_products_are_linked_to_live_listings_not_duplicated(ml: Seller) -> None:
    result = only(ml.run("push-products"))

    assert (result.sent, result.failed) == (5, 0)
    assert not [write for write in ml.writes() if write[0] == "POST"]
    assert len(ml.fake.items) == 5


# -- orders --------------------------------------------------------------------------------------


def test_orders_across_three_pages_with_arrivals_between_pages_are_imported_once(ml: Seller) -> None:
    keys = [ml.sell(("BONE-AZUL", 1, "59.90"))[0] for _ in range(105)]
    cart, _ = ml.sell(("CAM-BASICA-M", 2, "99.90"), ("BONE-AZUL", 1, "59.90"))
    arrived: list[str] = []

    def a_sale_between_pages(offset: int) -> None:
        if offset and len(arrived) < 2:
            arrived.append(ml.sell(("CAM-BASICA-G", 1, "109.90"))[0])

    ml.fake.after_orders_page = a_sale_between_pages
    first = only(ml.run("pull-orders"))
    ml.fake.after_orders_page = None
    second = only(ml.run("pull-orders"))

    offsets = [int(r.query["offset"]) for r in ml.fake.requests_log if r.path == "/orders/search" and r.query["offset"] != "0"]
    assert len(offsets) >= 3  # three pages and more, in the window that holds the orders
    imported = ml.shop.erp_sql(f"SELECT channel_order_id FROM orders WHERE channel = '{ML}'")
    assert sorted(key for (key,) in imported) == sorted([*keys, cart, *arrived])
    assert (first.sent, first.failed, second.sent, second.unchanged) == (108, 0, 0, 0)
    order = ml.erp_order(cart)
    items = ml.shop.erp_rows("order_items", order_id=order["id"])
    assert sorted((i["sku"], i["quantity"]) for i in items) == [("BONE-AZUL", 1), ("CAM-BASICA-M", 2)]
    assert order["total"] == Decimal("278.60") and order["shipping_cost"] == Decimal("18.90")
    debits = ml.shop.erp_rows("stock_moves", order_id=order["id"])
    assert sorted((d["sku"], d["delta"]) for d in debits) == [("BONE-AZUL", -1), ("CAM-BASICA-M", -2)]


def test_a_cancellation_after_the_erp_invoiced_is_flagged_in_status(ml: Seller) -> None:
    key, ids = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.run("pull-orders")
    order = ml.erp_order(key)
    ml.shop.erp_insert("invoices", [{"order_id": order["id"], "nfe_key": NFE_KEY, "number": "1234", "series": "1",
                                     "issued_at": T0, "total": order["total"], "xml": "<nfeProc/>", "updated_at": T0}])  # fmt: skip
    ml.fake.set_order_status(ids[0], "cancelled")

    result = only(ml.run("pull-orders"))
    status = runner.invoke(app, ["--config", str(ml.shop.config_path), "--json", "status"], env=ENV)

    assert (result.sent, ml.erp_order(key)["status"]) == (1, "canceled")
    assert not ml.shop.erp_rows("stock_moves", order_id=order["id"], reason="cancel")  # not silently undone
    notices = json.loads(status.output)["notices"]
    assert [(n["channel"], n["key"]) for n in notices] == [(ML, key)]
    assert "after invoicing" in notices[0]["message"]


# -- NF-e ----------------------------------------------------------------------------------------


def test_the_nfe_unlocks_the_me2_label_and_tracking_is_noted_once(ml: Seller) -> None:
    key, ids = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.run("pull-orders")
    order = ml.erp_order(key)
    xml = f'<nfeProc><NFe><infNFe Id="NFe{NFE_KEY}"/></NFe></nfeProc>'
    ml.shop.erp_insert("invoices", [{"order_id": order["id"], "nfe_key": NFE_KEY, "number": "1234", "series": "1",
                                     "issued_at": T0, "total": order["total"], "xml": xml, "updated_at": T0}])  # fmt: skip
    ml.shop.erp_insert("shipments", [{"order_id": order["id"], "carrier": "mercadoenvios", "tracking_code": "ML123",
                                      "tracking_url": None, "shipped_at": T0, "delivery_status": None,
                                      "delivered_at": None, "updated_at": T0}])  # fmt: skip

    first = only(ml.run("push-invoices"))
    again = only(ml.run("push-invoices"))

    shipment = ml.fake.orders[ids[0]]["shipping"]["id"]
    assert ml.fake.shipments[shipment]["substatus"] == "ready_to_print"
    assert (first.sent, first.skipped, first.failed) == (1, 1, 0)
    assert first.notes == [f"{key}:tracking: a Mercado Envios (ME2) shipment: Mercado Livre tracks it itself, nothing to push"]
    assert (again.sent, again.skipped, again.unchanged, again.notes) == (0, 0, 2, [])


# -- SAC -----------------------------------------------------------------------------------------


def ticket_messages(ml: Seller, channel_ticket_id: str) -> list[dict[str, Any]]:
    [ticket] = ml.shop.erp_rows("tickets", channel=ML, channel_ticket_id=channel_ticket_id)
    return ml.shop.erp_rows("ticket_messages", ticket_id=ticket["id"])


def agent_replies(ml: Seller, channel_ticket_id: str, body: str, written_at: datetime = T0) -> None:
    [ticket] = ml.shop.erp_rows("tickets", channel=ML, channel_ticket_id=channel_ticket_id)
    ml.shop.erp_insert("ticket_messages", [{"ticket_id": ticket["id"], "direction": "out", "author": "Ana",
                                            "body": body, "created_at": written_at}])  # fmt: skip


def seller_messages(ml: Seller, key: str) -> list[str]:
    return [m["text"] for m in ml.fake.conversations[int(key)]["messages"] if m["from"]["user_id"] == SELLER_ID]


def test_a_buyer_message_arrives_as_a_ticket_and_the_agents_reply_is_sent_once(ml: Seller) -> None:
    key, _ = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.run("pull-orders")
    ml.fake.add_buyer_message(int(key), "Chega até sexta?")

    pulled = only(ml.run("sync-sac"))
    agent_replies(ml, f"pack:{key}", "Chega sim!")
    replied = only(ml.run("sync-sac"))
    quiet = only(ml.run("sync-sac"))

    [ticket] = ml.shop.erp_rows("tickets", channel=ML)
    assert (ticket["channel_ticket_id"], ticket["order_id"]) == (f"pack:{key}", ml.erp_order(key)["id"])
    assert [(m["direction"], m["body"]) for m in ticket_messages(ml, f"pack:{key}")] == [
        ("in", "Chega até sexta?"), ("out", "Chega sim!"),
    ]
    assert (pulled.sent, replied.sent, quiet.sent) == (1, 1, 0)
    assert seller_messages(ml, key) == ["Chega sim!"]


def test_a_reply_whose_answer_was_lost_is_found_on_ml_not_sent_twice(ml: Seller) -> None:
    key, _ = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.fake.add_buyer_message(int(key), "Oi?")
    ml.run("sync-sac")
    agent_replies(ml, f"pack:{key}", "Olá!")
    # ML stores the message, and the answer never reaches syncctl.
    ml.fake.faults.add(method="POST", path_prefix="/messages/packs", status=502, apply_first=True)

    cut_short = only(ml.run("sync-sac"))
    recovered = only(ml.run("sync-sac"))

    assert cut_short.outcome is Outcome.unavailable
    assert recovered.sent == 1 and seller_messages(ml, key) == ["Olá!"]
    [out] = [m for m in ticket_messages(ml, f"pack:{key}") if m["direction"] == "out"]
    assert out["channel_message_id"] == ml.fake.conversations[int(key)]["messages"][-1]["id"]


def test_after_a_lost_state_file_a_reply_repeating_one_already_sent_is_sent_too(ml: Seller) -> None:
    key, _ = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.fake.add_buyer_message(int(key), "Oi?")
    ml.run("sync-sac")
    agent_replies(ml, f"pack:{key}", "Ok!")
    ml.run("sync-sac")
    (ml.shop.root / "state.db").unlink()  # and with it every record of what was sent
    ml.fake.issue_refresh_token(token=ML_ENV["ML_REFRESH_TOKEN"])  # authorized again, as a person would
    ml.shop.clock.advance(minutes=2)
    agent_replies(ml, f"pack:{key}", "Ok!", written_at=ml.shop.clock())  # the agent says it again

    result = only(ml.run("sync-sac"))

    assert (result.outcome, result.sent) == (Outcome.ok, 1)
    assert seller_messages(ml, key) == ["Ok!", "Ok!"]
    replies = [m["channel_message_id"] for m in ticket_messages(ml, f"pack:{key}") if m["direction"] == "out"]
    assert len(set(replies)) == 2 and None not in replies


def test_an_erp_created_ticket_is_never_sent(ml: Seller) -> None:
    key, _ = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.shop.erp_insert("tickets", [{"channel": ML, "channel_ticket_id": f"pack:{key}", "subject": "Ligação do cliente",
                                    "status": "open", "opened_at": T0, "updated_at": T0}])  # fmt: skip
    agent_replies(ml, f"pack:{key}", "Retorno da ligação")

    result = only(ml.run("sync-sac"))

    assert (result.sent, result.skipped) == (0, 1)
    assert result.notes == [f"pack:{key}:{ticket_messages(ml, f'pack:{key}')[0]['id']}: not sent: "
                            f"ticket pack:{key} did not come down from {ML}"]  # fmt: skip
    assert ml.writes("/messages") == []


def test_a_reply_moderation_refuses_is_flagged_and_not_resent(ml: Seller) -> None:
    key, _ = ml.sell(("BONE-AZUL", 1, "59.90"))
    ml.fake.add_buyer_message(int(key), "Tem outro canal?")
    ml.run("sync-sac")
    agent_replies(ml, f"pack:{key}", "Fale no www.loja.example")

    first = only(ml.run("sync-sac"))
    second = only(ml.run("sync-sac"))

    notices = StateStore(ml.shop.root / "state.db").notices(ML)
    assert (first.sent, second.sent) == (1, 0) and len(seller_messages(ml, key)) == 1
    assert [(n[1], "not delivered" in n[3], "SOCIAL_NETWORK_LINK" in n[3]) for n in notices] == [("sync-sac", True, True)]
