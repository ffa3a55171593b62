"""Customer-service tickets: what comes down from a channel, and the agents'
replies waiting to go up to it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from syncctl.domain import Ticket, TicketMessage, utc
from syncctl.erp.db import chunked, insert_ignoring, stream
from syncctl.erp.schema import orders, ticket_messages, tickets
from syncctl.errors import ErpError


def import_ticket(conn: Connection, channel: str, ticket: Ticket, now: datetime) -> tuple[int, int]:
    """Run inside one writing transaction (see Erp.import_ticket). A known ticket's row
    is touched only when something changed."""
    order_id = _order_id(conn, channel, ticket.channel_order_id)
    fields: dict[str, Any] = {"subject": ticket.subject, "status": ticket.status}
    if order_id is not None:
        fields["order_id"] = order_id
    created = conn.execute(
        insert_ignoring(conn, tickets)
        .values(
            channel=channel,
            channel_ticket_id=ticket.channel_ticket_id,
            opened_at=ticket.opened_at,
            updated_at=now,
            **fields,
        )
        .returning(tickets.c.id)
    ).scalar_one_or_none()
    if created is not None:
        return created, _append_incoming(conn, created, ticket.messages)
    known = conn.execute(
        select(tickets.c.id, *(tickets.c[name] for name in fields)).where(
            tickets.c.channel == channel, tickets.c.channel_ticket_id == ticket.channel_ticket_id
        )
    ).one()
    new = _append_incoming(conn, known.id, ticket.messages)
    changes = {name: value for name, value in fields.items() if getattr(known, name) != value}
    if changes or new:
        conn.execute(update(tickets).where(tickets.c.id == known.id).values(**changes, updated_at=now))
    return known.id, new


def pending_replies(conn: Connection, channel: str) -> Iterator[tuple[str, TicketMessage]]:
    statement = (
        select(tickets.c.channel_ticket_id, ticket_messages)
        .join_from(ticket_messages, tickets, tickets.c.id == ticket_messages.c.ticket_id)
        .where(
            tickets.c.channel == channel,
            ticket_messages.c.direction == "out",
            ticket_messages.c.channel_message_id.is_(None),
        )
        .order_by(ticket_messages.c.created_at, ticket_messages.c.id)
    )
    for row in stream(conn, statement):
        message = TicketMessage(
            direction=row.direction,
            body=row.body,
            created_at=row.created_at,
            author=row.author,
            channel_message_id=None,
            id=row.id,
        )
        yield row.channel_ticket_id, message


def sent_reply_ids(conn: Connection, channel: str, channel_ticket_id: str) -> set[str]:
    channel_ids = (
        select(ticket_messages.c.channel_message_id)
        .join_from(ticket_messages, tickets, tickets.c.id == ticket_messages.c.ticket_id)
        .where(
            tickets.c.channel == channel,
            tickets.c.channel_ticket_id == channel_ticket_id,
            ticket_messages.c.direction == "out",
            ticket_messages.c.channel_message_id.is_not(None),
        )
    )
    return set(conn.scalars(channel_ids))


def mark_reply_sent(conn: Connection, message_id: int, channel_message_id: str, sent_at: datetime) -> None:
    result = conn.execute(
        update(ticket_messages)
        .where(ticket_messages.c.id == message_id)
        .values(channel_message_id=channel_message_id, sent_at=sent_at)
    )
    if result.rowcount == 0:
        raise ErpError(f"ticket message {message_id} is not in the ERP")


def _order_id(conn: Connection, channel: str, channel_order_id: str | None) -> int | None:
    if channel_order_id is None:
        return None
    return conn.scalar(
        select(orders.c.id).where(orders.c.channel == channel, orders.c.channel_order_id == channel_order_id)
    )


def _append_incoming(conn: Connection, ticket_id: int, messages: Sequence[TicketMessage]) -> int:
    """Store the `in` messages not stored yet; returns how many were new."""
    rows = [
        {
            "ticket_id": ticket_id,
            "direction": "in",
            "author": message.author,
            "body": message.body,
            "created_at": message.created_at,
            "channel_message_id": message.channel_message_id or _content_key(message),
        }
        for message in messages
        if message.direction == "in"
    ]
    statement = insert_ignoring(conn, ticket_messages)
    return sum(conn.execute(statement.values(chunk)).rowcount for chunk in chunked(rows))


def _content_key(message: TicketMessage) -> str:
    """A stand-in id for a channel message that came without one, so reading the same
    thread again does not store it twice."""
    text = "\0".join((utc(message.created_at).isoformat(), message.author or "", message.body))
    return "content:" + hashlib.sha256(text.encode()).hexdigest()[:32]
