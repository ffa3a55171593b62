"""Scenario 6, secrets: credentials full of quotes, backslashes and dollars, and a
channel that echoes them back in every shape (a parsed message, JSON it cannot parse,
a body cut at 300 characters, a 401, retried 5xx, a value that ends up in a Python
repr and in a traceback). Every stdout, stderr (-v, tracebacks included), --json
document, `status` and the state file are grepped for each credential: whole,
JSON-escaped, repr-escaped, and either half. (Every other scenario greps its own
outputs too.)"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from reliability import trials
from reliability.kits import VtexKit
from reliability.world import World, world

pytestmark = pytest.mark.reliability

HTTP = "  rate_per_s: 1000\n  burst: 1000\n  max_retries: 2\n"


class SymbolKit(VtexKit):
    """VTEX with credentials no regular expression or escaping should get wrong."""

    credentials: ClassVar[Mapping[str, str]] = {
        "VTEX_APP_KEY": "vtexappkey-sym\"bol's-K3y\\ZZ",
        "VTEX_APP_TOKEN": "t0ken\\with\"quotes'and$dollars{}%-NEVER-shown",
    }


TOKEN = SymbolKit.credentials["VTEX_APP_TOKEN"]


def echo(made: World, method: str, path: str, status: int, body: object, times: int | None = None) -> None:
    made.fake.faults.add(method=method, path_prefix=path, status=status, body=body, times=times)


def test_no_credential_shows_anywhere_whatever_the_channel_echoes(tmp_path: Path) -> None:
    with world(tmp_path, SymbolKit(), http=HTTP) as made:
        made.prepare("push-stock")
        made.run("pull-orders")  # sets the order feed up
        skus = list(made.fake.skus)
        inventory = "/api/logistics/pvt/inventory/skus/{}/"
        echo(made, "PUT", inventory.format(skus[0]), 400, {"Message": f"AppToken {TOKEN} is not allowed here"}, None)
        echo(made, "PUT", inventory.format(skus[1]), 400, {"errors": [{"detail": f"X-VTEX-API-AppToken={TOKEN}"}]}, None)
        echo(made, "PUT", inventory.format(skus[2]), 400, "!" * 280 + f" token={TOKEN}", None)
        echo(made, "PUT", inventory.format(skus[3]), 503, f"upstream saw {TOKEN}", 2)
        stock = [made.cli("-v", "push-stock"), made.cli("--json", "-v", "push-stock", "--full")]

        [order_id] = made.place_orders(1)
        made.fake.orders[order_id]["items"][0]["quantity"] = TOKEN  # int() puts it in a repr
        orders = [made.cli("--json", "-v", "pull-orders")]
        listed = {"list": [{"orderId": order_id}], "paging": {"pages": TOKEN}}
        echo(made, "GET", "/api/oms/pvt/orders", 200, listed, None)
        orders.append(made.cli("-v", "pull-orders", "--since", "2026-01-01T00:00:00Z"))  # a traceback at -v

        made.fake.faults.clear()
        echo(made, "GET", "/relshop/pricing/prices/", 401, {"Message": f"token {TOKEN} has expired"}, None)
        refused = made.cli("--json", "-v", "push-prices", "--full")
        status = [made.cli("-v", "status"), made.cli("--json", "status")]

        assert [r.returncode for r in stock] == [1, 1], [r.stderr[-2000:] for r in stock]
        assert orders[0].returncode == 1 and orders[1].returncode == 1
        assert "Traceback" in orders[1].stderr, "the broken-off run's traceback is logged at -v"
        assert refused.returncode == 3
        assert "vtex-main" in status[0].stdout and order_id in status[1].stdout
        leaks = made.leaks()
    assert leaks == []
    trials.record(
        "secrets", "credentials with quotes, backslashes and $; the channel echoes them in parsed and unparsed "
        "bodies, cut at 300 chars, in a 401, in retried 5xx, into a repr and a traceback; every output and the "
        "state file grepped (whole, JSON- and repr-escaped, halves)", "secrets", trials=1,
    )
