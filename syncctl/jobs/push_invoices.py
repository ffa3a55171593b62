"""push-invoices ("update order"): NF-e data, then tracking, then delivery events,
each part sent when the ERP has it and again when it changes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from syncctl.channels.base import Channel
from syncctl.domain import Feature, OrderUpdate
from syncctl.errors import RecordRejected
from syncctl.jobs.push import PushSpec, push
from syncctl.jobs.runner import Run


@dataclass(frozen=True)
class UpdatePart:
    update: OrderUpdate
    part: str
    payload: dict[str, Any] | None
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.update.channel_order_id}:{self.part}"


def parts(channel: Channel, updates: Iterable[OrderUpdate]) -> Iterator[UpdatePart]:
    for update in updates:
        try:
            payloads = channel.order_update_payloads(update)
        except RecordRejected as exc:
            yield UpdatePart(update, "invoice", None, str(exc))
            continue
        for part, payload in payloads.items():
            yield UpdatePart(update, part, payload)


def _payload(item: UpdatePart) -> dict[str, Any]:
    if item.payload is None:
        raise RecordRejected(item.error or "no payload")
    return item.payload


def push_invoices(run: Run) -> None:
    channel = run.channel
    updates = run.rt.erp.order_updates(run.name)
    push(run, PushSpec(
        feature=Feature.order_updates.value,
        items=parts(channel, updates),
        key=lambda item: item.key,
        payload=_payload,
        send=lambda item, payload: channel.push_order_update(item.update, item.part, payload),
        group=lambda item: item.update.channel_order_id,
    ))
