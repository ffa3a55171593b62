"""How carriers' words become the contract's nine delivery statuses, and their clocks UTC.

Pure functions over the tables of shared/reference/carriers-and-nfe.md (§3 Correios,
§5.3 Jadlog, §6.3 Melhor Envio). A code missing from a table never breaks a run: its
description goes through the documented text rules, and the unknown is logged once per
process so the table can grow.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from syncctl.domain import UTC, DeliveryStatus, TrackingEvent

log = logging.getLogger("syncctl.carriers")

SAO_PAULO = ZoneInfo("America/Sao_Paulo")

S = DeliveryStatus
T = TypeVar("T")

# -- time ---------------------------------------------------------------------------------


def local_to_utc(moment: datetime) -> datetime:
    """A carrier's time as aware UTC. Zone-less times are São Paulo's (Brazilian carriers
    write Brasília time without an offset; zoneinfo knows the DST of years before 2019)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SAO_PAULO)
    return moment.astimezone(UTC)


def parse_local(text: str, formats: Sequence[str] = ()) -> datetime:
    """ISO-8601 (offset optional), else the first of `formats` that fits; as aware UTC.
    ValueError when nothing fits."""
    text = text.strip()
    try:
        return local_to_utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    for layout in formats:
        try:
            return local_to_utc(datetime.strptime(text, layout))
        except ValueError:
            continue
    raise ValueError(f"unreadable date-time {text!r}")


# -- text ---------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Upper case, accents removed, spaces collapsed: carriers' texts vary in all three."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(plain.upper().split())


@dataclass(frozen=True)
class TextRule:
    """`status` when the folded text contains one of `any_of` and, if `with_any` is
    given, also one of `with_any`."""

    status: DeliveryStatus
    any_of: tuple[str, ...]
    with_any: tuple[str, ...] = ()

    def matches(self, folded: str) -> bool:
        if not any(word in folded for word in self.any_of):
            return False
        return not self.with_any or any(word in folded for word in self.with_any)


def status_by_text(text: str, rules: Iterable[TextRule]) -> DeliveryStatus | None:
    """The status of the first rule the text matches."""
    folded = fold(text)
    return next((rule.status for rule in rules if rule.matches(folded)), None)


@functools.lru_cache(maxsize=1024)
def _log_unknown(carrier: str, code: str, text: str, status: DeliveryStatus) -> None:
    log.warning("%s event %s (%r) is not in syncctl's table: taken as %s by its text", carrier, code, text,
                status.value)


# -- Correios (§3) ------------------------------------------------------------------------

VOIDING_EVENT = "EST"  # "favor desconsiderar a informação anterior": voids the event before it
_BD = ("BDE", "BDI", "BDR")
_ANY = None

# (event types, status numbers or _ANY, status). A listed pair wins over an _ANY row of the
# same type (PAR 13 is `returned`, every other PAR `in_transit`).
_CORREIOS_ROWS: tuple[tuple[tuple[str, ...], tuple[int, ...] | None, DeliveryStatus], ...] = (
    (("PO",), (0, 1, 9), S.posted),
    (("CO",), (1,), S.posted),
    (("RO",), (0, 1), S.in_transit),
    (("DO",), (0, 1, 2), S.in_transit),
    (("TRI",), (0,), S.in_transit),
    (("PMT",), (1,), S.in_transit),
    (("CD", "CMT", "CUN", "CAR", "CMR"), _ANY, S.in_transit),
    (_BD, (15, 22, 32, 45, 53, 57, 58, 59, 66, 69), S.in_transit),
    (("FC",), (2, 3, 5, 8, 10), S.in_transit),
    (("LDI",), (11, 13), S.in_transit),
    (("PAR",), _ANY, S.in_transit),
    (("PAR",), (13,), S.returned),
    (("OEC",), (0, 1, 3), S.out_for_delivery),
    (("LDI",), (0, 1, 2, 3, 4, 14), S.awaiting_pickup),
    (_BD, (24, 68), S.awaiting_pickup),
    (_BD, (0, 1, 67, 70), S.delivered),
    (_BD, (23,), S.returned),
    (_BD, (2, 18, 20, 25, 30, 34, 35, 46, 47), S.delivery_failed),  # a new attempt follows
    (_BD, (4, 5, 6, 7, 8, 10, 19, 21, 26, 33, 36, 48, 49), S.delivery_failed),  # will be returned
    (("FC",), (4, 7), S.delivery_failed),
    (("OEC",), (9,), S.returning),
    (("LDE",), (0, 9), S.returning),
    (("FC",), (1, 47), S.returning),
    (("BLQ",), _ANY, S.exception),
    (_BD, (3, 9, 12, 13, 28, 29, 37, 50, 51, 52, 80, 86, 89, 98), S.exception),  # lost, stolen, damaged
    (_BD, (38, 40, 41, 42, 43, 44, 54, 55, 56, *range(60, 65), *range(71, 78), 81, 83), S.exception),  # seized
    (("FC",), (9, 11, *range(12, 43), 51), S.exception),
    (("IDC",), _ANY, S.exception),
)


def _correios_tables() -> tuple[dict[tuple[str, int], DeliveryStatus], dict[str, DeliveryStatus]]:
    by_pair: dict[tuple[str, int], DeliveryStatus] = {}
    by_type: dict[str, DeliveryStatus] = {}
    for types, numbers, status in _CORREIOS_ROWS:
        for event_type in types:
            if numbers is _ANY:
                by_type[event_type] = status
            else:
                by_pair.update({(event_type, number): status for number in numbers})
    return by_pair, by_type


CORREIOS_BY_PAIR, CORREIOS_BY_TYPE = _correios_tables()

# §3.3 step 3, in order: the "not delivered" and "sender" checks come before plain "entregue".
CORREIOS_TEXT_RULES = (
    TextRule(S.returned, ("REMETENTE",), ("ENTREGUE", "DEVOLVIDO")),
    TextRule(S.returning, ("SAIU PARA ENTREGA AO REMETENTE",)),
    TextRule(S.delivery_failed, ("NAO ENTREGUE", "NAO PODE SER EFETUADA", "TENTATIVA", "AUSENTE", "RECUSOU")),
    TextRule(S.delivered, ("ENTREGUE",)),
    TextRule(S.awaiting_pickup, ("AGUARDANDO RETIRADA", "DISPONIVEL PARA RETIRADA")),
    TextRule(S.out_for_delivery, ("SAIU PARA ENTREGA", "EM ROTA DE ENTREGA")),
    TextRule(S.exception, ("EXTRAVIADO", "ROUBADO", "AVARIADO", "APREENDIDO", "NAO LOCALIZADO")),
    TextRule(S.posted, ("POSTADO",)),
)


def correios_code(event_type: str, number: int | None) -> str:
    """The event's `shipment_events.code`: "BDE-01" (type, then the status number in two digits)."""
    return f"{event_type}-{number:02d}" if number is not None else event_type


def correios_status(event_type: str, number: int | None, description: str) -> DeliveryStatus:
    """The status of one Correios event (`codigo`, `tipo` as a number, `descricao`)."""
    status = CORREIOS_BY_PAIR.get((event_type, number)) if number is not None else None
    status = status or CORREIOS_BY_TYPE.get(event_type)
    if status is None:
        status = status_by_text(description, CORREIOS_TEXT_RULES) or S.in_transit
        _log_unknown("Correios", correios_code(event_type, number), description, status)
    if status is S.delivered and "REMETENTE" in fold(description):
        return S.returned  # §3.3 step 4: "delivered" to the sender is the parcel coming back
    return status


def drop_voided(newest_first: Sequence[T], voids: Callable[[T], bool]) -> tuple[list[T], list[T]]:
    """(survivors, voided), both newest first: each voiding item cancels itself and the
    next older item that is not itself voiding (§3.3 step 2)."""
    survivors: list[T] = []
    voided: list[T] = []
    pending = 0
    for item in newest_first:
        if voids(item):
            pending += 1
            voided.append(item)
        elif pending:
            pending -= 1
            voided.append(item)
        else:
            survivors.append(item)
    return survivors, voided


# -- Jadlog (§5.3: free text) -------------------------------------------------------------

JADLOG_KNOWN = frozenset({"EMISSAO", "ENTRADA", "TRANSFERENCIA", "EM ROTA", "ENTREGUE", "SAIU PARA ENTREGA"})
JADLOG_TEXT_RULES = (
    TextRule(S.returned, ("DEVOL",), ("ENTREG",)),
    TextRule(S.returning, ("DEVOL",)),
    TextRule(S.delivery_failed, ("NAO ENTREG", "INSUCESSO", "AUSENTE", "RECUS", "ENDERECO")),
    TextRule(S.delivered, ("ENTREGUE",)),
    TextRule(S.awaiting_pickup, ("RETIRADA",)),
    TextRule(S.out_for_delivery, ("EM ROTA", "SAIU PARA ENTREGA", "ROTA DE ENTREGA")),
    TextRule(S.exception, ("AVARIA", "EXTRAV", "ROUBO", "SINISTRO", "BLOQUE", "RETID")),
    TextRule(S.posted, ("EMISSAO", "COLETA")),
)


def jadlog_status(text: str) -> DeliveryStatus:
    status = status_by_text(text, JADLOG_TEXT_RULES) or S.in_transit
    if fold(text) not in JADLOG_KNOWN:
        _log_unknown("Jadlog", text, text, status)
    return status


# -- Melhor Envio (§6.3: lifecycle words) ----------------------------------------------------

MELHORENVIO_STATUS = {
    "posted": S.posted,
    "delivered": S.delivered,
    "undelivered": S.delivery_failed,
    "canceled": S.exception,
    "expired": S.exception,
    "suspended": S.exception,
}
# A label bought or printed but not handed to the carrier: nothing to record yet.
MELHORENVIO_BEFORE_POSTING = frozenset({"pending", "paid", "generated", "released", "printed"})


@functools.lru_cache(maxsize=64)
def _log_unknown_melhorenvio(status: str) -> None:
    log.warning("Melhor Envio status %r is not in syncctl's table: nothing recorded for it", status)


def melhorenvio_status(word: str) -> DeliveryStatus | None:
    """The status a Melhor Envio order's `status` means; None before posting, or unknown (logged)."""
    status = MELHORENVIO_STATUS.get(word)
    if status is None and word not in MELHORENVIO_BEFORE_POSTING:
        _log_unknown_melhorenvio(word)
    return status


# -- every carrier ------------------------------------------------------------------------


def latest(events: Sequence[TrackingEvent]) -> TrackingEvent | None:
    """The event that gives the shipment its status: the newest (among equal times, the
    last given, so a carrier's own order settles ties)."""
    return max(reversed(events), key=lambda event: event.occurred_at, default=None)
