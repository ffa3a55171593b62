"""The channel contract, for VTEX against its fake (syncctl/sandbox/vtex.py)."""

from __future__ import annotations

from decimal import Decimal

import httpx
from contract.suite import ChannelContract

from syncctl.channels.base import Channel
from syncctl.channels.vtex import FEED_STATUSES, VtexChannel
from syncctl.sandbox.vtex import FakeVtex

ACCOUNT = "demostore"
BASE_URL = "http://vtex.test"
CREDENTIALS = {"app_key": "vtexappkey-demostore-TEST", "app_token": "app-token-for-tests"}
OPTIONS = {"account": ACCOUNT, "warehouse_id": "1_1", "category_path": "Roupas/Camisetas"}
# Reads made with a POST: they change nothing on the store.
READ_POSTS = frozenset({"/api/catalog_system/pub/sku/stockkeepingunitidsbyrefids"})


class TestVtexContract(ChannelContract):
    channel_type = VtexChannel

    def make_fake(self) -> FakeVtex:
        return FakeVtex(
            account=ACCOUNT, app_key=CREDENTIALS["app_key"], app_token=CREDENTIALS["app_token"],
            clock=lambda: self.now, sleep=lambda _seconds: None,
        )  # fmt: skip

    def make_channel(self, fake: FakeVtex) -> Channel:
        return self.build(
            transport=httpx.WSGITransport(app=fake), base_url=BASE_URL, credentials=CREDENTIALS, options=OPTIONS
        )

    def write_requests(self, fake: FakeVtex) -> list[str]:
        return [
            f"{record.method} {record.path}"
            for record in fake.requests_log
            if record.method != "GET" and record.path not in READ_POSTS
        ]

    def stock_of(self, fake: FakeVtex, sku: str) -> int | None:
        balance = fake.inventory.get((self._sku_id(fake, sku), OPTIONS["warehouse_id"]))
        return None if balance is None else balance["totalQuantity"]

    def price_of(self, fake: FakeVtex, sku: str) -> Decimal | None:
        price = fake.prices.get(self._sku_id(fake, sku))
        return None if price is None else price["listPrice"]

    def add_ready_order(self, fake: FakeVtex, sku: str, quantity: int, unit_price: Decimal) -> str:
        if fake.feed_config is None:  # events exist only for a configured feed
            fake.configure_feed(FEED_STATUSES)
        cents = int(unit_price * 100)
        return fake.add_order(items=[(self._sku_id(fake, sku), sku, sku, quantity, cents)], shipping_cents=900)

    def invoice_number_of(self, fake: FakeVtex, channel_order_id: str) -> str | None:
        packages = fake.orders[channel_order_id]["packageAttachment"]["packages"]
        return packages[-1]["invoiceNumber"] if packages else None

    def let_time_pass(self, fake: FakeVtex) -> None:
        fake.advance(3600)  # far past the feed's visibility timeout

    @staticmethod
    def _sku_id(fake: FakeVtex, sku: str) -> str:
        return next(str(sku_id) for sku_id, fields in fake.skus.items() if fields["RefId"] == sku)
