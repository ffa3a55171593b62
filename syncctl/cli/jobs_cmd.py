"""The job subcommands and run-all."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime

import typer

from syncctl.cli.context import Globals, handled
from syncctl.cli.options import AllowDropOpt, CarriersOpt, ChannelsOpt, DryRunOpt, FullOpt, SinceOpt, SkusOpt
from syncctl.domain import utc
from syncctl.errors import ConfigError
from syncctl.jobs import CHANNEL_JOBS, TRACK, JobOptions, JobSpec
from syncctl.jobs.plan import run_all, run_job
from syncctl.jobs.result import JobResult, combine_exit_codes
from syncctl.runtime import Runtime

HELP = {
    "pull-orders": "Import new orders (exactly once) and their status changes into the ERP.",
    "push-products": "Send product/SKU data (name, EAN, variations, dimensions) that changed.",
    "push-stock": "Send each channel's sellable stock from its approved warehouses.",
    "push-prices": "Send list, promotional and scheduled prices in force now.",
    "push-invoices": "Send NF-e invoice data, tracking codes and delivery events.",
    "sync-sac": "Customer-service tickets down, agents' replies up.",
}


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        raise ConfigError(f"--since {value!r} is not an ISO-8601 time (e.g. 2026-11-20T00:00:00Z)") from None


def execute(ctx: typer.Context, command: str, run) -> None:
    """Shared by every job command: build the runtime, run, render, exit."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        rt = g.runtime()
        try:
            started = rt.now()
            with out.progress() or nullcontext() as rt.watch:
                results: list[JobResult] = run(rt)
            finished = rt.now()
        finally:
            rt.close()
    code = combine_exit_codes([r.exit_code for r in results])
    out.results(command, started, finished, results, code)
    raise typer.Exit(code)


def _channel_command(spec: JobSpec):
    def command(
        ctx: typer.Context,
        channel: ChannelsOpt = None,
        sku: SkusOpt = None,
        full: FullOpt = False,
        dry_run: DryRunOpt = False,
        since: SinceOpt = None,
        allow_drop: AllowDropOpt = False,
    ) -> None:
        def run(rt: Runtime) -> list[JobResult]:
            names = _choose(rt, spec, channel)
            options = JobOptions(tuple(sku or ()), full, dry_run, parse_since(since), allow_drop)
            return run_job(rt, spec, names, options)

        execute(ctx, spec.name, run)

    command.__doc__ = HELP[spec.name]
    return command


def _choose(rt: Runtime, spec: JobSpec, asked: list[str] | None) -> list[str]:
    if not asked:
        return rt.channel_names(spec.feature)
    unknown = [name for name in asked if name not in rt.config.channels]
    if unknown:
        known = ", ".join(rt.config.channels) or "none"
        raise ConfigError(f"unknown channel {', '.join(unknown)} (configured: {known})")
    return list(dict.fromkeys(asked))


def track_command(
    ctx: typer.Context,
    carrier: CarriersOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Ask each carrier where every parcel not yet delivered is; update the ERP."""

    def run(rt: Runtime) -> list[JobResult]:
        names = carrier or list(rt.config.carriers)
        unknown = [name for name in names if name not in rt.config.carriers]
        if unknown:
            raise ConfigError(f"unknown carrier {', '.join(unknown)} (configured: {', '.join(rt.config.carriers) or 'none'})")
        return run_job(rt, TRACK, names, JobOptions(dry_run=dry_run))

    execute(ctx, "track", run)


def run_all_command(
    ctx: typer.Context,
    full: FullOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Every job on every channel (and carrier) whose auto is true: what timers run."""
    execute(ctx, "run-all", lambda rt: run_all(rt, JobOptions(full=full, dry_run=dry_run)))


def register(app: typer.Typer) -> None:
    for spec in CHANNEL_JOBS:
        app.command(spec.name)(_channel_command(spec))
    app.command("track")(track_command)
    app.command("run-all")(run_all_command)
