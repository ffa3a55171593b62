"""What a channel adapter is: its capabilities as data, and the calls jobs make.

A channel knows its API and nothing about the ERP or the state file, except the
id links (`ChannelContext.links`) it needs to translate ids. Payload builders are
pure (no I/O): jobs hash what they return and send only what changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from syncctl.config import ChannelSettings
from syncctl.domain import (
    EffectivePrice,
    Feature,
    ImportOutcome,
    Order,
    OrderStatus,
    OrderUpdate,
    Product,
    StockLevel,
    Ticket,
    TicketMessage,
)
from syncctl.errors import Unsupported
from syncctl.http import HttpClient, Limits

T = TypeVar("T")
R = TypeVar("R")


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Links(Protocol):
    """The Binder as a channel sees it: ERP id <-> channel id, per kind ("sku", "product", ...)."""

    def channel_ids(self, kind: str, erp_ids: list[str]) -> dict[str, str]: ...

    def erp_ids(self, kind: str, channel_ids: list[str]) -> dict[str, str]: ...

    def link(self, kind: str, erp_id: str, channel_id: str) -> None: ...


@dataclass
class ChannelContext:
    settings: ChannelSettings
    http: HttpClient
    links: Links
    now: Callable[[], datetime]  # aware UTC
    known_orders: Callable[[list[str]], set[str]]  # which channel order ids the ERP already has
    state: Any = None  # StateStore, for tokens the channel rotates (OAuth channels need it)
    # The status the ERP holds for each of these channel order ids it has: lets an adapter
    # leave unread an order whose event brings no news. None: not wired (every order is read).
    order_statuses: Callable[[list[str]], dict[str, OrderStatus]] | None = None


@dataclass
class OrderBatch:
    """Orders read from the channel, to be imported before `acknowledge` is called.

    `cursor` is what the job saves once every order of the batch is in the ERP (None:
    leave the cursor as it is); `ack` is the channel's own bookkeeping (feed handles,
    queue ids) that `acknowledge` uses. `unreadable` holds the orders the channel
    answered but the adapter could not read (channel order id -> why): the job records
    them as failed, keeps the cursor, and passes them to `acknowledge` as failed.
    """

    orders: list[Order]
    cursor: str | None = None
    ack: Any = None
    notes: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class TicketBatch:
    tickets: list[Ticket]
    cursor: str | None = None


class Channel:
    """Base of every channel adapter. Subclasses set the class attributes and
    implement the calls for the features they list in `supported`.

    `workers` is the job's thread pool (the channel's concurrency), lent for the length of
    a job whose reads may go out at once (pull-orders); see `concurrently`."""

    type_name: ClassVar[str]
    label: ClassVar[str]  # how messages name the remote, e.g. "VTEX"
    supported: ClassVar[frozenset[Feature]]
    Credentials: ClassVar[type[BaseModel]]
    Options: ClassVar[type[BaseModel]] = NoOptions
    limits: ClassVar[Limits] = Limits(rate_per_s=10, burst=10, concurrency=4)
    unsupported_reason: ClassVar[Mapping[Feature, str]] = {}

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.http = ctx.http
        self.workers: Executor | None = None

    @classmethod
    def base_url(cls, settings: ChannelSettings) -> str:
        """The API host when `base_url` is not set in the config."""
        raise NotImplementedError

    @classmethod
    def auth_headers(cls, settings: ChannelSettings) -> dict[str, str]:
        """Headers that authenticate every request (static keys); {} for OAuth channels."""
        return {}

    def close(self) -> None:
        """Release anything the adapter holds besides its HttpClient."""

    def authorize(self, *, code: str | None = None, refresh_token: str | None = None,
                  code_verifier: str | None = None) -> str:
        """OAuth channels (`channel auth`): exchange an authorization code, or a refresh
        token, for the first token pair and store it; returns what was stored, in words."""
        raise Unsupported(f"{self.label} authenticates with static keys from the config: nothing to store")

    def check_credentials(self) -> None:
        """One cheap authenticated request (config check --online); raises AuthError."""
        raise Unsupported(f"{self.label}: no credential check")

    def prepare_skus(self, skus: list[str]) -> None:
        """Called with each chunk of ERP skus before their items are sent, so the
        adapter can resolve channel ids in one bulk request instead of one per item."""

    # -- push-products ---------------------------------------------------------------
    def product_payload(self, product: Product) -> dict[str, Any]:
        raise Unsupported(self._why(Feature.products))

    def product_group(self, product: Product) -> str:
        """Items with the same group are sent one after another (e.g. variations of one
        product, so the product is created once)."""
        return product.sku

    def push_product(self, product: Product, payload: dict[str, Any]) -> None:
        raise Unsupported(self._why(Feature.products))

    # -- push-stock --------------------------------------------------------------------
    def stock_payload(self, level: StockLevel) -> dict[str, Any]:
        raise Unsupported(self._why(Feature.stock))

    def push_stock(self, level: StockLevel, payload: dict[str, Any]) -> None:
        raise Unsupported(self._why(Feature.stock))

    # -- push-prices -------------------------------------------------------------------
    def price_payload(self, price: EffectivePrice) -> dict[str, Any]:
        raise Unsupported(self._why(Feature.prices))

    def push_price(self, price: EffectivePrice, payload: dict[str, Any]) -> None:
        raise Unsupported(self._why(Feature.prices))

    # -- pull-orders -------------------------------------------------------------------
    def pull_orders(self, cursor: str | None, since: datetime | None) -> Iterator[OrderBatch]:
        raise Unsupported(self._why(Feature.orders))

    def after_import(self, order: Order, outcome: ImportOutcome) -> Order | None:
        """Called once the order is committed in the ERP, before the batch is acknowledged
        (e.g. VTEX start-handling); the job may call it for several orders at once.
        Raising keeps the order's event unacknowledged. Returns the order at the status
        the call moved it to on the channel, for the job to record in the ERP (None: the
        call changed no status)."""
        return None

    def acknowledge(self, batch: OrderBatch, failed: set[str]) -> None:
        """Tell the channel the batch's orders are safe in the ERP, except the
        channel_order_ids in `failed` (those must come back)."""

    # -- push-invoices -----------------------------------------------------------------
    def order_update_payloads(self, update: OrderUpdate) -> dict[str, dict[str, Any]]:
        """Named parts (e.g. "invoice", "tracking") in the order they must be sent;
        a part not yet possible (no invoice) is absent."""
        raise Unsupported(self._why(Feature.order_updates))

    def push_order_update(self, update: OrderUpdate, part: str, payload: dict[str, Any]) -> None:
        raise Unsupported(self._why(Feature.order_updates))

    # -- sync-sac ----------------------------------------------------------------------
    def pull_tickets(self, cursor: str | None, since: datetime | None) -> Iterator[TicketBatch]:
        raise Unsupported(self._why(Feature.sac))

    def send_reply(self, channel_ticket_id: str, message: TicketMessage) -> str:
        """Send an agent's reply; returns the channel's message id. Raises Undelivered
        when the channel stored it but will not deliver it."""
        raise Unsupported(self._why(Feature.sac))

    def find_sent_reply(
        self, channel_ticket_id: str, message: TicketMessage, since: datetime, taken: Collection[str] = ()
    ) -> str | None:
        """The channel's id of `message` if a reply with its text reached the ticket at or
        after `since` (a run that died between sending and recording it) and is not one
        of `taken` (replies the ERP already holds: an agent may repeat their words);
        None when it is not there. A channel that cannot read its threads back answers
        None (the reply is sent again)."""
        return None

    # ---------------------------------------------------------------------------------
    def _why(self, feature: Feature) -> str:
        return self.unsupported_reason.get(
            feature, f"{self.label} has no API for {feature.value}: nothing to do"
        )


def concurrently(workers: Executor | None, call: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`call` on every item, on `workers` (the job's pool: the channel's concurrency; its
    HttpClient's token bucket keeps the requests within the rate limit), or one after
    another without them; the results in the items' order. Items are taken one at a
    time, so an iterator may do its own work (e.g. an ERP commit) while earlier calls run.
    `call` handles what concerns its item alone; anything it raises ends the lot: no
    item is taken or started after it, so a channel that broke off (outage, refused
    credentials) is not asked again and again, and the error is raised once the calls
    under way have ended. Never call it from a call running on `workers`: it would wait
    for itself."""
    if workers is None:
        return [call(item) for item in items]
    stop = threading.Event()

    def guarded(item: T) -> R:
        if stop.is_set():
            raise _NotStarted
        try:
            return call(item)
        except BaseException:
            stop.set()
            raise

    futures: list[Future[R]] = []
    try:
        for item in items:
            if stop.is_set():
                break
            futures.append(workers.submit(guarded, item))
    except BaseException:
        stop.set()
        raise
    finally:
        wait(futures)
    errors = [future.exception() for future in futures]
    raised = next((error for error in errors if error is not None and not isinstance(error, _NotStarted)), None)
    if raised is not None:
        raise raised
    return [future.result() for future in futures]


class _NotStarted(Exception):
    """A call `concurrently` skipped: another one had failed."""
