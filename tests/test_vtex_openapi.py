"""Every request in every VTEX cassette is one VTEX's official OpenAPI specs allow.

The specs (shared/openapi/vtex: Catalog, Logistics, Orders, Pricing) are loaded
once; each recorded request is matched to its operation by method and path
template, then its path parameters, query parameters and JSON body are validated
(see openapi_check.py).

Spec defects worked around, and what is left unchecked:
- Headers are not validated. Every operation declares `Content-Type` (and `Accept`)
  as *required* header parameters, GETs without a body included, and the specs'
  hosts (`https://{accountName}.{environment}.com.br`, `https://api.vtex.com/{accountName}`)
  are not where tests send requests; the request path is matched directly instead.
- Pricing's server URL carries the account (`https://api.vtex.com/{accountName}`), so a
  recorded `/{account}/pricing/...` path is matched as `/pricing/...`.
- No request needed a workaround: every request validates as sent. The contradictions
  listed in shared/reference/vtex.md (int32 `basePrice`/`listPrice`/`costPrice` in the GET
  price schemas against decimals on the wire, `priceDefinition` vs `priceDefinitions`,
  `messageRetentionPeriodInSeconds` casing in GET config) are in response schemas,
  which this module does not check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from openapi_check import VTEX_SPECS, SpecIndex, vtex_specs

CASSETTES = Path(__file__).parent / "cassettes" / "vtex"
pytestmark = pytest.mark.skipif(not VTEX_SPECS.is_dir(), reason=f"no VTEX OpenAPI specs at {VTEX_SPECS}")
STORE = "http://vtex.test"
INVENTORY_PUT = f"{STORE}/api/logistics/pvt/inventory/skus/1000000/warehouses/1_1"


def recorded_requests() -> list[pytest.param]:
    requests = []
    for path in sorted(CASSETTES.glob("*.yaml")):
        for index, interaction in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]):
            request = interaction["request"]
            requests.append(
                pytest.param(request["method"], request["uri"], request["body"],
                             id=f"{path.stem}[{index}] {request['method']}")
            )  # fmt: skip
    return requests


RECORDED = recorded_requests()


@pytest.fixture(scope="module")
def specs() -> SpecIndex:
    return vtex_specs()


def test_every_cassette_has_requests_to_validate() -> None:
    files = {param.id.split("[")[0] for param in RECORDED}
    assert files == {path.stem for path in CASSETTES.glob("*.yaml")} and len(files) == 10


@pytest.mark.parametrize(("method", "url", "body"), RECORDED)
def test_recorded_request_follows_the_official_spec(specs: SpecIndex, method: str, url: str, body: str) -> None:
    assert specs.problems(method, url, body) == []


# -- the validator catches what it should ---------------------------------------------------


def test_a_bad_inventory_body_is_caught(specs: SpecIndex) -> None:
    problems = specs.problems("PUT", INVENTORY_PUT, '{"quantity": "37", "unlimitedQuantity": false}')

    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "body: 'leadTime' is a required property",
        "body.quantity: '37' is not of type 'integer'",
    ]


def test_a_bad_fixed_price_is_caught(specs: SpecIndex) -> None:
    body = '{"basePrice": 99.9, "fixedPrices": [{"tradePolicyId": 1, "value": "79.90"}]}'

    problems = specs.problems("PUT", f"{STORE}/demostore/pricing/prices/1000000", body)

    assert {problem.split(": ", 1)[1] for problem in problems} == {
        "body.fixedPrices[0]: 'minQuantity' is a required property",
        "body.fixedPrices[0].tradePolicyId: 1 is not of type 'string'",
        "body.fixedPrices[0].value: '79.90' is not of type 'number'",
    }


def test_path_and_query_parameters_are_checked(specs: SpecIndex) -> None:
    assert specs.problems("GET", f"{STORE}/api/catalog/pvt/stockkeepingunit/ERP-1-P", None) == [
        "GET /api/catalog/pvt/stockkeepingunit/{skuId} (catalog-api): path parameter skuId='ERP-1-P': "
        + "'ERP-1-P' is not of type 'integer'"
    ]
    assert specs.problems("GET", f"{STORE}/api/orders/feed?lot=10", None) == [
        "GET /api/orders/feed (orders-api): query parameter 'lot' is not declared",
        "GET /api/orders/feed (orders-api): required query parameter 'maxlot' is missing",
    ]


def test_a_request_no_operation_serves_fails_with_its_method_and_path(specs: SpecIndex) -> None:
    assert specs.problems("PATCH", f"{STORE}/api/catalog/pvt/product/1", '{"Name": "x"}') == [
        "PATCH /api/catalog/pvt/product/1: no operation in the specs serves this method and path"
    ]


def test_pricing_is_found_under_the_account_prefix(specs: SpecIndex) -> None:
    found = specs.find("PUT", "/demostore/pricing/prices/1000000")

    assert found is not None
    operation, values = found
    assert (operation.spec, operation.template) == ("pricing-api", "/pricing/prices/{itemId}")
    assert values == {"itemId": "1000000"}
