"""A carrier's login token kept in the state file (syncctl/auth.py `CachedToken`): the
same storage, lock and `http.Auth` as the rotating OAuth pairs, without a refresh token."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from carrier_kit import T0, Clock, state_store

from syncctl.auth import CachedToken, RotatingTokens, Token, fingerprint
from syncctl.http import HttpClient
from syncctl.redact import redact
from syncctl.state import StateStore


def cached(
    state: StateStore, login: Callable[[], Token], now: Callable[[], datetime], credentials: str = "creds"
) -> CachedToken:
    return CachedToken(
        owner="carrier", label="Carrier", state=state, now=now, login=login, credentials=credentials,
        renew_before=timedelta(minutes=10),
    )  # fmt: skip


def test_a_saved_token_comes_back_only_for_the_credentials_it_came_from(tmp_path: Path) -> None:
    state = state_store(tmp_path)
    issued: list[str] = []

    def login() -> Token:
        issued.append(f"token-abc-{len(issued) + 1}")
        return Token(issued[-1], T0 + timedelta(hours=24))

    try:
        first = fingerprint("host", "user", "0012345678")
        assert cached(state, login, lambda: T0, first).access_token() == "token-abc-1"
        assert cached(state, login, lambda: T0 + timedelta(hours=23), first).access_token() == "token-abc-1"
        other = cached(state, login, lambda: T0, fingerprint("host", "user", "0099999999"))
        assert other.access_token() == "token-abc-2"  # the postcard changed: a new token is needed
        assert "token-abc-1" not in redact("sent token-abc-1")
        assert "0012345678" not in (state.token("carrier", CachedToken.row) or "")  # credentials only as a digest
    finally:
        state.close()


def test_an_unreadable_saved_token_is_as_good_as_none(tmp_path: Path) -> None:
    state = state_store(tmp_path)
    try:
        state.set_token("carrier", CachedToken.row, "not json", T0)
        assert cached(state, lambda: Token("fresh", T0 + timedelta(hours=1)), lambda: T0).access_token() == "fresh"
        state.set_token("carrier", RotatingTokens.row, '{"value": "an older layout"}', T0)
        rotating = RotatingTokens(
            owner="carrier", label="Carrier", state=state, now=lambda: T0, reauthorize="authorize again",
            grant=lambda form: Token("new", T0 + timedelta(hours=1), refresh_token="r2"), first_refresh_token="r1",
        )  # fmt: skip
        assert rotating.access_token() == "new"  # started over from the config's refresh token
    finally:
        state.close()


def test_a_cached_token_is_reused_renewed_before_expiry_and_after_a_401(tmp_path: Path) -> None:
    state = state_store(tmp_path)
    clock = Clock()
    issued: list[str] = []

    def login() -> Token:
        issued.append(f"token-{len(issued) + 1}")
        return Token(issued[-1], clock() + timedelta(hours=1))

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401 if request.headers["Authorization"] == "Bearer revoked" else 200)

    def client() -> HttpClient:
        http = HttpClient("Carrier", base_url="http://carrier.test", transport=httpx.MockTransport(server))
        http.use_auth(cached(state, login, clock))
        return http

    try:
        http = client()
        http.request("GET", "/a")
        http.request("GET", "/b")
        assert issued == ["token-1"]
        clock.advance(minutes=55)  # 5 minutes left: renewed before use
        http.request("GET", "/c")
        assert issued == ["token-1", "token-2"]

        revoked = Token("revoked", clock() + timedelta(hours=1), seed="creds")  # what another run left in the state
        state.set_token("carrier", CachedToken.row, revoked.to_text(), clock())
        assert client().request("GET", "/d").status_code == 200
        assert issued == ["token-1", "token-2", "token-3"]
    finally:
        state.close()


def test_processes_sharing_the_state_log_in_once(tmp_path: Path) -> None:
    """Two threads, each with its own StateStore connection and CachedToken, stand for two
    processes: the second waits on the lock, then finds the first one's token."""
    issued: list[str] = []
    start = threading.Barrier(2)
    tokens: list[str] = []

    def login() -> Token:
        time.sleep(0.1)  # a slow token endpoint: the other one arrives meanwhile
        issued.append(f"token-{len(issued) + 1}")
        return Token(issued[-1], T0 + timedelta(hours=24))

    def one_process() -> None:
        state = state_store(tmp_path)
        try:
            auth = cached(state, login, lambda: T0)
            start.wait()
            tokens.append(auth.access_token())
        finally:
            state.close()

    threads = [threading.Thread(target=one_process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert issued == ["token-1"] and tokens == ["token-1", "token-1"]
