"""`syncctl demo` shows VTEX and Mercado Livre side by side (the issue's acceptance)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from syncctl.cli import app
from syncctl.cli.demo_view import DemoView
from syncctl.cli.output import Output
from syncctl.demo import Step
from syncctl.sandbox.vtex import FakeVtex

runner = CliRunner()


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["--json", "demo", "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["steps"]


def ml_results(step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["job"]: r for r in step["results"] if r["channel"] == "ml-main"}


def test_every_step_shows_what_each_channel_holds(steps: list[dict[str, Any]]) -> None:
    for step in steps:
        assert {row["ref"] for row in step["vtex"]} == {row["sku"] for row in step["mercadolivre"]["listings"]}


def test_the_first_sync_links_ml_listings_and_skips_the_full_one(steps: list[dict[str, Any]]) -> None:
    first = ml_results(steps[0])
    assert {job: r["sent"] for job, r in first.items()} == {
        "pull-orders": 0, "push-products": 5, "push-stock": 4, "push-prices": 5, "push-invoices": 0, "sync-sac": 0,
    }  # fmt: skip
    assert first["push-stock"]["skipped"] == 1 and "Full listing" in first["push-stock"]["notes"][0]
    listings = {row["sku"]: row for row in steps[0]["mercadolivre"]["listings"]}
    assert (listings["CAM-BASICA-P"]["price"], listings["CAM-BASICA-P"]["discount"]) == ("99.9", "79.9")
    assert not any(route.startswith("POST /items") for route in steps[0]["mercadolivre"]["requests"])


def test_the_cart_comes_down_once_its_nfe_unlocks_the_label_and_the_answer_goes_up(steps: list[dict[str, Any]]) -> None:
    sale, invoiced = steps[1], steps[2]
    assert (ml_results(sale)["pull-orders"]["sent"], ml_results(sale)["sync-sac"]["sent"]) == (1, 1)
    assert list(sale["mercadolivre"]["labels"].values()) == ["invoice_pending"]
    assert list(invoiced["mercadolivre"]["labels"].values()) == ["ready_to_print"]
    [conversation] = invoiced["mercadolivre"]["messages"].values()
    assert len(conversation) == 2 and conversation[1].startswith("123456789: Olá! Sim")


def test_the_last_run_sends_ml_nothing(steps: list[dict[str, Any]]) -> None:
    last = steps[-1]
    assert all(r["sent"] == 0 and r["failed"] == 0 for r in ml_results(last).values())
    assert all(route.startswith("GET ") for route in last["mercadolivre"]["requests"])


def test_the_terminal_view_puts_the_two_channels_side_by_side(steps: list[dict[str, Any]]) -> None:
    out = Output()
    out.console = Console(record=True, width=240)
    step = Step("1. First sync", [], Counter(), mercadolivre=steps[0]["mercadolivre"])

    DemoView(out).show(step, FakeVtex(), None)  # type: ignore[arg-type]

    titles = [line for line in out.console.export_text().splitlines() if "on VTEX now" in line]
    assert titles and "on Mercado Livre now" in titles[0]  # one row: the tables side by side
