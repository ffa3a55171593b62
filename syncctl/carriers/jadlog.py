"""Jadlog: the Embarcador tracking API (reference §5).

One POST asks about several shipments at once; a shipment Jadlog does not know comes
back as an `erro` inside a 200, not as a failed call. Statuses are free text, mapped
by the text rules of `normalize`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, SecretStr

from syncctl.carriers.base import Carrier, CarrierContext, CarrierOptions, Tracking
from syncctl.carriers.normalize import jadlog_status, parse_local
from syncctl.config import CarrierSettings
from syncctl.domain import TrackingEvent

log = logging.getLogger("syncctl.carriers")

TRACKING_PATH = "/embarcador/api/tracking/consultar"
DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")  # besides ISO (§5.2)


class JadlogCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr  # the JWT Jadlog issues with the contract


class JadlogOptions(CarrierOptions):
    # What shipments.tracking_code holds: the shipment id returned when the pickup order
    # was created (what Jadlog's own plugins track by), or the order `codigo`.
    query_by: Literal["shipmentId", "codigo"] = "shipmentId"


class JadlogCarrier(Carrier):
    type_name = "jadlog"
    label = "Jadlog"
    Credentials = JadlogCredentials
    Options = JadlogOptions
    batch_size = 20  # the most queries per call is not documented: stay modest

    def __init__(self, ctx: CarrierContext) -> None:
        super().__init__(ctx)
        self.query_by = cast(JadlogOptions, ctx.settings.options).query_by

    @classmethod
    def base_url(cls, settings: CarrierSettings) -> str:
        return "https://www.jadlog.com.br"

    @classmethod
    def auth_headers(cls, settings: CarrierSettings) -> dict[str, str]:
        token = cast(JadlogCredentials, settings.credentials).token.get_secret_value().strip()
        return {"Authorization": f"Bearer {token.removeprefix('Bearer ').strip()}"}  # pasted whole, or not

    def track(self, codes: Sequence[str]) -> list[Tracking]:
        doc = self.http.json(
            "POST", TRACKING_PATH, json={"consulta": [{self.query_by: code} for code in codes]},
            safe_to_retry=True,  # a query: repeating it changes nothing
        )  # fmt: skip
        entries = doc.get("consulta") if isinstance(doc, dict) else None
        matched = match_entries(codes, [e for e in entries or [] if isinstance(e, dict)], self.query_by)
        return [jadlog_tracking(code, entry) for code, entry in zip(codes, matched, strict=True)]


# -- pure mapping ---------------------------------------------------------------------------


def _identifier(entry: Mapping[str, Any], key: str) -> str | None:
    tracking = entry.get("tracking") if isinstance(entry.get("tracking"), dict) else {}
    value = entry.get(key) or tracking.get(key)
    return str(value) if value not in (None, "") else None


def match_entries(
    codes: Sequence[str], entries: Sequence[Mapping[str, Any]], key: str
) -> list[Mapping[str, Any] | None]:
    """The answer to each query: the entry naming it, else the one in its position
    (answers come in the order asked, §5.2) when that one names nothing."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        identifier = _identifier(entry, key)
        if identifier is not None:
            by_id.setdefault(identifier, entry)
    matched: list[Mapping[str, Any] | None] = []
    for index, code in enumerate(codes):
        positional = entries[index] if index < len(entries) else None
        if positional is not None and _identifier(positional, key) is not None:
            positional = None
        matched.append(by_id.get(code, positional))
    return matched


def jadlog_tracking(code: str, entry: Mapping[str, Any] | None) -> Tracking:
    if entry is None:
        return Tracking(code, error=f"Jadlog's answer says nothing of {code}")
    error = entry.get("erro")
    if isinstance(error, dict):
        return Tracking(code, error=f"Jadlog: {error.get('descricao') or 'error'} ({code})")
    tracking = entry.get("tracking") if isinstance(entry.get("tracking"), dict) else {}
    events = [event for event in map(_event, tracking.get("eventos") or []) if event is not None]
    return Tracking(code, events=tuple(sorted(events, key=lambda event: event.occurred_at)))


def _event(item: Any) -> TrackingEvent | None:
    if not isinstance(item, dict) or not item.get("status"):
        return None
    try:
        occurred_at = parse_local(str(item.get("data", "")), DATE_FORMATS)
    except ValueError:
        log.warning("Jadlog event without a readable date skipped: %r", item)
        return None
    text = " ".join(str(item["status"]).split())
    return TrackingEvent(
        occurred_at=occurred_at,
        status=jadlog_status(text),
        code=text,  # the raw status text (§5.3): Jadlog has no codes
        description=text,
        location=str(item["unidade"]).strip() if item.get("unidade") else None,
    )
