"""A fake Melhor Envio, as the reference's checklist (shared/reference/carriers-and-nfe.md
§11, shapes from §6) describes it.

- POST /oauth/token (JSON or form): `authorization_code` and `refresh_token` grants; a
  refresh token works once (each answer carries a new one); `expires_in` 2592000.
- POST /api/v2/me/shipment/tracking with {"orders": [uuid, ...]} -> an object keyed by
  uuid, unknown uuids left out; 401 {"message": "Unauthenticated."}; 422 for an empty or
  non-array `orders`; 429 beyond `calls_per_minute` per token.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from syncctl.sandbox.carrier_api import (
    Clock,
    FakeCarrierApi,
    FakeError,
    local_text,
    read_json,
)
from syncctl.sandbox.wire import json_response

ACCESS_LIFETIME_S = 2_592_000  # 30 days
ME_DATE = "%Y-%m-%d %H:%M:%S"
# Statuses that stamp a time of their own on the order.
DATED = ("paid", "generated", "posted", "delivered", "canceled", "expired")


class FakeMelhorEnvio(FakeCarrierApi):
    routes = (
        ("POST", "/oauth/token", "token"),
        ("POST", "/api/v2/me/shipment/tracking", "tracking"),
    )

    def __init__(
        self,
        client_id: str = "demo-client",
        client_secret: str = "demo-client-secret",
        refresh_token: str = "demo-refresh-0",
        clock: Clock | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(clock, sleep)
        self._client = (client_id, client_secret)
        self.refresh_tokens: set[str] = {refresh_token}  # each usable once
        self.access_tokens: dict[str, datetime] = {}  # token -> expires at
        self.authorization_codes: set[str] = set()
        self.orders: dict[str, dict[str, Any]] = {}
        self.calls_per_minute = 250
        self._calls: dict[str, list[datetime]] = {}
        self._issued = 0

    # -- test/demo helpers -------------------------------------------------------------------
    def add_order(self, tracking: str | None = None, *, created_at: datetime | None = None) -> str:
        """A label bought (status `released`); returns its uuid (deterministic per fake)."""
        with self._lock:
            number = len(self.orders) + 1
            order_id = str(uuidlib.UUID(int=number, version=4))
            created = local_text(created_at or self.now(), ME_DATE)
            self.orders[order_id] = {
                "id": order_id, "protocol": f"ORD-2024{number:010d}", "status": "released",
                "tracking": tracking, "melhorenvio_tracking": f"ME24{number:06d}BR",
                "created_at": created, "paid_at": created, "generated_at": created, "posted_at": None,
                "delivered_at": None, "canceled_at": None, "expired_at": None,
            }  # fmt: skip
            return order_id

    def set_status(self, order_id: str, status: str, at: datetime | None = None) -> None:
        """The order moves to `status`; a status with a time of its own gets `at` (default now)."""
        with self._lock:
            order = self.orders[order_id]
            order["status"] = status
            if status in DATED:
                order[f"{status}_at"] = local_text(at or self.now(), ME_DATE)

    def expire_access_tokens(self) -> None:
        with self._lock:
            expired = self.now() - timedelta(seconds=1)
            self.access_tokens = dict.fromkeys(self.access_tokens, expired)

    # -- oauth -------------------------------------------------------------------------------
    def _on_token(self, request: Request) -> Response:
        body = read_json(request) if request.mimetype == "application/json" else request.form.to_dict()
        if not isinstance(body, dict):
            raise FakeError(400, "The request is missing a required parameter")
        if (body.get("client_id"), body.get("client_secret")) != self._client:
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        grant = body.get("grant_type")
        if grant == "refresh_token":
            used = self.refresh_tokens
            presented = body.get("refresh_token")
        elif grant == "authorization_code":
            used = self.authorization_codes
            presented = body.get("code")
        else:
            return _oauth_error(400, "unsupported_grant_type", "The authorization grant type is not supported")
        if presented not in used:
            return _oauth_error(400, "invalid_grant", "The refresh token is invalid.")
        used.discard(presented)  # rotation: a refresh token (or a code) works once
        self._issued += 1
        access, refresh = f"me-access-{self._issued}", f"me-refresh-{self._issued}"
        self.access_tokens[access] = self.now() + timedelta(seconds=ACCESS_LIFETIME_S)
        self.refresh_tokens.add(refresh)
        return json_response({
            "token_type": "Bearer", "expires_in": ACCESS_LIFETIME_S, "access_token": access, "refresh_token": refresh,
        })  # fmt: skip

    # -- tracking ----------------------------------------------------------------------------
    def _on_tracking(self, request: Request) -> Response:
        token = self._authorize(request)
        body = read_json(request)
        orders = body.get("orders") if isinstance(body, dict) else None
        if not isinstance(orders, list) or not orders:
            return json_response({
                "message": "The given data was invalid.", "errors": {"orders": ["The orders field is required."]},
            }, 422)  # fmt: skip
        self._count_call(token)
        return json_response({key: self.orders[key] for key in map(str, orders) if key in self.orders})

    def _authorize(self, request: Request) -> str:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expires = self.access_tokens.get(token)
        if expires is None or expires <= self.now():
            raise FakeError(401, "Unauthenticated.")
        return token

    def _count_call(self, token: str) -> None:
        window_start = self.now() - timedelta(minutes=1)
        calls = [at for at in self._calls.get(token, []) if at > window_start]
        if len(calls) >= self.calls_per_minute:
            raise FakeError(429, "Too Many Attempts.")
        self._calls[token] = [*calls, self.now()]

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"message": message}, status)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description, "message": description}, status)
