"""The command line as users meet it: exit codes, messages, --json, the switch,
locks across processes, and secrets that never show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import APP_KEY, APP_TOKEN, ENV, Shop
from syncctl import locks
from syncctl.cli import app, hoist_global_options
from syncctl.paths import lock_dir
from syncctl.sandbox.server import serve

runner = CliRunner()


@pytest.fixture
def live(shop: Shop, monkeypatch) -> Iterator[Shop]:
    """The shop with its sandbox VTEX on loopback, as a separate process would reach it."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with serve(shop.fake) as server:
        shop.base_url = server.url
        shop.write_config()
        yield shop


def cli(shop: Shop, *args: str):
    argv = hoist_global_options(["--config", str(shop.config_path), *args])
    return runner.invoke(app, argv)


def test_global_options_may_follow_the_subcommand() -> None:
    argv = ["push-stock", "--channel", "x", "--json", "--config", "c.yaml", "-q"]
    assert hoist_global_options(argv) == ["--json", "--config", "c.yaml", "-q", "push-stock", "--channel", "x"]


# -- configuration problems: exit 2, file and line, nothing sent ------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda text: text.replace("    auto: true\n", "    auto: true\n    stok: 1\n"), ["config.yaml:10", "stok"]),
        (lambda text: text.replace("${VTEX_APP_TOKEN}", "${VTEX_TOKEN_TYPO}"), ["config.yaml:13", "VTEX_TOKEN_TYPO"]),
        (lambda text: text.replace("    auto: true\n", "    auto: true\n   - broken: [\n"), ["config.yaml:"]),
        (lambda text: text.replace("debit_warehouse: CD-SP", "debit_warehouse: CD-XX"), ["config.yaml:16", "CD-XX"]),
    ],
    ids=["unknown-key", "missing-var", "malformed-yaml", "unknown-warehouse"],
)
def test_configuration_problems_exit_2_with_file_and_line_and_send_nothing(live: Shop, edit, expected) -> None:
    live.config_path.write_text(edit(live.config_path.read_text()))
    result = cli(live, "run-all")
    assert result.exit_code == 2, result.output
    for fragment in expected:
        assert fragment in result.output
    assert live.fake.requests_log == []


def test_config_check_accepts_the_example_file(live: Shop) -> None:
    example = live.root / "example.yaml"  # pointed at the shop's ERP, which has the example's warehouses
    text = (Path(__file__).parent.parent / "config.example.yaml").read_text()
    example.write_text(text.replace("url: sqlite:///erp.db", f"url: {live.erp_url}", 1))
    result = runner.invoke(app, ["--config", str(example), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "example.yaml: ok" in result.output


# -- the automatic switch ----------------------------------------------------------------------------


def test_disable_keeps_comments_run_all_skips_and_manual_jobs_still_run(live: Shop) -> None:
    before = live.config_path.read_text()
    assert cli(live, "channel", "disable", "vtex-main").exit_code == 0
    after = live.config_path.read_text()
    assert "# the main store" in after and "# test shop" in after
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [("    auto: true", "    auto: false")]

    result = cli(live, "--json", "run-all")
    assert result.exit_code == 0
    assert json.loads(result.output)["results"] == []
    assert live.fake.requests_log == []

    manual = cli(live, "--json", "push-products", "--channel", "vtex-main")
    assert manual.exit_code == 0
    [entry] = json.loads(manual.output)["results"]
    assert (entry["channel"], entry["sent"]) == ("vtex-main", 5)


def test_a_feature_switch_turns_one_job_off(live: Shop) -> None:
    assert cli(live, "channel", "disable", "vtex-main", "--feature", "stock").exit_code == 0
    doc = json.loads(cli(live, "--json", "push-stock", "--channel", "vtex-main").output)
    assert doc["results"][0]["outcome"] == "off"
    listing = json.loads(cli(live, "--json", "channel", "list").output)
    assert listing["channels"][0]["features"]["stock"] == "off"
    assert listing["channels"][0]["features"]["sac"] == "unsupported"


# -- output --------------------------------------------------------------------------------------------


def test_json_output_is_one_document_in_the_contract_shape(live: Shop) -> None:
    result = cli(live, "push-products", "--json")
    doc = json.loads(result.output)
    assert set(doc) == {"command", "started_at", "finished_at", "exit_code", "results"}
    assert doc["command"] == "push-products" and doc["exit_code"] == 0
    [entry] = doc["results"]
    assert {"channel", "job", "sent", "unchanged", "failed", "skipped", "failures"} <= set(entry)


def test_status_shows_the_failing_sku_and_why(live: Shop) -> None:
    cli(live, "push-products")
    bad = live.vtex_sku_id("BONE-AZUL")
    live.fake.faults.add(method="PUT", path_prefix=f"/api/logistics/pvt/inventory/skus/{bad}/", status=400,
                         body='"SKU is blocked"', times=None)
    assert cli(live, "push-stock").exit_code == 1
    status = cli(live, "status")
    assert status.exit_code == 0
    assert "BONE-AZUL" in status.output and "HTTP 400 from VTEX: SKU is blocked" in status.output
    doc = json.loads(cli(live, "status", "--json").output)
    assert [(f["key"], f["attempts"]) for f in doc["failing"]] == [("BONE-AZUL", 1)]


def test_sync_sac_says_vtex_has_no_ticket_api(live: Shop) -> None:
    result = cli(live, "sync-sac", "--channel", "vtex-main")
    assert result.exit_code == 0
    assert "no customer-service ticket API" in result.output


# -- one process per channel ---------------------------------------------------------------------------


def test_a_second_process_on_the_same_channel_exits_75(live: Shop) -> None:
    env = {**os.environ, **ENV}
    command = [sys.executable, "-m", "syncctl", "--config", str(live.config_path), "push-products"]
    with locks.hold(lock_dir(live.root / "state.db"), "channel-vtex-main"):
        busy = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert busy.returncode == 75, busy.stderr
    assert "busy" in busy.stdout + busy.stderr
    free = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert free.returncode == 0, free.stderr


# -- secrets ---------------------------------------------------------------------------------------------


def test_no_credential_value_appears_in_output_logs_or_state(live: Shop, monkeypatch) -> None:
    outputs = [
        cli(live, "-v", "run-all"),
        cli(live, "--json", "run-all"),
        cli(live, "channel", "show", "vtex-main"),
        cli(live, "-v", "status"),
    ]
    wrong_token = "wrong-token-VTEX-refuses-it"
    monkeypatch.setenv("VTEX_APP_TOKEN", wrong_token)  # VTEX answers 401
    refused = cli(live, "-v", "--json", "push-stock", "--full")
    assert refused.exit_code == 3
    assert json.loads(refused.output)["results"][0]["outcome"] == "auth"
    outputs.append(refused)
    texts = [r.output for r in outputs]
    texts += [p.read_bytes().decode("latin-1") for p in live.root.glob("state.db*") if p.is_file()]
    assert any("vtex-main" in text for text in texts)
    for text in texts:
        for secret in (APP_TOKEN, APP_KEY, wrong_token):
            assert secret not in text


# -- the demo -------------------------------------------------------------------------------------------


def test_demo_exits_0_and_its_last_run_all_sends_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--json", "demo", "--workdir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["steps"]
    first, last = steps[0], steps[-1]
    assert {r["job"]: r["sent"] for r in first["results"] if r["channel"] != "ml-main"} == {  # ML: test_ml_demo.py
        "pull-orders": 0, "push-products": 5, "push-stock": 5, "push-prices": 5, "push-invoices": 0, "track": 0,
    }
    assert all(r["sent"] == 0 and r["failed"] == 0 for r in last["results"])
    assert all(route.startswith("GET ") for route in last["requests_to_vtex"])


def test_config_check_online_tries_the_credentials_and_the_warehouse(live: Shop, monkeypatch) -> None:
    assert cli(live, "config", "check", "--online").exit_code == 0
    live.config_path.write_text(live.config_path.read_text().replace('warehouse_id: "1_1"', 'warehouse_id: "1_9"'))
    wrong_warehouse = cli(live, "config", "check", "--online")
    assert wrong_warehouse.exit_code == 3 and "'1_9' is not a VTEX warehouse" in wrong_warehouse.output
    monkeypatch.setenv("VTEX_APP_TOKEN", "not-the-token")
    refused = cli(live, "config", "check", "--online")
    assert refused.exit_code == 3 and "vtex-main" in refused.output and "not-the-token" not in refused.output
