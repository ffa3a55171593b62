"""The channel contract, for Mercado Livre against its fake (syncctl/sandbox/mercadolivre.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from contract.suite import ChannelContract

from syncctl.channels.base import Channel, ChannelContext
from syncctl.channels.mercadolivre import MercadoLivreChannel, MlCredentials, MlOptions
from syncctl.config import ChannelSettings
from syncctl.domain import Product
from syncctl.http import HttpClient
from syncctl.sandbox.mercadolivre import CLIENT_ID, CLIENT_SECRET, FakeMercadoLivre
from syncctl.state import StateStore

BASE_URL = "http://ml.test"
# Reads and token grants: they change nothing the seller sells.
NOT_WRITES = ("/oauth/token",)


class TestMercadoLivreContract(ChannelContract):
    channel_type = MercadoLivreChannel

    @pytest.fixture(autouse=True)
    def _state_dir(self, tmp_path: Path) -> None:
        self.state = StateStore(tmp_path / "state.db")

    def make_fake(self) -> FakeMercadoLivre:
        return FakeMercadoLivre(clock=lambda: self.now, sleep=lambda _seconds: None)

    def make_channel(self, fake: FakeMercadoLivre) -> Channel:
        # Built by hand rather than with self.build: an OAuth channel needs the state file.
        settings = ChannelSettings(
            name="ml-contract", type="mercadolivre", base_url=BASE_URL,
            credentials=MlCredentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                      refresh_token=fake.issue_refresh_token()),
            options=MlOptions(),
        )  # fmt: skip
        http = HttpClient("Mercado Livre", base_url=BASE_URL, transport=httpx.WSGITransport(app=fake),
                          sleep=lambda _seconds: None)  # fmt: skip
        context = ChannelContext(
            settings=settings, http=http, links=self.links, now=lambda: self.now,
            known_orders=lambda ids: {order_id for order_id in ids if order_id in self.imported}, state=self.state,
        )  # fmt: skip
        return MercadoLivreChannel(context)

    def list_product(self, fake: FakeMercadoLivre, channel: Channel, product: Product) -> None:
        """Listings are created on Mercado Livre (pictures, category, price): syncctl links them."""
        fake.add_item(product.parent_name or product.name, sku=product.sku, family_name=product.parent_name)
        super().list_product(fake, channel, product)

    def write_requests(self, fake: FakeMercadoLivre) -> list[str]:
        return [
            f"{record.method} {record.path}"
            for record in fake.requests_log
            if record.method != "GET" and record.path not in NOT_WRITES
        ]

    def stock_of(self, fake: FakeMercadoLivre, sku: str) -> int | None:
        return self._item(fake, sku)["available_quantity"]

    def price_of(self, fake: FakeMercadoLivre, sku: str) -> Decimal | None:
        return self._item(fake, sku)["price"]

    def add_ready_order(self, fake: FakeMercadoLivre, sku: str, quantity: int, unit_price: Decimal) -> str:
        # ME1 (the seller's own carrier): the NF-e goes to the pack, tracking to the shipment.
        item_id = self._item(fake, sku)["id"]
        key, _ = fake.add_order([(item_id, None, quantity, unit_price)], mode="me1", logistic_type="default")
        return str(key)

    def invoice_number_of(self, fake: FakeMercadoLivre, channel_order_id: str) -> str | None:
        """The number inside the access key of the NF-e attached to the pack (its file name)."""
        documents = fake.fiscal_documents.get(int(channel_order_id)) or []
        names = [doc["file_name"] for doc in documents if doc["file_name"].startswith("NFe")]
        return str(int(names[-1][3:47][25:34])) if names else None

    def let_time_pass(self, fake: FakeMercadoLivre) -> None:
        fake.advance(3600)

    def test_product_push_is_idempotent(self, fake: Any, channel: Channel) -> None:
        fake.add_item("Camiseta Contrato", sku=self.sample_product().sku)
        super().test_product_push_is_idempotent(fake, channel)

    @staticmethod
    def _item(fake: FakeMercadoLivre, sku: str) -> dict[str, Any]:
        return next(item for item in fake.items.values()
                    if any(a["id"] == "SELLER_SKU" and a["value_name"] == sku for a in item["attributes"]))  # fmt: skip
