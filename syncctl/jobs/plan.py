"""Which jobs run where: one job on chosen channels, or run-all on every automatic one."""

from __future__ import annotations

from syncctl.jobs import CHANNEL_JOBS, PULL_ORDERS, TRACK, JobOptions, JobSpec, run_on_carrier, run_on_channel
from syncctl.jobs.result import JobResult
from syncctl.jobs.runner import not_run, stops_the_channel
from syncctl.runtime import Runtime, channel_supports


def run_job(rt: Runtime, spec: JobSpec, names: list[str], options: JobOptions) -> list[JobResult]:
    """One job on `names` (channels, or carriers for track), each under its own lock."""
    if spec is TRACK:
        return [r for name in names for r in run_on_carrier(rt, name, [spec], options)]
    rt.check_warehouses(names)
    return [r for name in names for r in run_on_channel(rt, name, [spec], options)]


def run_all(rt: Runtime, options: JobOptions) -> list[JobResult]:
    """Every channel whose `auto` is true, every feature it has on, in the contract's
    order; then tracking on every automatic carrier. Orders come down from every channel
    before anything goes up, so the stock pushed to each channel already counts the
    sales made on all of them (channel by channel, a sale on the second would reach the
    first one's stock only at the next run: an oversell window)."""
    channels = rt.channel_names(auto_only=True)
    rt.check_warehouses(channels)
    jobs = {name: _jobs_on(rt, name) for name in channels}
    pulled = {name: run_on_channel(rt, name, specs[:1], options)[0]
              for name, specs in jobs.items() if specs and specs[0] is PULL_ORDERS}
    results = list(pulled.values())
    for name, specs in jobs.items():
        rest = specs[1:] if name in pulled else specs
        if not rest:
            continue
        if name in pulled and stops_the_channel(pulled[name]):
            results += not_run(pulled[name], rest)
        else:
            results += run_on_channel(rt, name, rest, options)
    for name, carrier in rt.config.carriers.items():
        if carrier.auto:
            results += run_on_carrier(rt, name, [TRACK], options)
    return results


def _jobs_on(rt: Runtime, name: str) -> list[JobSpec]:
    settings = rt.config.channels[name]
    return [spec for spec in CHANNEL_JOBS if channel_supports(settings, spec.feature)]
