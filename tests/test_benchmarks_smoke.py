"""The benchmarks at a small size (BENCHMARKS.md has the real figures): a synthetic ERP
of 10,000 SKUs, two VTEX stores on loopback, syncctl's CLI in a process of its own.
Nothing here is timed; it fails when a run with nothing to do pushes anything, or when
a change does not go out exactly once per channel."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks import scenarios
from benchmarks.scenarios import Conditions, Figures, Lab

SKUS = 10_000
FAST = Conditions(latency_s=0, limit_per_s=2000, client_share=0.96, concurrency=8)
# pull-orders asks each store whether there are new orders on every run: that is
# polling, not pushing. Any other request means a no-op run sent something.
ORDER_POLLS = {("GET", "/api/orders/feed/config"), ("GET", "/api/orders/feed")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with scenarios.lab(tmp_path_factory.mktemp("benchmarks"), SKUS, FAST) as here:
        yield here


def requests_during(lab: Lab, run: Callable[[], list[Figures]]) -> tuple[list[Figures], list[tuple[str, str]]]:
    before = [len(store.fake.requests_log) for store in lab.stores]
    figures = run()
    seen = [(r.method, r.path) for store, start in zip(lab.stores, before) for r in store.fake.requests_log[start:]]
    return figures, seen


def test_a_no_op_run_at_10k_skus_sends_no_request_but_the_order_polls(lab: Lab) -> None:
    [noop], seen = requests_during(lab, lambda: scenarios.noop(lab, runs=1))
    assert set(seen) <= ORDER_POLLS, sorted(set(seen) - ORDER_POLLS)[:10]
    assert (noop["writes"], noop["items_sent"], noop["items_failed"]) == (0, 0, 0)


def test_100_changed_skus_go_out_exactly_once_per_channel_and_then_nothing(lab: Lab) -> None:
    [changed] = scenarios.incremental(lab, runs=1)
    assert changed["writes"] == changed["expected_writes"] and changed["items_failed"] == 0
    [after], seen = requests_during(lab, lambda: scenarios.noop(lab, runs=1))
    assert set(seen) <= ORDER_POLLS and after["writes"] == 0
