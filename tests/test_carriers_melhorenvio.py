"""The Melhor Envio adapter against the fake Melhor Envio (in-process): rotating
refresh tokens, and lifecycle steps recorded as events."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from carrier_kit import Clock, build_carrier, state_store

from syncctl.auth import RotatingTokens, Token
from syncctl.carriers.melhorenvio import MelhorEnvioCarrier, keyed_orders
from syncctl.carriers.normalize import latest
from syncctl.domain import UTC, DeliveryStatus
from syncctl.errors import AuthError, TransientError
from syncctl.sandbox.melhorenvio import FakeMelhorEnvio
from syncctl.sandbox.server import serve
from syncctl.state import StateStore

S = DeliveryStatus
CREDENTIALS = {"client_id": "4821", "client_secret": "me-client-secret-xyz", "refresh_token": "me-first-refresh"}
POSTED = datetime(2026, 11, 24, 16, 5, 33, tzinfo=UTC)
TOKEN, TRACKING = "/oauth/token", "/api/v2/me/shipment/tracking"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeMelhorEnvio:
    return FakeMelhorEnvio(
        CREDENTIALS["client_id"], CREDENTIALS["client_secret"], CREDENTIALS["refresh_token"], clock,
        sleep=lambda _s: None,
    )  # fmt: skip


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    store = state_store(tmp_path)
    yield store
    store.close()


def melhorenvio(fake: FakeMelhorEnvio, state: StateStore, clock: Clock, **credentials: Any) -> MelhorEnvioCarrier:
    carrier = build_carrier(
        MelhorEnvioCarrier, transport=httpx.WSGITransport(app=fake), state=state,
        credentials={**CREDENTIALS, **credentials}, options={"contact_email": "ops@loja.example"}, clock=clock,
    )  # fmt: skip
    assert isinstance(carrier, MelhorEnvioCarrier)
    return carrier


def stored(state: StateStore, owner: str = "melhorenvio") -> Token | None:
    raw = state.token(owner, RotatingTokens.row)
    return Token.from_text(raw) if raw else None


def saved_refresh_token(state: StateStore) -> str | None:
    pair = stored(state)
    return pair.refresh_token if pair else None


def calls(fake: FakeMelhorEnvio, path: str) -> list[int]:
    return [record.status for record in fake.requests_log if record.path == path]


def test_posted_then_delivered_become_two_events_at_their_own_times(fake, state, clock) -> None:
    order = fake.add_order(tracking="AA123456785BR")
    fake.set_status(order, "posted", POSTED)
    fake.set_status(order, "delivered", POSTED + timedelta(days=2))

    [tracking] = melhorenvio(fake, state, clock).track([order])

    assert [(e.code, e.status, e.occurred_at) for e in tracking.events] == [
        ("ME-posted", S.posted, POSTED), ("ME-delivered", S.delivered, POSTED + timedelta(days=2)),
    ]  # fmt: skip
    assert tracking.events[0].description == "Melhor Envio: posted (rastreio AA123456785BR)"


def test_a_label_not_posted_yet_has_no_event_and_an_unknown_order_fails_alone(fake, state, clock) -> None:
    order = fake.add_order()
    bought, unknown = melhorenvio(fake, state, clock).track([order, "00000000-0000-4000-8000-00000000dead"])
    assert (bought.events, bought.error) == ((), None)
    assert unknown.error == "Melhor Envio does not know order 00000000-0000-4000-8000-00000000dead"


def test_a_status_without_its_own_time_is_dated_at_the_last_dated_step_not_when_seen(fake, state, clock) -> None:
    """A time of syncctl's own would need remembering, and a lost state file would make
    it another event (found by the reliability suite's state-loss scenario)."""
    order = fake.add_order(created_at=POSTED - timedelta(days=1))
    fake.set_status(order, "posted", POSTED)
    fake.set_status(order, "undelivered")
    [first] = melhorenvio(fake, state, clock).track([order])
    clock.advance(hours=5)
    [again] = melhorenvio(fake, state, clock).track([order])

    assert first.events == again.events  # the same event, not a new one each run
    assert [(e.code, e.status, e.occurred_at) for e in again.events] == [
        ("ME-posted", S.posted, POSTED), ("ME-undelivered", S.delivery_failed, POSTED),
    ]  # fmt: skip
    assert latest(again.events).status is S.delivery_failed  # given last: the status it has now


def test_the_refresh_token_rotates_and_each_new_one_is_saved_before_use(fake, state, clock) -> None:
    order = fake.add_order()
    fake.faults.add(method="POST", path_prefix=TRACKING, status=503, times=None)
    with pytest.raises(TransientError):
        melhorenvio(fake, state, clock).track([order])
    # The tracking call failed, the rotation it needed is kept: the first token is spent.
    assert saved_refresh_token(state) == "me-refresh-1"
    assert "me-first-refresh" not in fake.refresh_tokens

    fake.faults.clear()
    clock.advance(days=29, hours=1)  # the access token has less than a day left
    melhorenvio(fake, state, clock).track([order])
    assert saved_refresh_token(state) == "me-refresh-2"
    assert calls(fake, TOKEN) == [200, 200]


def test_the_access_token_is_reused_across_runs(fake, state, clock) -> None:
    order = fake.add_order()
    for _ in range(3):
        melhorenvio(fake, state, clock).track([order])
        clock.advance(days=1)
    assert calls(fake, TOKEN) == [200]
    assert calls(fake, TRACKING) == [200, 200, 200]


def test_a_401_refreshes_once_and_retries(fake, state, clock) -> None:
    order = fake.add_order()
    melhorenvio(fake, state, clock).track([order])
    fake.expire_access_tokens()
    melhorenvio(fake, state, clock).track([order])
    assert calls(fake, TRACKING) == [200, 401, 200]
    assert calls(fake, TOKEN) == [200, 200]


def test_a_spent_refresh_token_is_a_credentials_error(fake, state, clock) -> None:
    fake.refresh_tokens.clear()  # e.g. used by another copy of the state file
    with pytest.raises(AuthError) as refused:
        melhorenvio(fake, state, clock).track([fake.add_order()])
    assert str(refused.value).startswith("Melhor Envio refused the refresh token (The refresh token is invalid.)")
    assert "put the new refresh token in carriers.melhorenvio.credentials" in str(refused.value)
    assert calls(fake, TRACKING) == []


def test_a_wrong_client_secret_says_so(fake, state, clock) -> None:
    with pytest.raises(AuthError, match=r"refused the token request \(HTTP 401 invalid_client: .*client_secret"):
        melhorenvio(fake, state, clock, client_secret="not-the-secret").track([fake.add_order()])


def test_a_new_refresh_token_in_the_config_starts_a_new_chain(fake, state, clock) -> None:
    order = fake.add_order()
    melhorenvio(fake, state, clock).track([order])  # the chain from me-first-refresh
    fake.refresh_tokens.add("re-authorized")  # the merchant authorized syncctl again
    fake.expire_access_tokens()
    melhorenvio(fake, state, clock, refresh_token="re-authorized").track([order])
    assert saved_refresh_token(state) == "me-refresh-2"
    assert [r.body["refresh_token"] for r in fake.requests_log if r.path == TOKEN] == [
        "me-first-refresh", "re-authorized",
    ]  # fmt: skip


def test_the_user_agent_names_the_contact(fake, state, clock) -> None:
    seen: list[str] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["User-Agent"])
        return httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "expires_in": 60})

    carrier = build_carrier(
        MelhorEnvioCarrier, transport=httpx.MockTransport(spy), state=state, credentials=CREDENTIALS,
        options={"contact_email": "ops@loja.example"},
    )  # fmt: skip
    carrier.track(["x"])
    assert seen and all(agent.endswith("(ops@loja.example)") for agent in seen)


def test_an_empty_answer_may_come_as_a_list() -> None:
    assert keyed_orders([]) == {} and keyed_orders({"a": {"id": "a"}}) == {"a": {"id": "a"}}
    assert keyed_orders([{"id": "b", "status": "posted"}]) == {"b": {"id": "b", "status": "posted"}}


# -- two processes at once ------------------------------------------------------------------------

CONFIG = """\
state: {{path: state.db}}
carriers:
  me:
    type: melhorenvio
    base_url: {url}
    credentials: {{client_id: "{client_id}", client_secret: "{client_secret}", refresh_token: "{refresh_token}"}}
"""
# One syncctl process: the runtime built from the config, as every command builds it.
CHILD = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from syncctl import config as config_mod
    from syncctl.runtime import Runtime
    config_path, ready, order = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    config = config_mod.load(config_path, environ={})
    carrier = Runtime(config=config, state_path=config.state_path()).open_carrier("me")
    ready.touch()
    while not (config_path.parent / "go").exists():  # both start refreshing at the same moment
        time.sleep(0.002)
    [tracking] = carrier.track([order])
    assert tracking.error is None, tracking.error
    print(carrier.tokens.access_token())
""")


def test_two_processes_refreshing_at_once_send_one_refresh_and_share_the_new_pair(tmp_path: Path) -> None:
    fake = FakeMelhorEnvio(**CREDENTIALS)
    order = fake.add_order()
    # A slow token endpoint: whichever process refreshes holds the lock while the other arrives.
    fake.faults.add(method="POST", path_prefix=TOKEN, delay_s=0.3, times=None)
    config = tmp_path / "config.yaml"
    with serve(fake) as server:
        config.write_text(CONFIG.format(url=server.url, **CREDENTIALS))
        ready = [tmp_path / f"ready-{n}" for n in range(2)]
        children = [
            subprocess.Popen([sys.executable, "-c", CHILD, str(config), str(flag), order],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
            for flag in ready
        ]  # fmt: skip
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [child.communicate(timeout=60) for child in children]

    assert [child.returncode for child in children] == [0, 0], outputs
    assert [r.body["refresh_token"] for r in fake.requests_log if r.path == TOKEN] == ["me-first-refresh"]
    state = StateStore(tmp_path / "state.db")
    try:
        pair = stored(state, "me")
    finally:
        state.close()
    assert pair is not None and pair.refresh_token in fake.refresh_tokens
    assert [out.strip() for out, _ in outputs] == [pair.access_token, pair.access_token]
    assert calls(fake, TRACKING) == [200, 200]
