"""Which jobs run where: one job on chosen channels, or run-all on every automatic one."""

from __future__ import annotations

from syncctl.jobs import CHANNEL_JOBS, TRACK, JobOptions, JobSpec, run_on_carrier, run_on_channel
from syncctl.jobs.result import JobResult
from syncctl.runtime import Runtime, channel_supports


def run_job(rt: Runtime, spec: JobSpec, names: list[str], options: JobOptions) -> list[JobResult]:
    """One job on `names` (channels, or carriers for track), each under its own lock."""
    if spec is TRACK:
        return [r for name in names for r in run_on_carrier(rt, name, [spec], options)]
    rt.check_warehouses(names)
    return [r for name in names for r in run_on_channel(rt, name, [spec], options)]


def run_all(rt: Runtime, options: JobOptions) -> list[JobResult]:
    """Every channel whose `auto` is true, every feature it has on, in the contract's
    order (orders first, so stock pushed after them already counts the sales);
    then tracking on every automatic carrier."""
    channels = rt.channel_names(auto_only=True)
    rt.check_warehouses(channels)
    results = []
    for name in channels:
        settings = rt.config.channels[name]
        specs = [spec for spec in CHANNEL_JOBS if channel_supports(settings, spec.feature)]
        results += run_on_channel(rt, name, specs, options)
    for name, carrier in rt.config.carriers.items():
        if carrier.auto:
            results += run_on_carrier(rt, name, [TRACK], options)
    return results
