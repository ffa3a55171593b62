"""The generic core changes the Mercado Livre channel needed, tested on their own:
an HttpClient Auth installed after construction, bodies already encoded, a lock that
waits, NothingToSend in the push engine, and a cursor that covers every batch read
before it. (Exactly-once replies and ERP-created tickets in sync-sac are shown end to
end in test_ml_jobs.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import T0, Shop

from syncctl import locks
from syncctl.channels.base import OrderBatch
from syncctl.channels.vtex import VtexChannel
from syncctl.domain import Order, OrderLine, OrderStatus, StockLevel
from syncctl.errors import AuthError, NothingToSend, TransientError
from syncctl.http import HttpClient
from syncctl.state import StateStore


class Bearer:
    """An http.Auth that hands out bearer-1, bearer-2, ... one per refresh."""

    def __init__(self) -> None:
        self.number = 1
        self.rejected: list[Mapping[str, str]] = []

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer bearer-{self.number}"}

    def refresh(self, rejected: Mapping[str, str]) -> None:
        self.rejected.append(dict(rejected))
        self.number += 1


def client(handler: Any, **kwargs: Any) -> HttpClient:
    return HttpClient("Test", base_url="https://api.test", transport=httpx.MockTransport(handler),
                      sleep=lambda _s: None, **kwargs)  # fmt: skip


# -- HttpClient: an Auth installed later; bodies already encoded ---------------------------------------


def test_an_auth_installed_later_signs_each_attempt_and_renews_once_on_401() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(401 if len(seen) == 1 else 200, json={})

    http, auth = client(handler), Bearer()
    http.use_auth(auth)
    http.request("GET", "/me")

    assert seen == ["Bearer bearer-1", "Bearer bearer-2"]
    assert auth.rejected == [{"Authorization": "Bearer bearer-1"}]  # what the refused attempt carried


def test_a_second_401_after_renewing_is_an_auth_error() -> None:
    http, auth = client(lambda request: httpx.Response(401, json={"message": "invalid_token"})), Bearer()
    http.use_auth(auth)
    with pytest.raises(AuthError, match="refused the credentials"):
        http.request("GET", "/me")
    assert auth.number == 2


def test_an_unauthenticated_request_carries_no_auth_and_is_not_renewed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={})

    http, auth = client(handler), Bearer()
    http.use_auth(auth)
    with pytest.raises(AuthError):
        http.request("POST", "/oauth/token", content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"},
                     authenticated=False)  # fmt: skip
    [request] = seen
    assert "Authorization" not in request.headers and auth.rejected == []
    assert (request.content, request.headers["Content-Type"]) == (b"a=1", "application/x-www-form-urlencoded")


def test_json_and_content_do_not_mix() -> None:
    with pytest.raises(ValueError, match="not both"):
        client(lambda request: httpx.Response(200)).request("POST", "/x", json={}, content=b"{}")


# -- a lock that waits --------------------------------------------------------------------------------


def test_wait_for_takes_the_lock_once_its_holder_lets_go(tmp_path: Path) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locks.hold(tmp_path, "oauth-x"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        release.set()  # the holder finishes while we wait
        thread.join(5)

    with locks.wait_for(tmp_path, "oauth-x", 10, sleep=sleep), pytest.raises(locks.Locked):  # now ours
        with locks.hold(tmp_path, "oauth-x"):
            pass
    assert polls


def test_wait_for_gives_up_after_its_timeout(tmp_path: Path) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with locks.hold(tmp_path, "oauth-x"), pytest.raises(TransientError, match="oauth-x stayed busy for 1 s"):
        with locks.wait_for(tmp_path, "oauth-x", 1, sleep=sleep, clock=lambda: now[0]):
            pass
    assert now[0] >= 1


# -- the push engine and NothingToSend ----------------------------------------------------------------


@pytest.fixture
def not_for_the_mug(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """VTEX's stock push, except that the channel has nothing to take for the mug."""
    pushed: list[str] = []
    original = VtexChannel.push_stock

    def push_stock(self: VtexChannel, level: StockLevel, payload: dict[str, Any]) -> None:
        pushed.append(level.sku)
        if level.sku == "CANECA-300":
            raise NothingToSend("the channel keeps this one's stock itself")
        original(self, level, payload)

    monkeypatch.setattr(VtexChannel, "push_stock", push_stock)
    shop.run("push-products")
    return pushed


def test_nothing_to_send_is_noted_once_not_counted_sent_and_never_reasserted(shop: Shop, not_for_the_mug: list[str]) -> None:
    [first] = shop.run("push-stock")
    shop.clock.advance(hours=30)  # past resend_after: every item is due again
    [due] = shop.run("push-stock")

    assert (first.sent, first.skipped, first.failed, first.outcome.value) == (4, 1, 0, "ok")
    assert first.notes == ["CANECA-300: the channel keeps this one's stock itself"]
    assert (due.sent, due.skipped, due.unchanged, due.notes) == (4, 0, 1, [])
    assert not_for_the_mug.count("CANECA-300") == 1
    pushed = StateStore(shop.root / "state.db").pushed("vtex-main", "stock", ["CANECA-300"])["CANECA-300"]
    assert pushed.hash.startswith("nothing-sent:") and pushed.value is None


def test_nothing_to_send_is_asked_again_when_the_payload_changes(shop: Shop, not_for_the_mug: list[str]) -> None:
    shop.run("push-stock")
    shop.erp_insert("inventories", [{"warehouse": "CD-SP", "sku": "CANECA-300", "quantity": 7, "status": "approved",
                                     "approved_at": T0, "updated_at": T0}])  # fmt: skip
    [changed] = shop.run("push-stock")

    assert (changed.skipped, not_for_the_mug.count("CANECA-300")) == (1, 2)


# -- pull-orders: a cursor covers every batch before it --------------------------------------------------


def test_the_cursor_stays_when_an_earlier_batch_of_the_run_failed(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    def order(key: str, sku: str) -> Order:
        return Order(key, OrderStatus.approved, T0, (OrderLine(sku, 1, Decimal("10.00"), "i"),), Decimal("10.00"))

    def pull_orders(self: VtexChannel, cursor: str | None, since: Any) -> Iterator[OrderBatch]:
        yield OrderBatch(orders=[order("A", "")])  # no ERP sku: it fails
        yield OrderBatch(orders=[order("B", "BONE-AZUL")], cursor="after-b")

    monkeypatch.setattr(VtexChannel, "pull_orders", pull_orders)
    [result] = shop.run("pull-orders")

    assert (result.sent, result.failed) == (1, 1)
    assert StateStore(shop.root / "state.db").cursor("vtex-main", "pull-orders") is None


def test_the_state_knows_its_path_so_locks_can_live_beside_it(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "state.db").path == tmp_path / "state.db"
