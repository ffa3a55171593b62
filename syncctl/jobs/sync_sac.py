"""sync-sac: customer-service tickets down into the ERP, agents' replies up, only on
tickets that came from the same channel."""

from __future__ import annotations

from syncctl.errors import RecordRejected
from syncctl.jobs.runner import Run
from syncctl.redact import redact

JOB = "sync-sac"


def sync_sac(run: Run) -> None:
    channel, state, erp, result = run.channel, run.rt.state, run.rt.erp, run.result
    cursor = state.cursor(run.name, JOB)
    for batch in channel.pull_tickets(cursor, run.options.since):
        if run.options.dry_run:
            result.planned += [{"key": t.channel_ticket_id, "messages": len(t.messages)} for t in batch.tickets]
            continue
        for ticket in batch.tickets:
            _, new_messages = erp.import_ticket(run.name, ticket)
            result.sent += new_messages
        if batch.cursor is not None:
            state.set_cursor(run.name, JOB, batch.cursor)
    for channel_ticket_id, message in erp.pending_replies(run.name):
        key = f"{channel_ticket_id}:{message.id}"
        if run.options.dry_run:
            result.planned.append({"key": key, "body": message.body})
            continue
        try:
            channel_message_id = channel.send_reply(channel_ticket_id, message)
        except RecordRejected as exc:
            result.fail(key, redact(exc))
            continue
        erp.mark_reply_sent(message.id, channel_message_id, run.now)
        state.clear_failures(run.name, JOB, [key])
        result.sent += 1
