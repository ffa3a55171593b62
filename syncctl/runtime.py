"""Everything a run needs, built once from the config: state, ERP, clocks, and the
adapters of the channels and carriers it touches."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from syncctl import paths
from syncctl.carriers import carrier_class
from syncctl.carriers.base import Carrier, CarrierContext
from syncctl.channels import channel_class
from syncctl.channels.base import Channel, ChannelContext
from syncctl.config import CarrierSettings, ChannelSettings, Config
from syncctl.domain import UTC, Feature
from syncctl.erp import Erp, open_erp
from syncctl.errors import ConfigError, Problem
from syncctl.http import HttpClient, TokenBucket
from syncctl.state import StateStore

if TYPE_CHECKING:  # syncctl.jobs imports this module
    from syncctl.jobs.result import JobWatch


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StateLinks:
    """The Binder as one channel sees it."""

    state: StateStore
    channel: str
    now: Callable[[], datetime]

    def channel_ids(self, kind: str, erp_ids: list[str]) -> dict[str, str]:
        return self.state.channel_ids(self.channel, kind, erp_ids)

    def erp_ids(self, kind: str, channel_ids: list[str]) -> dict[str, str]:
        return self.state.erp_ids(self.channel, kind, channel_ids)

    def link(self, kind: str, erp_id: str, channel_id: str) -> None:
        self.state.link(self.channel, kind, erp_id, channel_id, self.now())


@dataclass
class Runtime:
    config: Config
    state_path: Path
    now: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    transports: Mapping[str, httpx.BaseTransport] = field(default_factory=dict)
    watch: JobWatch | None = None
    _state: StateStore | None = None
    _erp: Erp | None = None

    @property
    def state(self) -> StateStore:
        if self._state is None:
            resend_after = timedelta(hours=self.config.state.resend_after_h)
            self._state = StateStore(self.state_path, resend_after=resend_after)
        return self._state

    @property
    def erp(self) -> Erp:
        if self._erp is None:
            # Our clock stamps what syncctl writes (sale moves): incremental runs compare
            # those stamps with cursors taken from the same clock.
            self._erp = open_erp(self.config.erp_url(), clock=self.now)
        return self._erp

    @property
    def lock_dir(self) -> Path:
        return paths.lock_dir(self.state_path)

    def close(self) -> None:
        if self._erp is not None:
            self._erp.close()
        if self._state is not None:
            self._state.close()

    # -- channels ---------------------------------------------------------------------
    def channel_names(self, feature: Feature | None = None, *, auto_only: bool = False) -> list[str]:
        """Configured channels in file order; with `feature`, only those that support it
        and have it on."""
        names = []
        for name, settings in self.config.channels.items():
            if auto_only and not settings.auto:
                continue
            if feature is not None and not channel_supports(settings, feature):
                continue
            names.append(name)
        return names

    def open_channel(self, name: str) -> Channel:
        settings = self.config.channels[name]
        cls = channel_class(settings.type)
        ctx = ChannelContext(
            settings=settings,
            http=self._http_client(name, cls, settings),
            links=StateLinks(self.state, name, self.now),
            now=self.now,
            known_orders=lambda ids: self.erp.known_orders(name, ids),
            state=self.state,
            order_statuses=lambda ids: self.erp.order_statuses(name, ids),
        )
        return cls(ctx)

    def open_carrier(self, name: str) -> Carrier:
        settings = self.config.carriers[name]
        cls = carrier_class(settings.type)
        http = self._http_client(name, cls, settings)
        return cls(CarrierContext(settings=settings, http=http, state=self.state, now=self.now))

    def _http_client(
        self,
        name: str,
        adapter: type[Channel] | type[Carrier],
        settings: ChannelSettings | CarrierSettings,
    ) -> HttpClient:
        """The adapter's defaults, overridden by the config's `http` blocks."""
        http = self.config.http_for(settings.http)
        limits = adapter.limits
        bucket = TokenBucket(
            http.rate_per_s or limits.rate_per_s, http.burst or limits.burst, sleep=self.sleep
        )
        return HttpClient(
            adapter.label,
            base_url=settings.base_url or adapter.base_url(settings),
            headers=adapter.auth_headers(settings),
            timeout_s=http.timeout_s,
            max_retries=http.max_retries,
            max_retry_after_s=http.max_retry_after_s,
            bucket=bucket,
            transport=self.transports.get(name),
            sleep=self.sleep,
            now=self.now,
        )

    # -- checks that need the ERP -----------------------------------------------------------
    def check_warehouses(self, channels: list[str]) -> None:
        """Every warehouse a channel names must exist in the ERP (exit 2 otherwise)."""
        known = self.erp.warehouses()
        problems = []
        source = str(self.config.source)
        for name in channels:
            stock = self.config.channels[name].stock
            named = [("from_warehouses", w) for w in stock.from_warehouses or []]
            if stock.debit_warehouse:
                named.append(("debit_warehouse", stock.debit_warehouse))
            for key, code in named:
                if code not in known:
                    line = self.config.line_of("channels", name, "stock", key)
                    problems.append(Problem(
                        source, line,
                        f"channels.{name}.stock.{key}: warehouse {code!r} is not in the ERP "
                        f"(known: {', '.join(sorted(known)) or 'none'}); fix the code or add the warehouse",
                    ))
        if problems:
            raise ConfigError(problems)


def channel_supports(settings: ChannelSettings, feature: Feature) -> bool:
    return feature in channel_class(settings.type).supported and settings.feature_on(feature)
