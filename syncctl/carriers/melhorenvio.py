"""Melhor Envio: one API over many carriers (reference §6).

Auth is OAuth 2 with refresh tokens that rotate (`auth.RotatingTokens`): the config
holds the first one, the state file each one after it, written before the new access
token is used, under a lock shared by every process using the state file. Tracking
gives an order's lifecycle status and the time of each step, not an event history:
each step it reports becomes an event (`ME-posted` at `posted_at`, ...); a status
without a time of its own (undelivered, suspended) is dated at the order's last dated
step: a time syncctl made up (when it first saw the status) would be another event
once the state file that remembered it is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from syncctl import __version__
from syncctl.auth import RotatingTokens, Token, token_request
from syncctl.carriers.base import Carrier, CarrierContext, CarrierOptions, Tracking
from syncctl.carriers.normalize import melhorenvio_status, parse_local
from syncctl.config import CarrierSettings
from syncctl.domain import TrackingEvent
from syncctl.http import Limits

log = logging.getLogger("syncctl.carriers")

TOKEN_PATH = "/oauth/token"
TRACKING_PATH = "/api/v2/me/shipment/tracking"
RENEW_BEFORE = timedelta(days=1)  # of an access token's 30
# Lifecycle steps that carry their own time, in the order they happen.
DATED_STEPS = ("posted", "delivered", "canceled", "expired")
TIMED_STEPS = ("created", "paid", "generated", *DATED_STEPS)  # every step with a time, events or not


class MelhorEnvioCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: SecretStr
    client_secret: SecretStr
    refresh_token: SecretStr  # the first one only: the rotated ones live in the state file


class MelhorEnvioOptions(CarrierOptions):
    sandbox: bool = False  # the sandbox host: its own app, user and tokens
    # Melhor Envio asks for a technical contact e-mail in the User-Agent.
    contact_email: str | None = Field(None, pattern=r"^[^@\s()]+@[^@\s()]+$")


class MelhorEnvioCarrier(Carrier):
    type_name = "melhorenvio"
    label = "Melhor Envio"
    Credentials = MelhorEnvioCredentials
    Options = MelhorEnvioOptions
    limits = Limits(rate_per_s=4, burst=4, concurrency=1)  # 250 requests a minute per user
    batch_size = 100  # orders per tracking request: no documented maximum

    def __init__(self, ctx: CarrierContext) -> None:
        super().__init__(ctx)
        credentials = cast(MelhorEnvioCredentials, ctx.settings.credentials)
        self._client = {
            "client_id": credentials.client_id.get_secret_value(),
            "client_secret": credentials.client_secret.get_secret_value(),
        }
        name = ctx.settings.name
        self.tokens = RotatingTokens(
            owner=name,
            label=self.label,
            state=ctx.state,
            grant=self._grant,
            now=ctx.now,
            reauthorize=f"authorize syncctl again and put the new refresh token in carriers.{name}.credentials",
            first_refresh_token=credentials.refresh_token.get_secret_value(),
            renew_before=RENEW_BEFORE,
        )
        self.http.use_auth(self.tokens)

    @classmethod
    def base_url(cls, settings: CarrierSettings) -> str:
        sandbox = cast(MelhorEnvioOptions, settings.options).sandbox
        return "https://sandbox.melhorenvio.com.br" if sandbox else "https://melhorenvio.com.br"

    @classmethod
    def auth_headers(cls, settings: CarrierSettings) -> dict[str, str]:
        contact = cast(MelhorEnvioOptions, settings.options).contact_email
        return {"User-Agent": f"syncctl/{__version__} ({contact})"} if contact else {}

    def track(self, codes: Sequence[str]) -> list[Tracking]:
        doc = self.http.json("POST", TRACKING_PATH, json={"orders": list(codes)}, safe_to_retry=True)
        orders = keyed_orders(doc)
        return [melhorenvio_tracking(uuid, orders.get(uuid)) for uuid in codes]

    # -- auth -----------------------------------------------------------------------------
    def _grant(self, form: Mapping[str, str]) -> Token:
        # JSON, like the rest of Melhor Envio's API (reference §6.1).
        return token_request(self.http, TOKEN_PATH, {**form, **self._client}, self.ctx.now(), self.label, as_json=True)


# -- pure mapping ---------------------------------------------------------------------------


def keyed_orders(doc: Any) -> dict[str, Mapping[str, Any]]:
    """The answer is an object keyed by order id; an empty one may come as `[]` (PHP)."""
    if isinstance(doc, dict):
        return {str(key): value for key, value in doc.items() if isinstance(value, dict)}
    if isinstance(doc, list):
        return {str(item["id"]): item for item in doc if isinstance(item, dict) and item.get("id")}
    return {}


def melhorenvio_tracking(uuid: str, order: Mapping[str, Any] | None) -> Tracking:
    if order is None:
        return Tracking(uuid, error=f"Melhor Envio does not know order {uuid}")
    events = [
        _event(word, parse_local(str(order[f"{word}_at"])), order)
        for word in DATED_STEPS
        if order.get(f"{word}_at") and melhorenvio_status(word) is not None
    ]
    current = str(order.get("status") or "")
    if melhorenvio_status(current) is not None and not order.get(f"{current}_at"):
        last = _last_time(order)
        if last is not None:
            events.append(_event(current, last, order))
    return Tracking(uuid, events=tuple(sorted(events, key=lambda event: event.occurred_at)))


def _last_time(order: Mapping[str, Any]) -> datetime | None:
    """When the order's last dated step happened: a status without a time of its own came after it."""
    times = [parse_local(str(order[f"{word}_at"])) for word in TIMED_STEPS if order.get(f"{word}_at")]
    return max(times, default=None)


def _event(word: str, occurred_at: datetime, order: Mapping[str, Any]) -> TrackingEvent:
    status = melhorenvio_status(word)
    assert status is not None
    carrier_code = order.get("tracking")
    return TrackingEvent(
        occurred_at=occurred_at,
        status=status,
        code=f"ME-{word}",
        description=f"Melhor Envio: {word}" + (f" (rastreio {carrier_code})" if carrier_code else ""),
    )
