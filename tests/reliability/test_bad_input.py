"""Scenario 4, bad input: hostile configuration files, ERP rows no channel can take,
and channel answers with missing fields, wrong types or unexpected statuses. Each bad
item gets a clear message naming it, is recorded as failed (`syncctl status` shows
it), and everything else is done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reliability import trials
from reliability.kits import KITS, ChannelKit, Hostile, VtexKit
from reliability.world import World, world
from syncctl.cli import app
from syncctl.jobs.result import JobResult

pytestmark = pytest.mark.reliability

HTTP = "  rate_per_s: 1000\n  burst: 1000\n  max_retries: 1\n"
KIT = VtexKit()  # config files and ERP rows go through one channel: VTEX, which has every job
runner = CliRunner()


def cli(made: World, *args: str):
    return runner.invoke(app, ["--config", str(made.config_path), *args], env=dict(made.kit.credentials))


def failing_in_status(made: World) -> dict[tuple[str, str], str]:
    """(job, key) -> error, as `syncctl status --json` shows them."""
    return {(f["job"], f["key"]): f["error"] for f in made.status()["failing"]}


# -- hostile configuration files ---------------------------------------------------------------------

def _config(made: World) -> str:
    return made.config_path.read_text()


def _deep(levels: int) -> str:
    return "erp:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, levels)) + "  " * levels + "x: 1\n"


def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


YAML_CORPUS: list[tuple[str, Callable[[World], str | bytes], tuple[str, ...]]] = [
    ("unclosed flow mapping", lambda m: _config(m).replace("prices: {max_drop_pct: 50}", "prices: {max_drop_pct: 50"),
     ("config.yaml:", "invalid YAML")),
    ("tab indentation", lambda m: _config(m).replace("    auto: true", "\tauto: true"), ("config.yaml:",)),
    ("a list at the top", lambda m: "- erp\n- channels\n", ("config.yaml",)),
    ("channels as a list", lambda m: "channels:\n  - vtex-main\n  - ml-main\n", ("config.yaml:", "channels")),
    ("wrong types", lambda m: _config(m).replace("auto: true", "auto: perhaps").replace(
        "max_drop_pct: 50", "max_drop_pct: 400").replace("debit_warehouse: CD-SP}", "debit_warehouse: CD-SP, reserve: -3}"),
     ("config.yaml:", "auto", "max_drop_pct", "reserve")),
    ("a secret where a flag goes", lambda m: _config(m).replace("auto: true", "auto: ${VTEX_APP_TOKEN}"),
     ("config.yaml:", "auto")),
    ("unknown channel type", lambda m: _config(m).replace("type: vtex", "type: vtexx"), ("config.yaml:", "vtexx")),
    ("unknown key", lambda m: _config(m).replace("    auto: true", "    auto: true\n    stok: 1"), ("config.yaml:", "stok")),
    ("missing variable", lambda m: _config(m).replace("${VTEX_APP_TOKEN}", "${NOT_SET_ANYWHERE}"),
     ("config.yaml:", "NOT_SET_ANYWHERE")),
    ("unknown warehouse", lambda m: _config(m).replace("debit_warehouse: CD-SP", "debit_warehouse: NOWHERE"),
     ("config.yaml:", "NOWHERE")),
    ("null credentials", lambda m: _config(m).replace(
        "    credentials:\n      app_key: ${VTEX_APP_KEY}\n      app_token: ${VTEX_APP_TOKEN}\n", "    credentials: null\n"),
     ("config.yaml:", "credentials")),
    ("a python tag", lambda m: '!!python/object/apply:os.system ["touch PWNED"]\n', ("config.yaml",)),
    ("binary garbage", lambda m: bytes(range(256)) * 64, ("config.yaml", "UTF-8")),
    ("huge file", lambda m: _config(m) + "# padding\n" * 300_000, ("config.yaml", "1 MiB")),
    ("alias bomb", lambda m: _laughs(9), ("config.yaml", "aliases")),
    ("self-referencing alias", lambda m: "erp: &loop\n  url: [*loop]\n", ("config.yaml",)),
    ("deep nesting", lambda m: _deep(300), ("config.yaml", "deeper")),
    ("deep flow nesting", lambda m: "erp: " + "[" * 5000 + "]" * 5000 + "\n", ("config.yaml", "deeper")),
]


@pytest.mark.parametrize(("name", "make", "expected"), YAML_CORPUS, ids=[case[0] for case in YAML_CORPUS])
def test_a_hostile_config_file_exits_2_naming_file_line_and_key_and_sends_nothing(
    name: str, make: Callable[[World], str | bytes], expected: tuple[str, ...], tmp_path: Path
) -> None:
    with world(tmp_path, KIT, http=HTTP) as made:
        content = make(made)
        if isinstance(content, bytes):
            made.config_path.write_bytes(content)
        else:
            made.config_path.write_text(content)
        started = time.monotonic()
        results = [cli(made, "run-all"), cli(made, "--json", "run-all"), cli(made, "config", "check")]
        elapsed = time.monotonic() - started
        assert [r.exit_code for r in results] == [2, 2, 2], [r.output[-500:] for r in results]
        assert json.loads(results[1].output)["exit_code"] == 2
        for fragment in expected:
            assert fragment in results[0].output, results[0].output[-800:]
        assert made.chaos.count == 0, "something was sent"
        assert elapsed < 15, f"{name} took {elapsed:.1f} s to refuse"
        assert all("Traceback" not in r.output and len(r.output) < 20_000 for r in results)
        assert not (tmp_path / "PWNED").exists()
        assert made.leaks([r.output for r in results]) == []
    trials.record("bad input: config files", "malformed, huge, alias bombs, deep nesting, wrong types, tags, "
                  "binary, secrets in wrong places: exit 2 with file:line, nothing sent", "hostile_config",
                  trials=1)


# -- ERP rows no channel can take ----------------------------------------------------------------------

@dataclass(frozen=True)
class BadRow:
    name: str
    job: str
    sql: str  # the edit a careless ERP user makes
    key: str  # the item that must fail, and only it
    says: str  # what its message must say


GOOD_NFE = "substr(nfe_key, 1, 43) || ((substr(nfe_key, 44, 1) + 1) % 10)"
BAD_ROWS = [
    BadRow("EAN too short", "push-products", "UPDATE products SET ean = '123' WHERE sku = 'BONE'", "BONE", "EAN"),
    BadRow("EAN with a wrong check digit", "push-products",
           "UPDATE products SET ean = '7890000000018' WHERE sku = 'CANECA'", "CANECA", "check digit"),
    BadRow("EAN with letters", "push-products", "UPDATE products SET ean = '78912345ABCDE' WHERE sku = 'MEIA'",
           "MEIA", "EAN"),
    BadRow("NaN price", "push-prices", "UPDATE prices SET list_price = 'NaN' WHERE sku = 'BONE'", "BONE", "price"),
    BadRow("negative price", "push-prices", "UPDATE prices SET list_price = '-10.00' WHERE sku = 'CINTO'", "CINTO",
           "price"),
    BadRow("infinite price", "push-prices", "UPDATE prices SET sale_price = 'Infinity' WHERE sku = 'MEIA'", "MEIA",
           "price"),
    BadRow("zero price", "push-prices", "UPDATE prices SET list_price = '0.00' WHERE sku = 'BOLSA'", "BOLSA", "price"),
    BadRow("absurd stock", "push-stock", "UPDATE inventories SET quantity = 1000000000000 WHERE sku = 'GARRAFA' "
           "AND warehouse = 'CD-SP'", "GARRAFA", "quantity"),
    BadRow("NF-e key with a wrong check digit", "push-invoices",
           f"UPDATE invoices SET nfe_key = {GOOD_NFE} WHERE order_id = 1", "{order 1}:invoice", "check digit"),
    BadRow("NF-e key too short", "push-invoices", "UPDATE invoices SET nfe_key = '3526' WHERE order_id = 2",
           "{order 2}:invoice", "NF-e access key"),
    BadRow("NF-e key with letters", "push-invoices",
           "UPDATE invoices SET nfe_key = 'ABCDEFGHIJ' || substr(nfe_key, 11) WHERE order_id = 3",
           "{order 3}:invoice", "NF-e access key"),
]


def _key(made: World, key: str) -> str:
    """`{order N}` stands for the channel's id of ERP order N."""
    if key.startswith("{order "):
        number, rest = key[len("{order "):].split("}", 1)
        [(channel_order_id,)] = made.erp_sql(f"SELECT channel_order_id FROM orders WHERE id = {int(number)}")
        return channel_order_id + rest
    return key


@pytest.mark.parametrize("bad", BAD_ROWS, ids=[bad.name for bad in BAD_ROWS])
def test_a_bad_erp_row_fails_alone_with_a_clear_message_and_the_rest_is_sent(bad: BadRow, tmp_path: Path) -> None:
    with world(tmp_path, KIT, http=HTTP) as made:
        made.prepare(bad.job)
        made.erp_sql_write(bad.sql)
        [result] = made.run(bad.job)
        key = _key(made, bad.key)
        assert [f.key for f in result.failures] == [key], result.as_json()
        message = result.failures[0].error
        assert bad.says in message and key.split(":")[0] in message, message
        if bad.job == "push-invoices":  # the order's other parts wait for its invoice
            delivered = made.kit.delivered(made.fake)
            others = [order_id for order_id in made.placed if order_id != key.split(":")[0]]
            assert all(delivered[order_id].invoices for order_id in others)
        else:
            assert result.sent == len(made.catalog) - 1, result.as_json()
        assert failing_in_status(made) == {(bad.job, key): message}
    trials.record("bad input: ERP rows", "bad EANs, NaN/negative/zero prices, absurd stock, invalid NF-e keys: "
                  "the item fails alone, named, shown by status", "bad_erp_row", trials=1)


def test_a_negative_balance_is_sold_as_zero_and_an_unlisted_warehouse_changes_nothing(tmp_path: Path) -> None:
    """A negative balance is real (sales after the count); sending 0 is the truth, while
    failing it would leave the channel's old, positive stock up: an oversell."""
    with world(tmp_path, KIT, http=HTTP) as made:
        made.prepare("push-stock")
        made.erp_sql_write("UPDATE inventories SET quantity = -50 WHERE sku = 'CINTO'")
        made.erp_insert("inventories", [dict(warehouse="XX-99", sku="CINTO", quantity=10**9, status="approved",
                                             approved_at=made.seeded_at, updated_at=made.seeded_at)])
        [result] = made.run("push-stock")
        assert (result.failed, result.sent) == (0, len(made.catalog))
        assert made.kit.stock(made.fake)["CINTO"] == 0


# -- channel answers with missing fields, wrong types, unexpected statuses ---------------------------------

HOSTILE = [pytest.param(kit, case, id=f"{kit.kind}-{case.name}") for kit in KITS for case in kit.hostile_answers()]


@pytest.mark.parametrize(("kit", "case"), HOSTILE)
def test_a_hostile_channel_answer_fails_its_item_alone_and_the_rest_is_done(
    kit: ChannelKit, case: Hostile, tmp_path: Path
) -> None:
    with world(tmp_path, kit, http=HTTP) as made:
        made.prepare(case.job)
        key = case.apply(made)
        results: list[JobResult] = made.run(case.job)
        [result] = results
        assert [f.key for f in result.failures] == [key], result.as_json()
        message = result.failures[0].error
        assert key.split(":")[0] in message or case.says in message, message
        assert case.says in message, message
        assert failing_in_status(made) == {(case.job, key): message}
        assert case.rest_done(made), result.as_json()
    trials.record("bad input: channel answers", "missing fields, wrong types, unexpected statuses in the "
                  "channel's answers: the item fails alone, named, shown by status", "hostile_channel", trials=1)
