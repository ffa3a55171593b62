"""Scenario 4, property-based: the mapping and parsing functions hold their promises
for any input hypothesis can think of, not only for the fixtures: the VTEX mappers,
NF-e keys and cents, GTINs, Retry-After and backoff, error bodies, and the config
loader."""

from __future__ import annotations

import email.utils
import json
import math
import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncctl import config as config_mod
from syncctl.channels.vtex import (
    order_from_vtex,
    order_update_payloads,
    price_payload,
    price_update,
    rfc3339,
    split_location,
    stock_payload,
)
from syncctl.domain import (
    UTC,
    EffectivePrice,
    Invoice,
    OrderLine,
    OrderStatus,
    OrderUpdate,
    StockLevel,
)
from syncctl.errors import ConfigError, RecordRejected
from syncctl.gtin import check_digit as gtin_check_digit
from syncctl.gtin import gtin_problem
from syncctl.http.client import error_message
from syncctl.http.policy import BACKOFF_CAP_S, backoff, retry_after
from syncctl.jobs.valid import valid_price
from syncctl.nfe import access_key_problem, cents, check_digit, from_cents
from syncctl.sandbox.vtex import FakeVtex

pytestmark = pytest.mark.reliability

UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, ArithmeticError)
"""What the VTEX adapter catches around a mapper: the order is left for the next run."""
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False, places=2),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)


# -- NF-e access keys and cents ---------------------------------------------------------------------

@given(st.text(alphabet="0123456789", min_size=43, max_size=43))
def test_a_key_passes_with_its_check_digit_and_fails_with_any_other(first43: str) -> None:
    right = str(check_digit(first43))
    assert access_key_problem(first43 + right) is None
    for wrong in set("0123456789") - {right}:
        assert "check digit" in access_key_problem(first43 + wrong)


@given(st.text(max_size=60))
def test_any_text_is_a_key_or_a_reason_never_an_error(text: str) -> None:
    problem = access_key_problem(text)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        assert len(text) == 44


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False))
def test_cents_and_back_is_the_same_amount(amount: Decimal) -> None:
    assert from_cents(cents(amount)) == amount


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_an_amount_in_cents_survives_the_way_back(whole: int) -> None:
    assert cents(from_cents(whole)) == whole


# -- GTIN ---------------------------------------------------------------------------------------------

@given(st.sampled_from((7, 11, 12, 13)).flatmap(lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)))
def test_a_gtin_passes_with_its_check_digit_and_fails_with_any_other(body: str) -> None:
    right = str(gtin_check_digit(body))
    assert gtin_problem(body + right) is None
    for wrong in set("0123456789") - {right}:
        assert "check digit" in gtin_problem(body + wrong)


@given(st.text(max_size=20))
def test_any_text_is_a_gtin_or_a_reason_never_an_error(text: str) -> None:
    problem = gtin_problem(text)
    assert problem is None or repr(text) in problem


# -- Retry-After and backoff --------------------------------------------------------------------------

def _answer(retry_after_value: str, date: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after_value, **({"Date": date} if date else {})}
    return httpx.Response(429, headers=headers)


@given(st.text(alphabet=PRINTABLE, max_size=40))
def test_any_retry_after_is_a_finite_wait_or_none(value: str) -> None:
    wait = retry_after(_answer(value), NOW)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


@given(st.integers(min_value=0, max_value=10**7))
def test_retry_after_in_seconds_is_honoured_exactly(seconds: int) -> None:
    assert retry_after(_answer(str(seconds)), NOW) == seconds


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_retry_after_as_a_date_is_the_time_until_it_and_never_negative(offset_s: int) -> None:
    when = email.utils.format_datetime(NOW + timedelta(seconds=offset_s), usegmt=True)
    sent = email.utils.format_datetime(NOW, usegmt=True)
    assert retry_after(_answer(when, sent), NOW + timedelta(days=3)) == max(0, offset_s)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=2**32))
def test_backoff_stays_between_zero_and_its_cap(attempt: int, seed: int) -> None:
    assert 0 <= backoff(attempt, random.Random(seed)) <= BACKOFF_CAP_S


@given(st.binary(max_size=400), st.integers(min_value=400, max_value=599))
def test_any_error_body_gives_a_short_message_never_an_error(body: bytes, status: int) -> None:
    message = error_message(httpx.Response(status, content=body))
    assert isinstance(message, str) and 0 < len(message) <= 300


# -- VTEX mappers ----------------------------------------------------------------------------------------

order_like = st.fixed_dictionaries({
    "orderId": st.text(min_size=1, max_size=12) | json_values,
    "status": st.sampled_from(("ready-for-handling", "handling", "invoiced", "canceled", "payment-pending"))
    | json_values,
    "value": st.integers(min_value=0, max_value=10**9) | json_values,
    "creationDate": st.just("2026-11-26T12:00:00.0000000+00:00") | json_values,
    "items": st.lists(st.fixed_dictionaries({
        "id": st.integers(1, 10**6) | json_values, "refId": json_values,
        "quantity": st.integers(1, 99) | json_values, "price": st.integers(0, 10**6) | json_values,
    }), max_size=3) | json_values,
    "totals": json_values,
    "clientProfileData": json_values,
    "shippingData": json_values,
})


@given(order_like)
def test_any_order_answer_maps_or_is_unreadable_never_anything_else(order_json: dict) -> None:
    try:
        order = order_from_vtex(order_json, {})
    except UNREADABLE:
        return
    assert order is None or order.channel_order_id == order_json["orderId"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 9), st.integers(1, 10**6)), min_size=1, max_size=4),
    st.integers(min_value=0, max_value=10**5),
)
def test_an_order_as_the_fake_vtex_sends_it_maps_to_the_same_money_and_lines(lines: list, shipping: int) -> None:
    fake = FakeVtex()
    order_id = fake.add_order(
        items=[(1000 + n, f"SKU-{n}", f"Item {n}", quantity, price) for n, (quantity, price) in enumerate(lines)],
        shipping_cents=shipping,
    )
    text = json.dumps(fake.orders[order_id], default=str)
    order = order_from_vtex(json.loads(text, parse_float=Decimal), {str(1000 + n): f"ERP-{n}" for n in range(len(lines))})
    assert order is not None and order.status is OrderStatus.approved
    assert order.total == from_cents(sum(q * p for q, p in lines) + shipping)
    assert order.shipping_cost == from_cents(shipping)
    assert [(line.sku, line.quantity, cents(line.unit_price)) for line in order.lines] == [
        (f"ERP-{n}", quantity, price) for n, (quantity, price) in enumerate(lines)
    ]


@given(money, st.none() | money, st.lists(st.fixed_dictionaries({
    "tradePolicyId": st.sampled_from(("1", "2", "3")), "value": money, "minQuantity": st.integers(1, 5),
}), max_size=3))
def test_a_price_update_sends_our_price_and_keeps_every_other_fixed_price(
    list_price: Decimal, sale: Decimal | None, current_fixed: list
) -> None:
    price = EffectivePrice("SKU", list_price, sale, NOW - timedelta(days=1), NOW + timedelta(days=1))
    body = price_update({"fixedPrices": current_fixed}, price_payload(price, "1"), "1")
    assert body["basePrice"] == body["listPrice"] == list_price
    ours = [f for f in body["fixedPrices"] if f["tradePolicyId"] == "1" and f["minQuantity"] == 1]
    others = [f for f in current_fixed if not (f["tradePolicyId"] == "1" and f["minQuantity"] == 1)]
    assert [f for f in body["fixedPrices"] if f not in ours] == others
    assert [f["value"] for f in ours] == ([sale] if sale is not None and sale < list_price else [])


@given(st.decimals(allow_nan=True, allow_infinity=True), st.none() | st.decimals(allow_nan=True, allow_infinity=True))
def test_a_price_is_sent_only_when_finite_and_above_zero_else_refused_by_name(
    list_price: Decimal, sale: Decimal | None
) -> None:
    price = EffectivePrice("SKU-X", list_price, sale)
    sendable = all(value.is_finite() and value > 0 for value in (list_price, sale) if value is not None)
    if sendable:
        assert valid_price(price) is price
    else:
        with pytest.raises(RecordRejected, match="SKU-X"):
            valid_price(price)


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_a_stock_payload_carries_the_quantity_and_every_field(quantity: int) -> None:
    payload = stock_payload(StockLevel("SKU", quantity), "00:00:00")
    assert payload == {"quantity": quantity, "unlimitedQuantity": False, "leadTime": "00:00:00"}


@given(money, st.lists(st.tuples(st.integers(1, 9), money), min_size=1, max_size=3))
def test_an_invoice_payload_states_every_amount_in_exact_cents(total: Decimal, lines: list) -> None:
    key = "3526111234567800019955001000000001100000001"
    update = OrderUpdate(
        order_id=1, channel_order_id="V-1", status=OrderStatus.handling, shipping_cost=Decimal("0.00"),
        lines=tuple(OrderLine(f"S{n}", q, p, f"{n}") for n, (q, p) in enumerate(lines)),
        invoice=Invoice(key + str(check_digit(key)), "123", "1", NOW, total),
    )
    payload = order_update_payloads(update)["invoice"]
    assert payload["invoiceValue"] == str(cents(total))
    assert [(item["quantity"], item["price"]) for item in payload["items"]] == [(q, cents(p)) for q, p in lines]


@given(st.text(max_size=40))
def test_any_location_splits_into_a_city_and_a_state(location: str) -> None:
    city, state = split_location(location)
    assert isinstance(city, str) and isinstance(state, str) and len(state) in (0, 2)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_times_go_to_vtex_in_utc_with_a_z(moment: datetime) -> None:
    text = rfc3339(moment)
    assert text.endswith("Z")
    assert datetime.fromisoformat(text) == moment.replace(microsecond=0)


# -- the configuration loader ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config") / "config.yaml"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.builds(
    lambda key, value: f"channels:\n  shop:\n    type: vtex\n    {key}: {value}\n",
    st.text(alphabet=PRINTABLE, max_size=12), st.text(alphabet=PRINTABLE, max_size=20),
))
def test_any_config_text_loads_or_is_refused_with_a_config_error(config_file: Path, text: str) -> None:
    config_file.write_text(text, encoding="utf-8")
    try:
        config_mod.load(config_file, environ={})
    except ConfigError as refused:
        assert refused.problems and all(str(config_file) in str(problem) for problem in refused.problems)
