"""sync-sac: customer-service tickets down into the ERP, agents' replies up, only on
tickets that came down from the same channel, each reply exactly once.

Every ticket that comes down is linked in the state (kind "ticket"): a reply goes up
only on a linked ticket, so a ticket created in the ERP is never sent. Before a reply
is sent its intent is recorded (kind "reply", "pending:<time>"), after it the
channel's message id. A run that finds an intent and no id (the process died between
sending and recording) asks the channel whether the reply is there before sending it
again: channels take no idempotency keys. A reply waiting on a ticket linked only in
this run (the state file was lost, with any record of a send) is looked for on the
channel too, from the moment it was written in the ERP.
"""

from __future__ import annotations

from datetime import datetime

from syncctl.channels.base import TicketBatch
from syncctl.domain import TicketMessage
from syncctl.errors import RecordRejected, Undelivered
from syncctl.jobs.runner import Run
from syncctl.redact import redact

JOB = "sync-sac"
TICKET, REPLY = "ticket", "reply"
_PENDING = "pending:"


def sync_sac(run: Run) -> None:
    cursor = run.rt.state.cursor(run.name, JOB)
    linked_now: set[str] = set()
    for batch in run.channel.pull_tickets(cursor, run.options.since):
        if run.options.dry_run:
            run.result.planned += [
                {"key": t.channel_ticket_id, "messages": len(t.messages)} for t in batch.tickets
            ]
            continue
        linked_now |= _import(run, batch)
    for channel_ticket_id, message in run.rt.erp.pending_replies(run.name):
        _send_reply(run, channel_ticket_id, message, channel_ticket_id in linked_now)


def _import(run: Run, batch: TicketBatch) -> set[str]:
    """Store the batch's tickets; returns the ids of those linked only now."""
    state = run.rt.state
    linked = state.erp_ids(run.name, TICKET, [ticket.channel_ticket_id for ticket in batch.tickets])
    linked_now = set()
    for ticket in batch.tickets:
        erp_id, new_messages = run.rt.erp.import_ticket(run.name, ticket)
        run.result.sent += new_messages
        if ticket.channel_ticket_id not in linked:
            state.link(run.name, TICKET, str(erp_id), ticket.channel_ticket_id, run.now)
            linked_now.add(ticket.channel_ticket_id)
    if batch.cursor is not None:
        state.set_cursor(run.name, JOB, batch.cursor)
    return linked_now


def _send_reply(run: Run, channel_ticket_id: str, message: TicketMessage, linked_now: bool) -> None:
    state, result = run.rt.state, run.result
    key = f"{channel_ticket_id}:{message.id}"
    if run.options.dry_run:
        result.planned.append({"key": key, "body": message.body})
        return
    if not state.erp_ids(run.name, TICKET, [channel_ticket_id]):
        result.skip(key, f"not sent: ticket {channel_ticket_id} did not come down from {run.name}")
        return
    message_key = str(message.id)
    recorded = state.channel_ids(run.name, REPLY, [message_key]).get(message_key)
    try:
        channel_message_id = _already_sent(run, channel_ticket_id, message, recorded, linked_now)
        if channel_message_id is None:
            state.link(run.name, REPLY, message_key, _PENDING + run.now.isoformat(), run.now)
            channel_message_id = run.channel.send_reply(channel_ticket_id, message)
    except Undelivered as exc:
        channel_message_id = exc.channel_message_id
        state.add_notice(run.name, JOB, key, f"reply sent but not delivered: {redact(exc)}", run.now)
    except RecordRejected as exc:
        result.fail(key, redact(exc))
        return
    state.link(run.name, REPLY, message_key, channel_message_id, run.now)
    run.rt.erp.mark_reply_sent(message.id, channel_message_id, run.now)
    state.clear_failures(run.name, JOB, [key])
    result.sent += 1


def _already_sent(
    run: Run, channel_ticket_id: str, message: TicketMessage, recorded: str | None, linked_now: bool
) -> str | None:
    """The channel id of a reply an earlier run sent, or None when it must be sent."""
    if recorded is None and not linked_now:
        return None
    if recorded is not None and not recorded.startswith(_PENDING):
        return recorded  # sent and recorded; only the ERP had not heard of it
    # No reply reaches the channel before an agent writes it in the ERP, and one the ERP
    # already holds is another reply with the same words.
    since = message.created_at if recorded is None else datetime.fromisoformat(recorded.removeprefix(_PENDING))
    taken = run.rt.erp.sent_reply_ids(run.name, channel_ticket_id)
    return run.channel.find_sent_reply(channel_ticket_id, message, since, taken)
