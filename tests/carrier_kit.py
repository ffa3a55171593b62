"""Carrier adapters built as the runtime builds them, wired to a fake (or a cassette),
for the carrier tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from syncctl.carriers.base import Carrier, CarrierContext
from syncctl.config import CarrierSettings
from syncctl.domain import UTC
from syncctl.http import HttpClient
from syncctl.state import StateStore

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def build_carrier(
    carrier_type: type[Carrier],
    *,
    transport: httpx.BaseTransport,
    state: StateStore,
    credentials: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    base_url: str = "http://carrier.test",
    clock: Callable[[], datetime] = lambda: T0,
    sleep: Callable[[float], None] = lambda _seconds: None,
    name: str | None = None,
) -> Carrier:
    settings = CarrierSettings(
        name=name or carrier_type.type_name,
        type=carrier_type.type_name,
        base_url=base_url,
        credentials=carrier_type.Credentials(**credentials),
        options=carrier_type.Options(**(options or {})),
    )
    http = HttpClient(
        carrier_type.label, base_url=base_url, headers=carrier_type.auth_headers(settings),
        transport=transport, sleep=sleep, now=clock,
    )  # fmt: skip
    return carrier_type(CarrierContext(settings=settings, http=http, state=state, now=clock))


def state_store(folder: Path) -> StateStore:
    return StateStore(folder / "state.db")
