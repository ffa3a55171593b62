"""What a carrier adapter is: asked for tracking codes, it answers with events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field

from syncctl.config import CarrierSettings
from syncctl.domain import TrackingEvent
from syncctl.http import HttpClient, Limits


@dataclass(frozen=True)
class Tracking:
    """Everything the carrier knows of one code: its events, oldest first, already
    normalized (voided ones removed), and `error` when the code was refused (unknown,
    invalid). The shipment's status is that of the newest event (`normalize.latest`)."""

    code: str
    events: tuple[TrackingEvent, ...] = ()
    error: str | None = None


class CarrierOptions(BaseModel):
    """Options every carrier takes; a carrier's own Options extend it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Parcels shipped longer ago than this are no longer asked about (a lost parcel's
    # status never becomes final).
    track_days: int = Field(60, ge=1, le=3650)


@dataclass
class CarrierContext:
    settings: CarrierSettings
    http: HttpClient
    state: Any  # StateStore, for tokens the carrier rotates
    now: Any  # Callable[[], datetime]


class Carrier:
    type_name: ClassVar[str]
    label: ClassVar[str]
    Credentials: ClassVar[type[BaseModel]]
    Options: ClassVar[type[CarrierOptions]] = CarrierOptions
    limits: ClassVar[Limits] = Limits(rate_per_s=5, burst=5, concurrency=2)
    batch_size: ClassVar[int] = 1  # codes per track() call

    def __init__(self, ctx: CarrierContext) -> None:
        self.ctx = ctx
        self.http = ctx.http

    @property
    def track_days(self) -> int:
        return cast(CarrierOptions, self.ctx.settings.options).track_days

    @classmethod
    def base_url(cls, settings: CarrierSettings) -> str:
        raise NotImplementedError

    @classmethod
    def auth_headers(cls, settings: CarrierSettings) -> dict[str, str]:
        return {}

    def track(self, codes: Sequence[str]) -> list[Tracking]:
        """One Tracking per code (distinct codes, at most `batch_size`), in the same order.
        A code refused before any request (e.g. a bad check digit) comes back with `error` set."""
        raise NotImplementedError

    def close(self) -> None:
        """Release anything the adapter holds besides its HttpClient."""
