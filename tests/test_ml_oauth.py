"""Mercado Livre's OAuth (reference §1): single-use refresh tokens rotated in step with
every process sharing the state file (syncctl/auth.py), against the fake."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, ml_channel

from syncctl.auth import InvalidGrant, RotatingTokens, Token
from syncctl.errors import AuthError
from syncctl.redact import redact
from syncctl.sandbox.mercadolivre import FakeMercadoLivre
from syncctl.sandbox.server import serve
from syncctl.state import StateStore

OWNER = "channel:ml-test"
TOKEN_ROW = RotatingTokens.row


@pytest.fixture
def fake() -> FakeMercadoLivre:
    return FakeMercadoLivre(clock=lambda: T0, sleep=lambda _seconds: None)


def stored(state_path: Path, owner: str = OWNER) -> Token | None:
    text = StateStore(state_path).token(owner, TOKEN_ROW)
    return None if text is None else Token.from_text(text)


def api_requests(fake: FakeMercadoLivre) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests_log]


# -- the first refresh, and the pair written before it is used ------------------------------


def test_first_run_trades_the_config_token_and_stores_the_pair_before_using_it(
    fake: FakeMercadoLivre, tmp_path: Path
) -> None:
    first = fake.issue_refresh_token()
    state_path = tmp_path / "state.db"
    seen_in_state: list[Token | None] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/users/me":  # the first use of the new access token
            seen_in_state.append(stored(state_path))
        return fake(environ, start_response)

    channel = ml_channel(app, state_path, refresh_token=first)
    channel.check_credentials()

    [grant] = fake.token_requests
    assert grant["grant_type"] == "refresh_token" and grant["refresh_token"] == first
    [pair] = seen_in_state
    assert pair is not None and pair == stored(state_path)
    assert pair.refresh_token in fake.refresh_tokens and pair.refresh_token != first
    assert pair.account == str(fake.seller_id) and pair.expires_at == T0 + timedelta(seconds=21600)


def test_the_token_request_is_a_form_post_with_no_bearer(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    channel = ml_channel(fake, tmp_path / "state.db", refresh_token=fake.issue_refresh_token())
    channel.check_credentials()

    token_call = fake.requests_log[0]
    assert (token_call.method, token_call.path, token_call.query) == ("POST", "/oauth/token", {})
    assert set(fake.token_requests[0]) == {"grant_type", "refresh_token", "client_id", "client_secret"}


def test_a_stored_pair_is_used_as_it_is(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    ml_channel(fake, tmp_path / "state.db", refresh_token=fake.issue_refresh_token()).check_credentials()
    later = ml_channel(fake, tmp_path / "state.db", refresh_token="TG-the-config-one-already-spent",
                       now=lambda: T0 + timedelta(hours=5))  # fmt: skip
    later.check_credentials()

    assert len(fake.token_requests) == 1  # the config's token is remembered as spent, by fingerprint
    assert api_requests(fake)[-1] == "GET /users/me"


def test_an_access_token_about_to_expire_is_renewed_before_it_is_used(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    ml_channel(fake, tmp_path / "state.db", refresh_token=fake.issue_refresh_token()).check_credentials()
    almost = T0 + timedelta(hours=6) - timedelta(minutes=2)
    ml_channel(fake, tmp_path / "state.db", now=lambda: almost).check_credentials()

    assert len(fake.refresh_grants()) == 2
    assert [r.status for r in fake.requests_log if r.path == "/users/me"] == [200, 200]  # never a 401


def test_a_401_mid_run_renews_once_and_the_request_goes_through(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    channel = ml_channel(fake, tmp_path / "state.db", refresh_token=fake.issue_refresh_token())
    channel.check_credentials()
    fake.expire_access_tokens()  # ML voided it early (say, the seller changed the password)

    channel._user = None  # ask again
    channel.check_credentials()

    assert [r.status for r in fake.requests_log if r.path == "/users/me"] == [200, 401, 200]
    assert len(fake.refresh_grants()) == 2


def test_a_new_refresh_token_in_the_config_replaces_the_stored_pair(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    ml_channel(fake, tmp_path / "state.db", refresh_token=fake.issue_refresh_token()).check_credentials()
    fake.expire_access_tokens()
    reauthorized = fake.issue_refresh_token()  # the seller authorized the app again; the stored pair is dead

    ml_channel(fake, tmp_path / "state.db", refresh_token=reauthorized,
               now=lambda: T0 + timedelta(hours=7)).check_credentials()  # fmt: skip

    assert fake.refresh_grants()[-1] == reauthorized


# -- invalid_grant ------------------------------------------------------------------------------


def test_a_spent_refresh_token_ends_in_auth_error_saying_how_to_reauthorize(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    spent = fake.issue_refresh_token()
    fake.issue_refresh_token()  # a newer one voids it
    channel = ml_channel(fake, tmp_path / "state.db", refresh_token=spent)

    with pytest.raises(AuthError) as refused:
        channel.check_credentials()

    message = str(refused.value)
    assert "syncctl channel auth ml-test --code CODE" in message and "used already" in message
    assert spent not in message and "/users/me" not in api_requests(fake)


def test_invalid_grant_reads_the_store_again_and_takes_a_pair_rotated_meanwhile(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    theirs = Token("APP_USR-theirs", T0 + timedelta(hours=6), refresh_token="TG-theirs")

    def grant(form: dict[str, str]) -> Token:
        # Another process (one that did not take the lock: an older syncctl) rotated first.
        state.set_token(OWNER, TOKEN_ROW, theirs.to_text(), T0)
        raise InvalidGrant("already used")

    tokens = RotatingTokens(owner=OWNER, label="Mercado Livre", state=state, grant=grant, now=lambda: T0,
                            reauthorize="run channel auth", first_refresh_token="TG-first")  # fmt: skip

    assert tokens.access_token() == "APP_USR-theirs"


def test_a_stale_token_left_in_the_config_gives_way_to_the_stored_chain(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    channel = ml_channel(fake, tmp_path / "state.db", redirect_uri=fake.redirect_uri)
    channel.authorize(code=fake.issue_code())  # the pair came from `channel auth`
    stale = "TG-put-in-the-config-long-ago"
    later = lambda: T0 + timedelta(hours=7)  # noqa: E731 - the stored access token has expired

    ml_channel(fake, tmp_path / "state.db", refresh_token=stale, now=later).check_credentials()
    ml_channel(fake, tmp_path / "state.db", refresh_token=stale, now=lambda: T0 + timedelta(hours=14)).check_credentials()

    grants = fake.refresh_grants()
    assert grants[0] == stale and stale not in grants[1:] and len(grants) == 3  # tried once, then known as spent
    assert [r.status for r in fake.requests_log if r.path == "/users/me"] == [200, 200]


def test_no_pair_and_no_config_token_asks_for_channel_auth(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="no token pair in the state file.*channel auth ml-test"):
        ml_channel(fake, tmp_path / "state.db").check_credentials()
    assert fake.requests_log == []


def test_tokens_are_redacted_once_read(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    channel = ml_channel(fake, tmp_path / "state.db", refresh_token=fake.issue_refresh_token())
    channel.check_credentials()
    pair = stored(tmp_path / "state.db")
    assert pair is not None
    assert redact(f"bearer {pair.access_token} / {pair.refresh_token}") == "bearer *** / ***"


# -- channel auth: the first pair from a code ----------------------------------------------------


def test_an_authorization_code_is_traded_once_with_the_redirect_uri(fake: FakeMercadoLivre, tmp_path: Path) -> None:
    fake.pkce = True
    code = fake.issue_code()
    channel = ml_channel(fake, tmp_path / "state.db", redirect_uri=fake.redirect_uri)

    said = channel.authorize(code=code, code_verifier="v" * 43)

    assert said.startswith(f"token pair stored for Mercado Livre user {fake.seller_id}")
    assert fake.token_requests[0] | {"client_secret": "-"} == {
        "grant_type": "authorization_code", "code": code, "redirect_uri": fake.redirect_uri,
        "code_verifier": "v" * 43, "client_id": fake.client[0], "client_secret": "-",
    }  # fmt: skip
    pair = stored(tmp_path / "state.db")
    assert pair is not None and pair.refresh_token in fake.refresh_tokens
    with pytest.raises(AuthError, match="work once"):
        channel.authorize(code=code, code_verifier="v" * 43)


# -- two processes at once ------------------------------------------------------------------------

CONFIG = """\
state: {{path: state.db}}
channels:
  ml-main:
    type: mercadolivre
    base_url: {url}
    credentials: {{client_id: "{client_id}", client_secret: "{client_secret}"}}
    stock: {{debit_warehouse: CD-SP}}
"""
# One syncctl process: the runtime built from the config, as every command builds it.
CHILD = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from syncctl import config as config_mod
    from syncctl.runtime import Runtime
    config_path, ready = Path(sys.argv[1]), Path(sys.argv[2])
    config = config_mod.load(config_path, environ={})
    runtime = Runtime(config=config, state_path=config.state_path())
    ready.touch()
    while not (config_path.parent / "go").exists():  # both start refreshing at the same moment
        time.sleep(0.002)
    channel = runtime.open_channel("ml-main")
    channel.check_credentials()
    print(channel.tokens.access_token())
""")


def test_two_processes_refreshing_at_once_send_one_refresh_and_share_the_new_pair(tmp_path: Path) -> None:
    """Acceptance: exactly one refresh request; both end with the new token; the old
    refresh token is never sent twice."""
    fake = FakeMercadoLivre()
    old = fake.issue_refresh_token()
    state_path = tmp_path / "state.db"
    expired = Token("APP_USR-expired", datetime.now(T0.tzinfo) - timedelta(minutes=1), refresh_token=old)
    StateStore(state_path).set_token("channel:ml-main", TOKEN_ROW, expired.to_text(), T0)
    # A slow token endpoint: whichever process refreshes holds the lock while the other arrives.
    fake.faults.add(method="POST", path_prefix="/oauth/token", delay_s=0.3, times=None)
    with serve(fake) as server:
        (tmp_path / "config.yaml").write_text(
            CONFIG.format(url=server.url, client_id=fake.client[0], client_secret=fake.client[1])
        )
        children = [
            subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "config.yaml"), str(tmp_path / f"ready-{n}")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
            for n in range(2)
        ]  # fmt: skip
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{n}").exists() for n in range(2)) and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [child.communicate(timeout=60) for child in children]

    assert [child.returncode for child in children] == [0, 0], outputs
    pair = stored(state_path, "channel:ml-main")
    assert pair is not None
    assert fake.refresh_grants() == [old]
    assert [out.strip() for out, _ in outputs] == [pair.access_token, pair.access_token]
    assert pair.refresh_token in fake.refresh_tokens
    assert [r.status for r in fake.requests_log if r.path == "/users/me"] == [200, 200]
