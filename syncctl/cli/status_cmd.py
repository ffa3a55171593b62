"""status: per channel and job, the last run, its result, the cursor, and each
failing item with its error and attempts."""

from __future__ import annotations

import typer

from syncctl.cli.context import Globals, handled


def status(ctx: typer.Context) -> None:
    """Last run per channel and job, cursors, failing items and why."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        rt = g.runtime()
        try:
            state = rt.state
            runs = state.last_runs()
            failing = state.failing()
            notices = state.notices()
            cursors = {(r.channel, r.job): state.cursor(r.channel, r.job) for r in runs}
        finally:
            rt.close()
    if out.json_mode:
        out.document({
            "runs": [
                {"channel": r.channel, "job": r.job, "started_at": r.started_at.isoformat(),
                 "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                 "outcome": r.outcome, "sent": r.sent, "unchanged": r.unchanged, "failed": r.failed,
                 "skipped": r.skipped, "message": r.message, "cursor": cursors[(r.channel, r.job)]}
                for r in runs
            ],
            "failing": [
                {"channel": f.channel, "job": f.job, "key": f.key, "error": f.error, "attempts": f.attempts,
                 "first_failed_at": f.first_failed_at.isoformat(), "last_failed_at": f.last_failed_at.isoformat()}
                for f in failing
            ],
            "notices": [
                {"channel": c, "job": j, "key": k, "message": m, "created_at": t.isoformat()}
                for c, j, k, m, t in notices
            ],
        })
        return
    if not runs:
        out.info("no runs yet")
    for r in runs:
        when = (r.finished_at or r.started_at).strftime("%Y-%m-%d %H:%M:%SZ")
        cursor = cursors[(r.channel, r.job)]
        line = (f"{r.channel} {r.job}: {r.outcome or 'running'} at {when} sent={r.sent} "
                f"unchanged={r.unchanged} failed={r.failed}")
        if cursor:
            line += f" cursor={cursor}"
        if r.message:
            line += f" ({r.message})"
        out.info(line)
    for f in failing:
        out.info(f"FAILING {f.channel} {f.job} {f.key}: {f.error} (attempts: {f.attempts}, since {f.first_failed_at:%Y-%m-%d %H:%M}Z)")
    for c, j, k, m, t in notices:
        out.info(f"NOTICE {c} {j} {k}: {m} ({t:%Y-%m-%d %H:%M}Z)")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
