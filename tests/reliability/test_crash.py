"""Scenario 1, crash anywhere (and 5, state loss after a crash): each job runs as its own
process, as cron runs it, and is SIGKILLed at a random request: before the channel
sees it, after the channel applied it but before syncctl read the answer, or while
syncctl works on the answer (ERP transaction, state write). Then it is rerun to
completion and the ERP and the channel must agree: every order once with one debit
per line, every invoice once, stock and prices as the ERP says."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from reliability import trials
from reliability.chaos import PHASES, KillPoint
from reliability.checks import check
from reliability.kits import KITS, ChannelKit
from reliability.world import World, clean_requests, world
from syncctl.state import StateStore

pytestmark = pytest.mark.reliability

CI_TRIALS, FULL_TRIALS = 2, 50
STATE_LOSS_SHARE = 0.25  # of trials that also lose the state file right after the kill
FAST_HTTP = "  rate_per_s: 1000\n  burst: 1000\n"  # the token bucket would only slow trials down

CASES = [pytest.param(kit, job, id=f"{kit.kind}-{job}") for kit in KITS for job in kit.jobs]


@dataclass
class Trial:
    index: int
    point: KillPoint
    lose_state: bool
    killed: bool = False
    reruns: int = 0
    orders: int = 0
    messages: int = 0
    resent: int = 0
    losses: int = 0
    duplicates: int = 0
    leaks: int = 0
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        lost = ", then lost the state file" if self.lose_state else ""
        return f"trial {self.index}: {self.point}{lost}: {'; '.join(self.problems)}"


def crash_trial(root: Path, kit: ChannelKit, job: str, index: int, requests: int) -> Trial:
    rng = trials.rng("crash", kit.kind, job, index)
    point = KillPoint(rng.randint(1, requests), rng.choice(PHASES), rng.uniform(0, 0.05))
    trial = Trial(index, point, lose_state=rng.random() < STATE_LOSS_SHARE)
    with world(root, kit, http=FAST_HTTP) as made:
        made.prepare(job)
        trial.killed = made.cli("--json", "-v", job, kill=point).killed
        pair_may_be_lost = _killed_an_applied_refresh(made, point)
        if trial.lose_state:
            made.lose_state()
        trial.reruns = made.run_to_completion(job)
        tally = check(made, job)
        problems = list(tally.problems) + _status_problems(made)
        if not trial.killed and point.phase != "between":
            # (A kill timed to land while the last answer is handled may come after the
            # process is gone: that trial is a plain run and rerun, still checked.)
            problems.append("the process finished before the kill point")
        if made.reauthorized and not trial.lose_state and not pair_may_be_lost:
            problems.append("the channel had to be authorized again, though its token pair was kept")
        leaks = made.leaks()
    trial.orders, trial.messages, trial.resent = tally.orders, tally.messages, tally.resent
    trial.losses, trial.duplicates, trial.leaks = tally.losses, tally.duplicates, len(leaks)
    trial.problems = tuple(problems + leaks)
    return trial


def _killed_an_applied_refresh(made: World, point: KillPoint) -> bool:
    """The kill landed on a refresh grant the channel had applied: the rotated pair died
    with the process (the documented limit of single-use refresh tokens)."""
    return point.phase != "before" and made.chaos.killed_on == ("POST", made.kit.token_path)


def _status_problems(made: World) -> list[str]:
    """After completion the last run of every job is ok and nothing is left failing."""
    store = StateStore(made.root / "state.db")
    try:
        runs, failing = store.last_runs(), store.failing()
    finally:
        store.close()
    problems = [f"last {r.job} run is {r.outcome}: {r.message}" for r in runs if r.outcome not in ("ok", "unsupported")]
    return problems + [f"still failing: {f.key}: {f.error}" for f in failing]


@pytest.mark.parametrize(("kit", "job"), CASES)
def test_a_job_killed_anywhere_and_rerun_loses_and_doubles_nothing(kit: ChannelKit, job: str, tmp_path: Path) -> None:
    count = trials.trials(CI_TRIALS, FULL_TRIALS)
    requests = clean_requests(tmp_path / "clean", kit, job, http=FAST_HTTP)
    with ThreadPoolExecutor(trials.WORKERS) as pool:
        done = list(pool.map(
            lambda index: crash_trial(tmp_path / f"trial-{index}", kit, job, index, requests), range(count)
        ))
    failed = [trial for trial in done if trial.problems]
    trials.record(
        f"crash: {job}" if len(KITS) == 1 else f"crash: {kit.kind} {job}",
        f"SIGKILL at a random one of {requests} requests (before / after applied / while handling the answer), "
        "rerun to completion; a quarter also lose the state file",
        f"crash and {kit.kind}-{job}",
        trials=count, orders=sum(t.orders for t in done), messages=sum(t.messages for t in done),
        losses=sum(t.losses for t in done), duplicates=sum(t.duplicates for t in done),
        leaks=sum(t.leaks for t in done),
    )
    assert not failed, f"seed {trials.SEED}:\n" + "\n".join(map(str, failed))


def test_status_after_a_crash_and_a_rerun_shows_every_job_ok(tmp_path: Path) -> None:
    """Scenario 7 after a crash: the killed run stays in the log as unfinished, the
    rerun is what `syncctl status` reports, and nothing is left failing."""
    kit = KITS[0]
    with world(tmp_path, kit, http=FAST_HTTP) as made:
        made.prepare("pull-orders")
        assert made.cli("pull-orders", kill=KillPoint(20, "after")).killed
        made.run_to_completion("pull-orders")
        status = made.cli("--json", "status")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert {(r["job"], r["outcome"]) for r in doc["runs"]} == {("push-products", "ok"), ("pull-orders", "ok")}
        assert doc["failing"] == []
        assert made.leaks() == []



OAUTH_KITS = [pytest.param(kit, id=kit.kind) for kit in KITS if kit.refreshes(kit.make_fake(0)) is not None]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("kit", OAUTH_KITS)
def test_a_kill_at_the_token_refresh_loses_nothing_and_at_worst_asks_for_a_new_authorization(
    kit: ChannelKit, phase: str, tmp_path: Path
) -> None:
    """The refresh token is single-use: killed after the channel rotated it but before the
    new pair reached the state file, the pair is gone, and no client can get it back.
    syncctl then says how to authorize again (exit 3); once done, nothing is lost."""
    job = kit.jobs[0]
    with world(tmp_path, kit, http=FAST_HTTP) as made:
        made.prepare(job)  # runs on it: a pair in the state file
        kit.expire_sessions(made.fake)
        refreshes = kit.refreshes(made.fake)
        # Request 1 meets the voided token (401); request 2 is the refresh.
        assert made.cli("--json", job, kill=KillPoint(2, phase, 0.02)).killed
        assert kit.refreshes(made.fake) - refreshes == (0 if phase == "before" else 1)
        after = made.cli("--json", job)
        if after.returncode == 3:
            assert phase != "before" and kit.reauthorize_hint.format(name=made.channel) in after.stdout
        else:
            assert after.returncode == 0, after.stdout + after.stderr
        made.run_to_completion(job)
        tally = check(made, job)
        assert tally.problems == [] and made.leaks() == []
