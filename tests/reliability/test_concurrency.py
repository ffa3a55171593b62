"""Scenario 3, concurrency: two and four syncctl processes at once, on the same
channel and on different channels sharing one ERP. Per-channel locks hold: on a
busy channel the latecomer exits 75 and touches nothing; processes on different
channels both work; nothing is imported or sent twice."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from reliability import trials
from reliability.checks import check, check_all
from reliability.kits import KITS, ChannelKit
from reliability.world import SYNCCTL_TIMEOUT_S, Ran, World, served, world

pytestmark = pytest.mark.reliability

LATENCY_S = 0.05  # per request on the fake's side: runs last seconds, so processes overlap
HTTP = "  rate_per_s: 1000\n  burst: 1000\n"


@contextmanager
def two_channels(root: Path, kit: ChannelKit) -> Iterator[tuple[World, World]]:
    """Channels `<kind>-a` and `<kind>-b`, each with its own fake, one config, one ERP."""
    with ExitStack() as stack:
        second = stack.enter_context(served(root, kit, seed=1, http=HTTP, name=f"{kit.kind}-b"))
        first = stack.enter_context(world(root, kit, http=HTTP))
        first.name = f"{kit.kind}-a"
        first.neighbours.append(second)
        first.write_config()
        second.catalog = first.catalog
        kit.list_catalog(second.fake, second.catalog)
        yield first, second


def at_once(made: World, commands: list[list[str]]) -> list[Ran]:
    """Start every command before waiting for any."""
    for side in (made, *made.neighbours):
        side.chaos.reset()
        side.chaos.latency_s = LATENCY_S
    processes = [
        subprocess.Popen(made.command(*args), env=made.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for args in commands
    ]
    ran = []
    for args, process in zip(commands, processes):
        stdout, stderr = process.communicate(timeout=SYNCCTL_TIMEOUT_S)
        ran.append(Ran(tuple(args), process.returncode, stdout.decode(), stderr.decode()))
    made.ran += ran
    for side in (made, *made.neighbours):
        side.chaos.latency_s = 0.0
    return ran


def runs_by_channel(made: World) -> dict[str, list[tuple[datetime, datetime]]]:
    """When each finished run of each channel held the channel (from the state's run log)."""
    with closing(sqlite3.connect(made.root / "state.db")) as db:
        rows = db.execute("SELECT channel, started_at, finished_at FROM runs WHERE finished_at IS NOT NULL")
        spans: dict[str, list[tuple[datetime, datetime]]] = {}
        for channel, started, finished in rows:
            spans.setdefault(channel, []).append((datetime.fromisoformat(started), datetime.fromisoformat(finished)))
    return spans


def overlapping(spans: list[tuple[datetime, datetime]]) -> list[tuple]:
    ordered = sorted(spans)
    return [(a, b) for a, b in pairwise(ordered) if b[0] < a[1]]


SAME_CHANNEL = {
    2: [["--json", "pull-orders"], ["--json", "pull-orders"]],
    4: [["--json", "run-all"], ["--json", "pull-orders"], ["--json", "push-stock"], ["--json", "run-all"]],
}


SELLING = [pytest.param(kit, id=kit.kind) for kit in KITS if "pull-orders" in kit.jobs]


@pytest.mark.parametrize("kit", SELLING)
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_on_the_same_channel_take_turns_and_the_latecomers_exit_75(
    kit: ChannelKit, processes: int, tmp_path: Path
) -> None:
    with world(tmp_path, kit, http=HTTP) as made:
        made.prepare("pull-orders")
        ran = at_once(made, SAME_CHANNEL[processes])
        codes = sorted(r.returncode for r in ran)
        assert set(codes) <= {0, 75}, [(r.args, r.returncode, r.stderr[-500:]) for r in ran]
        assert 0 in codes
        for busy in (r for r in ran if r.returncode == 75):
            assert '"outcome": "locked"' in busy.stdout and "busy" in busy.stdout
        assert overlapping(runs_by_channel(made)[made.channel]) == []
        made.run_to_completion("run-all")
        tally = check_all(made)
        assert tally.problems == [], tally.problems
        assert made.leaks() == []
    trials.record(
        "concurrency", "2 and 4 processes at once (run-all, pull-orders, push-stock) on one channel, "
        "and on two channels sharing one ERP", "concurrency",
        trials=1, orders=tally.orders, duplicates=tally.duplicates, losses=tally.losses,
    )


DIFFERENT_CHANNELS = {
    2: lambda a, b: [["--json", "pull-orders", "--channel", a], ["--json", "pull-orders", "--channel", b]],
    4: lambda a, b: [["--json", "pull-orders", "--channel", a], ["--json", "pull-orders", "--channel", b],
                     ["--json", "run-all"], ["--json", "push-stock", "--channel", b]],
}


@pytest.mark.parametrize("kit", SELLING)
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_on_different_channels_work_side_by_side_on_one_erp(
    kit: ChannelKit, processes: int, tmp_path: Path
) -> None:
    with two_channels(tmp_path, kit) as (first, second):
        first.prepare("pull-orders")  # runs on both channels
        second.place_orders(8)
        ran = at_once(first, DIFFERENT_CHANNELS[processes](first.channel, second.channel))
        assert {r.returncode for r in ran} <= {0, 75}, [(r.args, r.returncode, r.stderr[-500:]) for r in ran]
        spans = runs_by_channel(first)
        assert overlapping(spans[first.channel]) == [] and overlapping(spans[second.channel]) == []
        if processes == 2:  # nothing else competed: each channel's lock was its own
            assert [r.returncode for r in ran] == [0, 0]
            assert overlapping([spans[first.channel][-1], spans[second.channel][-1]]), "the channels took turns"
        first.run_to_completion("run-all")
        problems, orders = [], 0
        for side in (first, second):
            tally = check_all(side)
            problems += tally.problems
            orders += tally.orders
        assert problems == []
        assert first.leaks() == []
    trials.record(
        "concurrency", "2 and 4 processes at once (run-all, pull-orders, push-stock) on one channel, "
        "and on two channels sharing one ERP", "concurrency", trials=1, orders=orders,
    )


# Channels: a carrier's only job, track, holds the carrier's lock, so its refreshes never meet.
OAUTH_KITS = [pytest.param(kit, id=kit.kind) for kit in KITS
              if "pull-orders" in kit.jobs and kit.refreshes(kit.make_fake(0)) is not None]  # fmt: skip


@pytest.mark.parametrize("kit", OAUTH_KITS)
def test_processes_that_all_find_the_access_token_voided_refresh_it_once(kit: ChannelKit, tmp_path: Path) -> None:
    """Refresh tokens are single-use: two processes refreshing at once would void each
    other's pair. One refreshes; the others wait for the lock and use the new pair."""
    with world(tmp_path, kit, http=HTTP) as made:
        made.prepare("pull-orders")
        made.run("push-stock")  # the first pair is in the state file
        kit.expire_sessions(made.fake)
        before = kit.refreshes(made.fake)
        ran = at_once(made, [["config", "check", "--online"], ["config", "check", "--online"],
                             ["--json", "pull-orders"], ["--json", "push-stock"]])
        refreshed = kit.refreshes(made.fake) - before
        assert {r.returncode for r in ran} <= {0, 75}, [(r.args, r.returncode, r.stderr[-800:]) for r in ran]
        assert [r.returncode for r in ran[:2]] == [0, 0]
        assert refreshed == 1, f"{refreshed} refresh requests for one voided token"
        made.run_to_completion("pull-orders")
        tally = check(made, "pull-orders")
        assert tally.problems == [] and made.leaks() == []
    trials.record("concurrency: OAuth", "4 processes find the access token voided at once", "refresh_it_once",
                  trials=1, orders=tally.orders)
