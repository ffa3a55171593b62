"""Runs jobs on channels and carriers: the lock, the run-log row, --dry-run, and
isolation (one channel's failure never stops another)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncctl import locks
from syncctl.channels.base import Channel
from syncctl.domain import Feature
from syncctl.errors import AuthError, Locked, TransientError, Unsupported
from syncctl.jobs.result import Failure, JobResult, Outcome
from syncctl.redact import redact
from syncctl.runtime import Runtime

log = logging.getLogger("syncctl.jobs")


@dataclass(frozen=True)
class JobOptions:
    skus: tuple[str, ...] = ()
    full: bool = False
    dry_run: bool = False
    since: datetime | None = None
    allow_drop: bool = False


@dataclass
class Run:
    """One job on one channel or carrier, as job functions see it."""

    rt: Runtime
    name: str  # the channel's or carrier's name in the config
    adapter: Any  # Channel or Carrier
    options: JobOptions
    result: JobResult
    concurrency: int
    # Called once the run's results (failures included) are in the state file, unless it
    # broke off: e.g. moving a change cursor past what this run covered.
    after_recorded: list[Callable[[], None]] = field(default_factory=list)

    @property
    def channel(self) -> Channel:
        return self.adapter

    @property
    def now(self) -> datetime:
        return self.rt.now()


JobFn = Callable[[Run], None]


@dataclass(frozen=True)
class JobSpec:
    name: str  # the subcommand, e.g. "push-stock"
    feature: Feature | None  # None for carrier jobs
    fn: JobFn


def run_on_channel(rt: Runtime, name: str, specs: list[JobSpec], options: JobOptions) -> list[JobResult]:
    """Run `specs` in order on one channel under its lock."""
    settings = rt.config.channels[name]

    def runnable(spec: JobSpec, adapter: Channel) -> JobResult | None:
        if spec.feature not in adapter.supported:
            return JobResult(name, spec.name, Outcome.unsupported, message=adapter._why(spec.feature))
        if not settings.feature_on(spec.feature):
            return JobResult(
                name, spec.name, Outcome.off,
                message=f"{spec.feature.value} is switched off for {name} (features.{spec.feature.value}: false)",
            )
        return None

    return _run_locked(rt, f"channel-{name}", name, specs, options, rt.open_channel, runnable, settings.http)


def stops_the_channel(result: JobResult) -> bool:
    """The next jobs would meet the same refusal or outage."""
    return result.outcome in (Outcome.auth, Outcome.unavailable)


def not_run(stopped_by: JobResult, specs: list[JobSpec]) -> list[JobResult]:
    """`specs`, not run because of `stopped_by`: said once, on each."""
    return [
        JobResult(stopped_by.channel, spec.name, stopped_by.outcome, message=f"not run: {stopped_by.message}")
        for spec in specs
    ]


def run_on_carrier(rt: Runtime, name: str, specs: list[JobSpec], options: JobOptions) -> list[JobResult]:
    settings = rt.config.carriers[name]
    return _run_locked(rt, f"carrier-{name}", name, specs, options, rt.open_carrier, lambda *_: None, settings.http)


def _run_locked(rt, lock_name, name, specs, options, open_adapter, runnable, http_overrides) -> list[JobResult]:
    try:
        with locks.hold(rt.lock_dir, lock_name):
            try:
                adapter = open_adapter(name)
            except Exception as exc:  # e.g. options the adapter refuses: this channel only
                log.debug("%s could not start", name, exc_info=True)
                message = redact(f"{type(exc).__name__}: {exc}")
                return [JobResult(name, spec.name, Outcome.error, message=message) for spec in specs]
            concurrency = rt.config.http_for(http_overrides).concurrency or adapter.limits.concurrency
            try:
                results = []
                for spec in specs:
                    result = runnable(spec, adapter) or _run_one(rt, name, adapter, spec, options, concurrency)
                    results.append(result)
                    if stops_the_channel(result):
                        results += not_run(result, specs[len(results):])
                        break
                return results
            finally:
                adapter.close()
                adapter.http.close()
    except Locked as exc:
        return [JobResult(name, spec.name, Outcome.locked, message=str(exc)) for spec in specs]


def _run_one(rt: Runtime, name: str, adapter: Any, spec: JobSpec, options: JobOptions, concurrency: int) -> JobResult:
    result = JobResult(name, spec.name)
    run_id = None if options.dry_run else rt.state.start_run(name, spec.name, rt.now())
    run = Run(rt, name, adapter, options, result, concurrency)
    if rt.watch is not None:
        rt.watch.started(result)
    try:
        spec.fn(run)
    except AuthError as exc:
        result.outcome, result.message = Outcome.auth, redact(exc)
    except TransientError as exc:
        result.outcome, result.message = Outcome.unavailable, redact(exc)
    except Unsupported as exc:
        result.outcome, result.message = Outcome.unsupported, redact(exc)
    except Exception as exc:  # one channel's bug or outage never stops the others
        log.debug("%s %s broke off", name, spec.name, exc_info=True)
        result.outcome, result.message = Outcome.error, redact(f"{type(exc).__name__}: {exc}")
    result.settle()
    if run_id is not None:
        _record(rt, run_id, result)
        if result.outcome in (Outcome.ok, Outcome.failed):
            for then in run.after_recorded:
                then()
    if rt.watch is not None:
        rt.watch.finished(result)
    return result


def _record(rt: Runtime, run_id: int, result: JobResult) -> None:
    now = rt.now()
    if result.failures:
        attempts = rt.state.record_failures(
            result.channel, result.job, [(f.key, f.error) for f in result.failures], now
        )
        result.failures = [Failure(f.key, f.error, attempts.get(f.key, 1)) for f in result.failures]
    rt.state.finish_run(
        run_id, now, outcome=result.outcome.value, sent=result.sent, unchanged=result.unchanged,
        failed=result.failed, skipped=result.skipped, message=result.message,
    )
