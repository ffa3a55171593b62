"""The configuration's typed models: what a valid file holds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from syncctl import paths
from syncctl.domain import Feature

_SQLITE_URL = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")

KeyPath = tuple[str | int, ...]


class Strict(BaseModel):
    """Unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(Strict):
    timeout_s: float = Field(30, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    max_retry_after_s: float = Field(120, gt=0)  # a longer Retry-After ends the channel's run (exit 75)
    rate_per_s: float | None = Field(None, gt=0)  # None: the channel type's default
    burst: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1, le=64)


class HttpOverrides(Strict):
    """Per channel or carrier: any key of the top-level `http` block."""

    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0, le=20)
    max_retry_after_s: float | None = Field(None, gt=0)
    rate_per_s: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1, le=64)


class StockSettings(Strict):
    from_warehouses: list[str] | None = None  # None: every ERP warehouse
    debit_warehouse: str | None = None
    reserve: int = Field(0, ge=0)


class PriceSettings(Strict):
    price_list: str = "default"
    max_drop_pct: Decimal | None = Field(Decimal(50), ge=0, le=100)  # None: no guard


class OrderSettings(Strict):
    initial_lookback_days: int = Field(7, ge=0, le=365)


class ChannelSettings(Strict):
    name: str
    type: str
    auto: bool = False
    base_url: str | None = None
    credentials: BaseModel  # the channel type's Credentials model (SecretStr fields)
    features: dict[Feature, bool] | None = None  # None: every feature the channel supports
    stock: StockSettings = StockSettings()
    prices: PriceSettings = PriceSettings()
    orders: OrderSettings = OrderSettings()
    options: BaseModel  # the channel type's Options model
    http: HttpOverrides = HttpOverrides()

    def feature_on(self, feature: Feature) -> bool:
        """Switched on in the file (support is the channel type's business)."""
        return self.features is None or self.features.get(feature, False)


class CarrierSettings(Strict):
    name: str
    type: str
    auto: bool = False
    base_url: str | None = None
    credentials: BaseModel
    options: BaseModel
    http: HttpOverrides = HttpOverrides()


class ErpSettings(Strict):
    url: str = "sqlite:///erp.db"  # sqlite paths are relative to the config file's folder
    debits_stock: bool = False  # True: the ERP writes the sale's stock move itself


class StateSettings(Strict):
    path: str | None = None  # None: the platform state dir
    resend_after_h: float = Field(24, gt=0)  # an unchanged item is re-asserted at least this often


class Config(Strict):
    source: Path
    erp: ErpSettings = ErpSettings()
    state: StateSettings = StateSettings()
    http: HttpSettings = HttpSettings()
    channels: dict[str, ChannelSettings] = {}
    carriers: dict[str, CarrierSettings] = {}

    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    def line_of(self, *path: str | int) -> int | None:
        """The line where the key at `path` (e.g. "channels", "vtex-main", "stock")
        was written, or of its nearest written ancestor."""
        return nearest_line(self._lines, path)

    def http_for(self, overrides: HttpOverrides) -> HttpSettings:
        merged = self.http.model_dump() | overrides.model_dump(exclude_none=True)
        return HttpSettings(**merged)

    def erp_url(self) -> str:
        """`erp.url` with a relative sqlite path resolved against the config's folder
        (`sqlite:////abs`, `sqlite:///:memory:` and other schemes are kept as written)."""
        match = _SQLITE_URL.match(self.erp.url)
        if not match or match["path"].startswith("/") or match["path"] in ("", ":memory:"):
            return self.erp.url
        folder = self.source.parent.resolve()
        return f"{match['scheme']}:///{folder / match['path']}{match['query'] or ''}"

    def state_path(self, override: Path | None = None) -> Path:
        """`override` (--state), else `state.path` (relative to the config's folder),
        else the platform state dir."""
        if override is not None:
            return override
        if self.state.path:
            return self.source.parent.resolve() / Path(self.state.path).expanduser()
        return paths.default_state_path()


def nearest_line(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None
