"""Correios: the REST API Rastro (SRO), with a token from the Token API (reference §1-3).

The token (24 h) is kept in the state file and reused until 30 minutes before it
expires; a 401 on a token still thought valid gets one new token and one retry
(`auth.CachedToken`). Codes are checked (shape and S10 check digit) before any
request, and sent 50 at a time with `resultado=T` (the batch form defaults to the
last event only).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from syncctl.auth import CachedToken, Token, fingerprint
from syncctl.carriers.base import Carrier, CarrierContext, Tracking
from syncctl.carriers.codes import canonical_s10, s10_problem
from syncctl.carriers.normalize import (
    VOIDING_EVENT,
    correios_code,
    correios_status,
    drop_voided,
    local_to_utc,
    parse_local,
)
from syncctl.config import CarrierSettings
from syncctl.domain import UTC, TrackingEvent
from syncctl.errors import AuthError
from syncctl.http import Limits
from syncctl.http.client import error_message

log = logging.getLogger("syncctl.carriers")

TOKEN_PATH = "/token/v1/autentica/cartaopostagem"
TRACKING_PATH = "/srorastro/v1/objetos"
MAX_CODES = 50  # per tracking request (§1.3)
TOKEN_LIFETIME = timedelta(hours=24)  # when the answer gives no expiry
RENEW_BEFORE = timedelta(minutes=30)
NOT_FOUND, INVALID = "SRO-020", "SRO-019"


class CorreiosCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user: SecretStr  # the Meu Correios user name
    access_code: SecretStr  # the API access code generated in the CWS portal, not the web password
    postcard: SecretStr  # cartão de postagem: 10 digits, leading zeros kept

    @field_validator("postcard", mode="before")
    @classmethod
    def _ten_digits(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:010d}"  # YAML read an unquoted 0012345678 as a number
        return value

    @field_validator("postcard")
    @classmethod
    def _digits_only(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().isdigit():
            raise ValueError("the postcard (cartão de postagem) number has digits only")
        return value


class CorreiosCarrier(Carrier):
    type_name = "correios"
    label = "Correios"
    Credentials = CorreiosCredentials
    # The gateway was seen announcing 50/s; the token endpoint takes about 3/s (§1.2, §1.5).
    limits = Limits(rate_per_s=3, burst=3, concurrency=1)
    batch_size = MAX_CODES

    def __init__(self, ctx: CarrierContext) -> None:
        super().__init__(ctx)
        credentials = cast(CorreiosCredentials, ctx.settings.credentials)
        user, code = credentials.user.get_secret_value(), credentials.access_code.get_secret_value()
        self._basic = "Basic " + base64.b64encode(f"{user}:{code}".encode()).decode()
        self._postcard = credentials.postcard.get_secret_value()
        host = ctx.settings.base_url or self.base_url(ctx.settings)
        self.http.use_auth(CachedToken(
            owner=ctx.settings.name, label=self.label, state=ctx.state, now=ctx.now, login=self._authenticate,
            credentials=fingerprint(host, user, self._postcard), renew_before=RENEW_BEFORE,
        ))  # fmt: skip

    @classmethod
    def base_url(cls, settings: CarrierSettings) -> str:
        return "https://api.correios.com.br"  # homologation: https://apihom.correios.com.br

    def track(self, codes: Sequence[str]) -> list[Tracking]:
        refused = {code: problem for code in codes if (problem := s10_problem(code))}
        asked = list(dict.fromkeys(canonical_s10(code) for code in codes if code not in refused))
        answers = self._objects(asked) if asked else {}
        return [
            Tracking(code, error=refused[code]) if code in refused else answer_for(code, answers)
            for code in codes
        ]

    # -- requests -------------------------------------------------------------------------
    def _objects(self, codes: list[str]) -> dict[str, Mapping[str, Any]]:
        """The answer's objects by code (their order is not a contract, §1.3)."""
        doc = self.http.json("GET", TRACKING_PATH, params={"codigosObjetos": codes, "resultado": "T"})
        objects = doc.get("objetos") if isinstance(doc, dict) else None
        return {
            canonical_s10(str(item.get("codObjeto", ""))): item
            for item in objects or []
            if isinstance(item, dict)
        }

    def _authenticate(self) -> Token:
        response = self.http.request(
            "POST", TOKEN_PATH, json={"numero": self._postcard}, headers={"Authorization": self._basic},
            allow={400, 401}, authenticated=False,
            safe_to_retry=True,  # a token request changes nothing: repeat it freely
        )  # fmt: skip
        if response.status_code in (400, 401):
            raise AuthError(
                f"Correios refused the user, access code or postcard (HTTP {response.status_code}: "
                f"{correios_message(response)}); check carriers.{self.ctx.settings.name}.credentials "
                "(the access code comes from the CWS portal, not the web-site password)"
            )
        doc = response.json()
        if not isinstance(doc, dict) or not doc.get("token"):
            raise AuthError("Correios answered the token request without a token")
        return Token(str(doc["token"]), token_expiry(doc, self.ctx.now()))


def correios_message(response: httpx.Response) -> str:
    """The gateway's `{"msgs": [...]}`, else whatever the body says."""
    try:
        messages = response.json().get("msgs")
    except (ValueError, AttributeError):
        messages = None
    if isinstance(messages, list) and messages:
        return "; ".join(str(message) for message in messages)
    return error_message(response)


# -- pure mapping ---------------------------------------------------------------------------


def token_expiry(doc: Mapping[str, Any], now: datetime) -> datetime:
    """`expiraEm` is local time without an offset; `zoneOffset` says which (§1.2)."""
    text = doc.get("expiraEm")
    if not text:
        return now + TOKEN_LIFETIME
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        offset = _offset(doc.get("zoneOffset"))
        moment = moment.replace(tzinfo=offset) if offset else local_to_utc(moment)
    return moment.astimezone(UTC)


def _offset(text: Any) -> timezone | None:
    try:
        return cast(timezone, datetime.strptime(str(text), "%z").tzinfo)
    except ValueError:
        return None


def answer_for(code: str, answers: Mapping[str, Mapping[str, Any]]) -> Tracking:
    item = answers.get(canonical_s10(code))
    if item is None:
        return Tracking(code, error=f"Correios' answer says nothing of {code}")
    message = item.get("mensagem")
    if message and not item.get("eventos"):
        return Tracking(code, error=sro_error(code, str(message)))
    return Tracking(code, events=correios_events(item.get("eventos") or []))


def sro_error(code: str, message: str) -> str:
    """Matched on the SRO-0NN prefix only: the wording and accents vary (§1.5)."""
    if message.startswith(NOT_FOUND):
        return f"Correios does not know {code} ({NOT_FOUND}): a label not posted yet? Asked again next run"
    if message.startswith(INVALID):
        return f"Correios says {code} is not a valid object ({INVALID}): check the code in the ERP"
    return f"Correios: {message}"


@dataclass(frozen=True)
class _Raw:
    occurred_at: datetime
    event_type: str
    number: int | None
    item: Mapping[str, Any]


def correios_events(items: Sequence[Any]) -> tuple[TrackingEvent, ...]:
    """Oldest first, estornos applied (§3.3): sorted by time, not by the array's order."""
    raws = [raw for raw in map(_raw, items) if raw is not None]
    newest_first = sorted(raws, key=lambda raw: raw.occurred_at, reverse=True)  # stable among equal times
    survivors, voided = drop_voided(newest_first, lambda raw: raw.event_type == VOIDING_EVENT)
    if voided:
        # The pairing rule (EST voids the next older event) is unverified: say when it acts.
        log.info("Correios estorno: dropped %s", ", ".join(
            f"{correios_code(raw.event_type, raw.number)} at {raw.occurred_at.isoformat()}" for raw in voided
        ))
    return tuple(_event(raw) for raw in reversed(survivors))


def _raw(item: Any) -> _Raw | None:
    if not isinstance(item, dict):
        return None
    try:
        occurred_at = parse_local(str(item["dtHrCriado"]))
    except (KeyError, ValueError):
        log.warning("Correios event without a readable dtHrCriado skipped: %r", item)
        return None
    number = str(item.get("tipo", "")).strip()
    event_type = str(item.get("codigo", "")).strip().upper()
    return _Raw(occurred_at, event_type, int(number) if number.isdigit() else None, item)


def _event(raw: _Raw) -> TrackingEvent:
    item = raw.item
    said = str(item.get("descricao") or "").strip()
    description = said
    if item.get("detalhe"):
        description = f"{description} – {str(item['detalhe']).strip()}"
    destination = place(item.get("unidadeDestino"))
    if destination:
        description = f"{description} (para {destination})"
    return TrackingEvent(
        occurred_at=raw.occurred_at,
        status=correios_status(raw.event_type, raw.number, said),
        code=correios_code(raw.event_type, raw.number),
        description=description,
        location=place(item.get("unidade")),
    )


def place(unit: Any) -> str | None:
    """"CAMPINAS/SP" from a unit's address, else its name."""
    if not isinstance(unit, dict):
        return None
    address = unit.get("endereco") if isinstance(unit.get("endereco"), dict) else {}
    city, state = address.get("cidade"), address.get("uf")
    if city:
        return f"{str(city).strip()}/{str(state).strip()}" if state else str(city).strip()
    return unit.get("nome") or None
