"""The carrier adapters' exact requests, pinned per scenario by vcrpy cassettes.

As for VTEX (tests/test_vtex_cassettes.py): normally each cassette plays back
(`record_mode="none"`, matched on method, URL and body, over a transport that fails if
reached), so a test fails as soon as an adapter's requests change. With
SYNCCTL_RECORD=1 the same tests record against a fresh fake instead (whose answers follow
shared/reference/carriers-and-nfe.md) and mark each file as built, not captured.
Authorization headers and every secret or token in a body are written as <filtered>.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
from carrier_kit import T0, build_carrier, state_store
from vcr.cassette import Cassette

from syncctl.auth import CachedToken, Token, fingerprint
from syncctl.carriers.base import Carrier, Tracking
from syncctl.carriers.correios import CorreiosCarrier
from syncctl.carriers.jadlog import JadlogCarrier
from syncctl.carriers.melhorenvio import MelhorEnvioCarrier
from syncctl.domain import DeliveryStatus
from syncctl.sandbox.correios import FakeCorreios
from syncctl.sandbox.jadlog import BR_DATE, FakeJadlog
from syncctl.sandbox.melhorenvio import FakeMelhorEnvio
from syncctl.state import StateStore

CASSETTES = Path(__file__).parent / "cassettes"
RECORDING = os.environ.get("SYNCCTL_RECORD") == "1"
RERECORD = "SYNCCTL_RECORD=1 pytest tests/test_carriers_cassettes.py"
HEADER = (
    "# Built from the documented shapes in shared/reference/carriers-and-nfe.md by driving syncctl against "
    f"syncctl/sandbox/{{carrier}}.py; not a live capture. Re-record: {RERECORD}\n"
)
FILTERED = "<filtered>"
SECRET_FIELDS = frozenset({"client_secret", "refresh_token", "access_token", "token", "code"})
S = DeliveryStatus

CORREIOS = {"user": "loja-exemplo", "access_code": "cws-access-code-s3cr3t", "postcard": "0012345678"}
JADLOG = {"token": "jadlog-token-s3cr3t"}
MELHORENVIO = {"client_id": "4821", "client_secret": "me-client-s3cr3t", "refresh_token": "me-refresh-s3cr3t"}
BASE_URLS = {
    "correios": "https://api.correios.com.br",
    "jadlog": "https://www.jadlog.com.br",
    "melhorenvio": "https://melhorenvio.com.br",
}
START = T0 - timedelta(days=6)


def _scrub(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: FILTERED if key in SECRET_FIELDS and value else _scrub(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_scrub(item) for item in data]
    return data


def _scrub_json(body: bytes | str | None) -> bytes | str | None:
    if not body:
        return body
    try:
        return json.dumps(_scrub(json.loads(body)), ensure_ascii=False, separators=(",", ":")).encode()
    except ValueError:
        return body


def _scrub_request(request: Any) -> Any:
    request.body = _scrub_json(request.body)
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    response["body"]["string"] = _scrub_json(response["body"]["string"])
    return response


CASSETTE_VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="all" if RECORDING else "none",
    match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    filter_headers=[("authorization", FILTERED)],
    before_record_request=_scrub_request,
    before_record_response=_scrub_response,
    decode_compressed_response=True,
)


@dataclass
class Session:
    carrier: Carrier
    state: StateStore
    cassette: Cassette

    @property
    def requests(self) -> list[tuple[str, str]]:
        return [(request.method, request.path) for request in self.cassette.requests]


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"playback reached the transport: {request.method} {request.url} is not in the cassette")


@contextmanager
def scenario(
    carrier_type: type[Carrier], credentials: dict[str, str], name: str,
    fake: Callable[[], Any], prepare_state: Callable[[StateStore], None] = lambda _state: None,
    tmp_path: Path | None = None,
) -> Iterator[Session]:  # fmt: skip
    """Play `carrier/name`'s cassette back, or record it against `fake()` when recording."""
    carrier_name = carrier_type.type_name
    path = CASSETTES / carrier_name / f"{name}.yaml"
    transport: httpx.BaseTransport = httpx.WSGITransport(app=fake()) if RECORDING else httpx.MockTransport(_unreachable)
    if RECORDING:
        path.unlink(missing_ok=True)
    assert tmp_path is not None
    state = state_store(tmp_path)
    prepare_state(state)
    carrier = build_carrier(
        carrier_type, transport=transport, state=state, credentials=credentials, base_url=BASE_URLS[carrier_name],
    )  # fmt: skip
    try:
        with CASSETTE_VCR.use_cassette(f"{carrier_name}/{name}.yaml") as cassette:
            yield Session(carrier, state, cassette)
    finally:
        carrier.http.close()
        state.close()
    if RECORDING:
        path.write_text(HEADER.format(carrier=carrier_name) + path.read_text(encoding="utf-8"), encoding="utf-8")
    else:
        assert cassette.all_played, f"{name}: the adapter skipped {len(cassette) - cassette.play_count} request(s)"


def statuses(tracking: Tracking) -> list[tuple[str, DeliveryStatus]]:
    return [(event.code, event.status) for event in tracking.events]


# -- Correios ------------------------------------------------------------------------------------------


def _correios() -> FakeCorreios:
    fake = FakeCorreios(**CORREIOS, clock=lambda: T0, sleep=lambda _s: None)
    fake.add_scenario("AA123456785BR", "delivered", START)
    fake.add_scenario("AA876543216BR", "estorno", START)
    return fake


def test_correios_token_then_one_batch_with_the_whole_history(tmp_path: Path) -> None:
    codes = ["AA123456785BR", "AA876543216BR", "AA100000025BR", "AA123456784BR"]
    with scenario(CorreiosCarrier, CORREIOS, "token_and_batch", _correios, tmp_path=tmp_path) as session:
        delivered, voided, unknown, typo = session.carrier.track(codes)

    assert session.requests == [("POST", "/token/v1/autentica/cartaopostagem"), ("GET", "/srorastro/v1/objetos")]
    token, query = session.cassette.requests
    assert json.loads(token.body) == {"numero": "0012345678"}
    assert query.query == [
        ("codigosObjetos", "AA100000025BR"), ("codigosObjetos", "AA123456785BR"),
        ("codigosObjetos", "AA876543216BR"), ("resultado", "T"),
    ]  # vcrpy sorts the query; the typo is not in it  # fmt: skip
    assert session.cassette.responses[0]["status"]["code"] == 201
    assert statuses(delivered)[-1] == ("BDE-01", S.delivered)
    assert statuses(voided) == [("PO-01", S.posted), ("RO-01", S.in_transit), ("OEC-01", S.out_for_delivery)]
    assert "SRO-020" in (unknown.error or "") and "check digit" in (typo.error or "")


def _stale_token(state: StateStore) -> None:
    """A token the state believes valid for hours, which Correios no longer accepts."""
    host, user, postcard = BASE_URLS["correios"], CORREIOS["user"], CORREIOS["postcard"]
    token = Token("revoked-token", T0 + timedelta(hours=12), seed=fingerprint(host, user, postcard))
    state.set_token("correios", CachedToken.row, token.to_text(), T0)


def test_correios_401_on_a_saved_token_gets_a_new_one_and_retries_once(tmp_path: Path) -> None:
    with scenario(
        CorreiosCarrier, CORREIOS, "expired_token_401", _correios, _stale_token, tmp_path=tmp_path
    ) as session:  # fmt: skip
        [tracking] = session.carrier.track(["AA123456785BR"])

    assert session.requests == [
        ("GET", "/srorastro/v1/objetos"), ("POST", "/token/v1/autentica/cartaopostagem"),
        ("GET", "/srorastro/v1/objetos"),
    ]  # fmt: skip
    assert [response["status"]["code"] for response in session.cassette.responses] == [401, 201, 200]
    assert len(tracking.events) == 4


# -- Jadlog --------------------------------------------------------------------------------------------


def _jadlog() -> FakeJadlog:
    fake = FakeJadlog(JADLOG["token"], clock=lambda: T0)
    fake.add_shipment("11200000001234", "12345678", START)
    fake.add_event("11200000001234", "EMISSAO", START, "PA SAO PAULO 01")
    fake.add_event("11200000001234", "TRANSFERENCIA", START + timedelta(hours=13), "CO SAO PAULO", date_format=BR_DATE)
    fake.add_event("11200000001234", "ENTREGUE", START + timedelta(days=3), "CO CAMPINAS")
    return fake


def test_jadlog_one_call_for_several_shipments(tmp_path: Path) -> None:
    with scenario(JadlogCarrier, JADLOG, "consult", _jadlog, tmp_path=tmp_path) as session:
        found, missing = session.carrier.track(["11200000001234", "11200000009999"])

    assert session.requests == [("POST", "/embarcador/api/tracking/consultar")]
    assert json.loads(session.cassette.requests[0].body) == {
        "consulta": [{"shipmentId": "11200000001234"}, {"shipmentId": "11200000009999"}],
    }
    assert statuses(found) == [("EMISSAO", S.posted), ("TRANSFERENCIA", S.in_transit), ("ENTREGUE", S.delivered)]
    assert missing.error == "Jadlog: Não localizado (11200000009999)"


# -- Melhor Envio -----------------------------------------------------------------------------------------


def _melhorenvio() -> FakeMelhorEnvio:
    fake = FakeMelhorEnvio(**MELHORENVIO, clock=lambda: T0)
    order = fake.add_order(tracking="AA123456785BR", created_at=START)
    fake.set_status(order, "posted", START + timedelta(hours=7))
    fake.set_status(order, "delivered", START + timedelta(days=3))
    return fake


ME_ORDER = "00000000-0000-4000-8000-000000000001"  # the fake's first order


def test_melhorenvio_refresh_then_track(tmp_path: Path) -> None:
    with scenario(MelhorEnvioCarrier, MELHORENVIO, "refresh_and_track", _melhorenvio, tmp_path=tmp_path) as session:
        [tracking] = session.carrier.track([ME_ORDER])

    assert session.requests == [("POST", "/oauth/token"), ("POST", "/api/v2/me/shipment/tracking")]
    refresh, query = (json.loads(request.body) for request in session.cassette.requests)
    assert refresh == {
        "grant_type": "refresh_token", "client_id": "4821", "client_secret": FILTERED, "refresh_token": FILTERED,
    }  # fmt: skip
    assert query == {"orders": [ME_ORDER]}
    assert statuses(tracking) == [("ME-posted", S.posted), ("ME-delivered", S.delivered)]
    assert tracking.events[0].occurred_at == START + timedelta(hours=7)


@pytest.mark.parametrize("carrier", ["correios", "jadlog", "melhorenvio"])
def test_every_cassette_says_it_was_built_not_captured(carrier: str) -> None:
    files = sorted((CASSETTES / carrier).glob("*.yaml"))
    assert files
    for path in files:
        assert path.read_text(encoding="utf-8").startswith("# Built from the documented shapes"), path
        assert "s3cr3t" not in path.read_text(encoding="utf-8"), f"{path}: a credential was not filtered"
