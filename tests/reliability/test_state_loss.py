"""Scenario 5, state loss: the state file is deleted between runs. The ERP's unique
keys and the channel's read-back hold: no order or listing is there twice; stock,
prices and order updates are sent again once (an invoice re-sent with the same number
only refreshes VTEX's receipt); the run after that sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import trials
from reliability.chaos import KillPoint
from reliability.checks import check, check_all
from reliability.kits import KITS, ChannelKit
from reliability.world import world
from syncctl.jobs.result import Outcome

pytestmark = pytest.mark.reliability

HTTP = "  rate_per_s: 1000\n  burst: 1000\n"


def sent(results) -> dict[str, int]:
    return {result.job: result.sent for result in results}


@pytest.mark.parametrize("kit", KITS, ids=lambda kit: kit.kind)
def test_losing_the_state_file_duplicates_nothing_and_sends_everything_again_once(
    kit: ChannelKit, tmp_path: Path
) -> None:
    with world(tmp_path, kit, http=HTTP) as made:
        made.prepare_all()  # e.g. listed, orders imported, every order invoiced and shipped in the ERP
        before = sent(made.run("run-all"))
        made.lose_state()
        kit.let_time_pass(made.fake)
        if kit.refreshes(made.fake) is not None:
            # The rotated refresh token lived in the state file; the config's was spent long ago.
            [refused, *_] = made.run("run-all")
            assert refused.outcome is Outcome.auth
            assert kit.reauthorize_hint.format(name=made.channel) in refused.message
            kit.reauthorize(made)
        after_loss = made.run("run-all")
        kit.let_time_pass(made.fake)
        settled = sent(made.run("run-all"))
        tally = check_all(made)
    assert tally.problems == []
    assert all(result.failed == 0 for result in after_loss)
    pushes = [job for job in kit.jobs if job in ("push-products", "push-stock", "push-prices")]
    assert {job: sent(after_loss)[job] for job in pushes} == dict.fromkeys(pushes, len(made.catalog))
    if "push-invoices" in kit.jobs:
        assert before["push-invoices"] == sent(after_loss)["push-invoices"] > 0
        resent = len(made.placed) if kit.resends_invoices else 0
        assert tally.resent == resent, f"each invoice went again {'exactly once' if resent else 'never'}"
    assert settled == dict.fromkeys(settled, 0), settled
    trials.record(
        "state loss", "state file deleted between runs (and after a quarter of the crash trials): "
        "everything re-sent once (VTEX's invoices with the same number: harmless), nothing twice",
        "state_file", trials=1, orders=tally.orders, messages=tally.messages,
    )


SAC_KITS = [pytest.param(kit, id=kit.kind) for kit in KITS if "sync-sac" in kit.jobs]


@pytest.mark.parametrize("kit", SAC_KITS)
def test_a_reply_on_the_channel_whose_record_died_with_the_process_and_the_state_file_is_not_sent_again(
    kit: ChannelKit, tmp_path: Path
) -> None:
    """Found by the crash trials: killed after the channel took a reply and before the
    ERP recorded it, then the state file lost (with the record of the send): the next
    run sent the reply again. It now looks for it on the channel first."""
    with world(tmp_path / "clean", kit, http=HTTP) as clean:
        clean.prepare("sync-sac")
        before = len(clean.fake.requests_log)
        clean.run("sync-sac")
        reply = next(n for n, r in enumerate(clean.fake.requests_log[before:], 1) if r.method == "POST")
    with world(tmp_path / "crash", kit, http=HTTP) as made:
        made.prepare("sync-sac")
        assert made.cli("--json", "sync-sac", kill=KillPoint(reply, "after")).killed
        made.lose_state()
        made.run_to_completion("sync-sac")
        tally = check(made, "sync-sac")
    assert tally.problems == []
