"""Loading, validating and editing the configuration file."""

from __future__ import annotations

import difflib
import os
import stat
import textwrap
import time
from pathlib import Path

import pytest
from conftest import CARRIER_ENV
from pydantic import BaseModel, ConfigDict, SecretStr

import syncctl.channels
from syncctl import config as config_module
from syncctl import paths
from syncctl.config import Config, ErpSettings, StateSettings, load, set_flag
from syncctl.domain import Feature
from syncctl.errors import ConfigError, Problem
from syncctl.redact import redact

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"
ENV = {"VTEX_APP_KEY": "vtex-key-from-env-7f3a", "VTEX_APP_TOKEN": "vtex-token-from-env-9c1e", **CARRIER_ENV}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FakeVtex:
    """Stands in for syncctl.channels.vtex.VtexChannel: the same settings models."""

    class Credentials(_Strict):
        app_key: SecretStr
        app_token: SecretStr

    class Options(_Strict):
        account: str
        environment: str = "vtexcommercestable"
        warehouse_id: str
        sales_channel: int = 1
        pricing_base_url: str | None = None
        category_path: str | None = None
        lead_time: str = "00:00:00"
        feed_visibility_timeout_s: int = 300
        backstop_minutes: int = 30

    supported = frozenset(Feature) - {Feature.sac}


# The real adapter: the example file has an ml-main block.
MERCADOLIVRE = syncctl.channels.channel_class("mercadolivre")


@pytest.fixture(autouse=True)
def registries(monkeypatch: pytest.MonkeyPatch) -> None:
    types = {"vtex": FakeVtex, "mercadolivre": MERCADOLIVRE}
    monkeypatch.setattr(syncctl.channels, "channel_types", lambda: sorted(types))
    monkeypatch.setattr(syncctl.channels, "channel_class", types.__getitem__)
    # Carriers are the real registry: config tests need only their settings models.


VALID = """\
channels:
  shop:
    type: vtex
    auto: true
    credentials:
      app_key: ${VTEX_APP_KEY}
      app_token: ${VTEX_APP_TOKEN}
    stock:
      debit_warehouse: CD-SP
    options: {account: mystore, warehouse_id: "1_1"}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(path, environ=ENV if environ is None else environ)
    return caught.value.problems


def line_diff(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]


# -- the example file ----------------------------------------------------------------------


def test_example_loads_with_its_variables_set() -> None:
    config = load(EXAMPLE, environ=ENV)

    vtex = config.channels["vtex-main"]
    assert config.source == EXAMPLE.resolve()
    assert (vtex.name, vtex.type, vtex.auto) == ("vtex-main", "vtex", True)
    assert vtex.credentials.app_token.get_secret_value() == ENV["VTEX_APP_TOKEN"]
    assert vtex.options == FakeVtex.Options(
        account="mystore", warehouse_id="1_1", category_path="Roupas/Camisetas"
    )
    assert vtex.stock.debit_warehouse == "CD-SP" and vtex.stock.from_warehouses == ["CD-SP", "LOJA-01"]
    assert vtex.features is not None and vtex.features[Feature.sac] is False
    assert config.http.max_retry_after_s == 120 and config.state.resend_after_h == 24
    assert config.erp.debits_stock is False
    assert {name: carrier.type for name, carrier in config.carriers.items()} == {
        "correios": "correios", "jadlog": "jadlog", "melhorenvio": "melhorenvio",
    }  # fmt: skip
    assert config.carriers["correios"].credentials.postcard.get_secret_value() == "0012345678"


def unwritten_keys(config: Config, adapter: type) -> list[str]:
    """Keys of the models (and of the adapter's credentials and options) that the
    example does not write out."""
    lines = EXAMPLE.read_text().splitlines()
    channel = ("channels", "vtex-main")
    blocks: list[tuple[tuple[str, ...], type[BaseModel]]] = [
        (("erp",), ErpSettings),
        (("state",), StateSettings),
        (("http",), config_module.HttpSettings),
        (channel, config_module.ChannelSettings),
        (channel + ("stock",), config_module.StockSettings),
        (channel + ("prices",), config_module.PriceSettings),
        (channel + ("orders",), config_module.OrderSettings),
        (channel + ("http",), config_module.HttpOverrides),
        (channel + ("credentials",), adapter.Credentials),
        (channel + ("options",), adapter.Options),
    ]
    return [
        ".".join(prefix + (key,))
        for prefix, model in blocks
        for key in model.model_fields
        if key != "name" and f"{key}:" not in lines[(config.line_of(*prefix, key) or 1) - 1]
    ]


def test_example_writes_every_key_the_models_accept() -> None:
    assert unwritten_keys(load(EXAMPLE, environ=ENV), FakeVtex) == []


def test_example_matches_the_real_vtex_type(monkeypatch: pytest.MonkeyPatch) -> None:
    vtex = pytest.importorskip("syncctl.channels.vtex")
    monkeypatch.setattr(syncctl.channels, "channel_class", {"vtex": vtex.VtexChannel, "mercadolivre": MERCADOLIVRE}.__getitem__)

    config = load(EXAMPLE, environ=ENV)

    assert isinstance(config.channels["vtex-main"].options, vtex.VtexChannel.Options)
    assert unwritten_keys(config, vtex.VtexChannel) == []


# -- parse problems ------------------------------------------------------------------------


def test_malformed_yaml_reports_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "erp:\n  url: sqlite:///erp.db\n debits_stock: true\nstate: {}\n")

    with pytest.raises(ConfigError) as caught:
        load(path, environ=ENV)

    assert f"{path.resolve()}:3: invalid YAML" in str(caught.value)
    assert "fix the YAML there" in str(caught.value)


def test_unquoted_variable_in_a_flow_mapping_says_to_quote_it(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  shop: {type: vtex, credentials: {app_key: ${X}}}\n")

    [problem] = problems(path)

    assert problem.line == 2 and '"${VAR}" in quotes' in problem.message


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = write(tmp_path, "\n".join(levels) + "\n")

    started = time.monotonic()
    [problem] = problems(path)

    assert time.monotonic() - started < 2
    assert "aliases" in problem.message


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "erp: " + "[" * 200 + "]" * 200 + "\n")

    [problem] = problems(path)

    assert "nest" in problem.message


def test_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# padding\n" * 120_000)

    [problem] = problems(path)

    assert "larger than 1 MiB" in problem.message


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    [problem] = problems(tmp_path / "nowhere.yaml")

    assert "config.example.yaml" in problem.message


# -- interpolation -------------------------------------------------------------------------


def test_missing_variable_names_file_line_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)

    [problem] = problems(path, {"VTEX_APP_KEY": "k" * 8})

    assert (problem.file, problem.line) == (str(path.resolve()), 7)
    assert "${VTEX_APP_TOKEN}" in problem.message
    assert "export VTEX_APP_TOKEN=" in problem.message and "LoadCredential" in problem.message
    assert "${VTEX_APP_TOKEN}" in redact(str(problem))  # the placeholder is no secret


def test_credentials_directory_is_read_when_the_environment_lacks_a_variable(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "VTEX_APP_TOKEN").write_text("token-from-systemd\n\n")
    (credentials / "VTEX_APP_KEY").write_text("loses-to-the-environment")
    path = write(tmp_path, VALID)

    config = load(path, environ={"VTEX_APP_KEY": "key-from-env", "CREDENTIALS_DIRECTORY": str(credentials)})

    shop = config.channels["shop"].credentials
    assert shop.app_token.get_secret_value() == "token-from-systemd\n"  # exactly one newline stripped
    assert shop.app_key.get_secret_value() == "key-from-env"


def test_variables_are_replaced_inside_text_and_double_dollar_escapes(tmp_path: Path) -> None:
    text = "erp:\n  url: postgresql://syncctl@${DB_HOST}/erp\nstate:\n  path: $${HOME}/state.db\n"
    path = write(tmp_path, text)

    config = load(path, environ={"DB_HOST": "db.internal"})

    assert config.erp.url == "postgresql://syncctl@db.internal/erp"
    assert config.state.path == "${HOME}/state.db"


# -- validation problems -------------------------------------------------------------------


def test_unknown_key_gives_its_line_and_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    stock:\n", "    stok:\n"))

    found = problems(path)

    unknown = [p for p in found if "unknown key 'stok'" in p.message]
    assert len(unknown) == 1 and unknown[0].line == 8
    assert "in channels.shop; did you mean 'stock'?" in unknown[0].message


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  timeout_s: 10\n  zzz: 1\n")

    [problem] = problems(path)

    assert problem.line == 3
    assert "unknown key 'zzz' in http; remove it (allowed here: timeout_s, max_retries" in problem.message


def test_wrong_type_gives_the_line_and_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("auto: true", "auto: maybe"))

    [problem] = problems(path)

    assert problem.line == 4
    assert "channels.shop.auto" in problem.message and "'maybe'" in problem.message


def test_unknown_channel_type_gives_the_line_and_the_known_types(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("type: vtex", "type: vtx"))

    [problem] = problems(path)

    assert problem.line == 3
    assert "unknown channel type 'vtx'" in problem.message
    assert "did you mean 'vtex'?" in problem.message and "known types: mercadolivre, vtex" in problem.message


def test_channel_without_type_is_reported_at_the_channel(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  shop:\n    auto: true\n")

    [problem] = problems(path)

    assert problem.line == 2 and "has no type" in problem.message and "vtex" in problem.message


def test_missing_options_block_reports_the_required_options_at_the_channel(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('    options: {account: mystore, warehouse_id: "1_1"}\n', ""))

    found = problems(path)

    assert [(p.line, p.message) for p in found] == [
        (2, "missing key 'account' in channels.shop.options; add it"),
        (2, "missing key 'warehouse_id' in channels.shop.options; add it"),
    ]


def test_orders_on_without_debit_warehouse_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("      debit_warehouse: CD-SP\n", "      reserve: 2\n"))

    [problem] = problems(path)

    assert problem.line == 8  # the stock block, where the key belongs
    assert "pulls orders but has no stock.debit_warehouse" in problem.message


def test_orders_off_needs_no_debit_warehouse(tmp_path: Path) -> None:
    text = VALID.replace("      debit_warehouse: CD-SP\n", "      reserve: 2\n")
    text = text.replace("    auto: true\n", "    auto: true\n    features: {orders: false}\n")
    path = write(tmp_path, text)

    assert load(path, environ=ENV).channels["shop"].feature_on(Feature.orders) is False


def test_every_problem_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = "http:\n  timeout_s: -1\n" + VALID.replace("auto: true", "auto: maybe").replace("stock:", "stok:")
    path = write(tmp_path, text)

    found = problems(path, {"VTEX_APP_KEY": "k" * 8})

    assert [p.line for p in found] == [2, 6, 9, 10]
    assert "http.timeout_s" in found[0].message and "channels.shop.auto" in found[1].message
    assert "${VTEX_APP_TOKEN}" in found[2].message and "unknown key 'stok'" in found[3].message


def test_a_channel_may_not_name_itself(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    auto: true\n", "    auto: true\n    name: other\n"))

    [problem] = problems(path)

    assert problem.line == 5 and "unknown key 'name'" in problem.message


def test_credential_values_are_registered_with_the_redactor(tmp_path: Path) -> None:
    text = VALID + "carriers:\n  jadlog:\n    type: jadlog\n    credentials: {token: jadlog-token-55ab}\n"
    path = write(tmp_path, text)

    load(path, environ=ENV)

    masked = redact(f"sent {ENV['VTEX_APP_KEY']} and {ENV['VTEX_APP_TOKEN']} and jadlog-token-55ab")
    assert masked == "sent *** and *** and ***"


def test_credential_errors_never_echo_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("${VTEX_APP_TOKEN}", "[secret-in-a-list-31f]"))

    [problem] = problems(path)

    assert problem.line == 7 and "secret-in-a-list" not in problem.message


def test_line_of_finds_keys_and_falls_back_to_the_nearest_written_ancestor(tmp_path: Path) -> None:
    config = load(write(tmp_path, VALID), environ=ENV)

    assert config.line_of("channels", "shop", "stock", "debit_warehouse") == 9
    assert config.line_of("channels", "shop", "stock", "from_warehouses") == 8
    assert config.line_of("erp", "url") is None


# -- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///erp.db", "sqlite:///{folder}/erp.db"),
        ("sqlite:///data/erp.db?mode=ro", "sqlite:///{folder}/data/erp.db?mode=ro"),
        ("sqlite:////srv/erp.db", "sqlite:////srv/erp.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@h/erp", "postgresql://u@h/erp"),
    ],
)
def test_erp_url_resolves_relative_sqlite_paths_against_the_config_folder(
    tmp_path: Path, url: str, expected: str
) -> None:
    config = Config(source=tmp_path / "config.yaml", erp=ErpSettings(url=url))

    assert config.erp_url() == expected.format(folder=tmp_path.resolve())


def test_state_path_prefers_override_then_file_then_platform_default(tmp_path: Path) -> None:
    relative = Config(source=tmp_path / "config.yaml", state=StateSettings(path="state/s.db"))
    default = Config(source=tmp_path / "config.yaml")

    assert relative.state_path(Path("/x/y.db")) == Path("/x/y.db")
    assert relative.state_path() == tmp_path.resolve() / "state" / "s.db"
    assert default.state_path() == paths.default_state_path()


# -- set_flag ------------------------------------------------------------------------------

COMMENTED = """\
# syncctl for the shop
erp:
    url: 'sqlite:///erp.db'   # quoted on purpose
channels:
    # the main store
    shop:
        type: vtex
        auto: true            # timers include it
        credentials:
            app_key: ${VTEX_APP_KEY}
            app_token: "${VTEX_APP_TOKEN}"
        features:
            stock: true       # only stock for now
            orders: false
        stock:
            from_warehouses:
              - CD-SP         # the big one
              - LOJA-01
            debit_warehouse: null
    outlet: {type: vtex, auto: false, features: {stock: true, orders: false}}
"""


def test_set_flag_changes_only_the_auto_line(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)

    set_flag(path, "shop", False)

    assert line_diff(COMMENTED, path.read_text()) == [
        "-         auto: true            # timers include it",
        "+         auto: false            # timers include it",
    ]


def test_set_flag_changes_only_one_feature_line(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)

    set_flag(path, "shop", True, Feature.orders)

    assert line_diff(COMMENTED, path.read_text()) == [
        "-             orders: false",
        "+             orders: true",
    ]


def test_set_flag_edits_a_flow_mapping_in_place(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)

    set_flag(path, "outlet", True, Feature.orders)
    set_flag(path, "outlet", True)

    assert line_diff(COMMENTED, path.read_text()) == [
        "-     outlet: {type: vtex, auto: false, features: {stock: true, orders: false}}",
        "+     outlet: {type: vtex, auto: true, features: {stock: true, orders: true}}",
    ]


def test_set_flag_adds_a_feature_missing_from_a_flow_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)

    set_flag(path, "outlet", True, Feature.prices)

    assert line_diff(COMMENTED, path.read_text()) == [
        "-     outlet: {type: vtex, auto: false, features: {stock: true, orders: false}}",
        "+     outlet: {type: vtex, auto: false, features: {stock: true, orders: false, prices: true}}",
    ]


def test_set_flag_creates_features_keeping_the_other_features_on(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)

    set_flag(path, "shop", False, Feature.stock)

    assert line_diff(VALID, path.read_text()) == [
        "+     features: {products: true, stock: false, prices: true, orders: true, order_updates: true}"
    ]
    features = load(path, environ=ENV).channels["shop"].features
    assert features == {f: f is not Feature.stock for f in FakeVtex.supported}


def test_set_flag_adds_a_missing_auto_after_type(tmp_path: Path) -> None:
    text = VALID.replace("    auto: true\n", "")
    path = write(tmp_path, text)

    set_flag(path, "shop", True)

    assert path.read_text() == VALID


def test_set_flag_keeps_comments_before_the_document_start(tmp_path: Path) -> None:
    text = "# header\n---\n" + VALID.replace("    auto: true\n", "")
    path = write(tmp_path, text)

    set_flag(path, "shop", True)

    assert path.read_text() == "# header\n---\n" + VALID


def test_set_flag_on_an_unknown_channel_names_the_channels(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)

    with pytest.raises(ConfigError, match="no channel named 'shopp'; the channels are: shop, outlet"):
        set_flag(path, "shopp", True)
    assert path.read_text() == COMMENTED


def test_set_flag_writes_atomically_keeping_the_mode(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    path.chmod(0o640)

    set_flag(path, "shop", False)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_set_flag_failing_to_rename_leaves_the_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, COMMENTED)

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        set_flag(path, "shop", False)

    assert path.read_text() == COMMENTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_set_flag_replaces_the_target_of_a_symlink(tmp_path: Path) -> None:
    real = write(tmp_path, COMMENTED, name="real.yaml")
    link = tmp_path / "config.yaml"
    link.symlink_to(real)

    set_flag(link, "shop", False)

    assert link.is_symlink() and "auto: false" in real.read_text()


def test_set_flag_on_the_example_changes_one_line(tmp_path: Path) -> None:
    original = EXAMPLE.read_text()
    path = write(tmp_path, original)

    set_flag(path, "vtex-main", True, Feature.sac)

    assert len(line_diff(original, path.read_text())) == 2
    assert load(path, environ=ENV).channels["vtex-main"].feature_on(Feature.sac)
