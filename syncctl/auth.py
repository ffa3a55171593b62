"""Bearer tokens a channel or carrier obtains at run time and keeps in the state file,
as an `http.Auth` (install it with `HttpClient.use_auth`).

Two kinds share one mechanism (`StoredBearer`):

- `RotatingTokens`: OAuth 2.0 with single-use, rotating refresh tokens (Mercado Livre,
  Melhor Envio). Every refresh answers a new refresh token and voids the one used, so
  a pair is precious: lose the new one and the seller must authorize the app again.
- `CachedToken`: a token from a login that stays good until it expires (Correios).

Either way (pitfalls §6):

- one token per account, kept in the state file as one row (written atomically) with
  a fingerprint of the credentials it came from; every token read or written is
  registered with `redact`;
- renewing happens under a lock per account shared by every process using the state
  file (a blocking OS file lock beside it); after taking the lock the stored token is
  read again, since another process may have renewed it meanwhile;
- the new token is committed to the state before it is used;
- a token is renewed `renew_before` its expiry, and once when the remote answers 401.

A refused refresh token (`invalid_grant`) makes `RotatingTokens` read the store once
more (a pair rotated by someone else is used) before giving up with AuthError (exit 3)
saying how to re-authorize.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlencode

from syncctl import locks, paths
from syncctl.errors import AuthError, SyncctlError
from syncctl.http import HttpClient
from syncctl.redact import redact

log = logging.getLogger("syncctl.auth")

RENEW_BEFORE = timedelta(minutes=5)  # the default: a token this close to expiry is renewed first
LOCK_TIMEOUT_S = 60.0  # renewing takes one request; a holder this slow has hung
_FORM = "application/x-www-form-urlencoded"


class TokenState(Protocol):
    """Where tokens are kept: the StateStore (its `path` places the locks)."""

    path: Any

    def token(self, owner: str, name: str) -> str | None: ...

    def set_token(self, owner: str, name: str, value: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class Token:
    """A bearer and what came with it, as kept in the state file."""

    access_token: str
    expires_at: datetime
    refresh_token: str | None = None  # rotating OAuth: spent by its next use
    account: str | None = None  # whose tokens (e.g. the Mercado Livre user_id)
    seed: str | None = None  # fingerprint() of the credentials it came from

    def usable(self, now: datetime, renew_before: timedelta) -> bool:
        return now < self.expires_at - renew_before

    def to_text(self) -> str:
        return json.dumps({**asdict(self), "expires_at": self.expires_at.isoformat()})

    @classmethod
    def from_text(cls, text: str) -> Token:
        fields = json.loads(text)
        return cls(**{**fields, "expires_at": datetime.fromisoformat(fields["expires_at"])})


class InvalidGrant(SyncctlError):
    """The token endpoint refused the code or refresh token (used, expired, revoked)."""


def fingerprint(*parts: str) -> str:
    """Tells credentials apart without keeping them."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def token_request(
    http: HttpClient, url: str, form: Mapping[str, str], now: datetime, label: str, *, as_json: bool = False
) -> Token:
    """POST one RFC 6749 token request (credentials in the body, never a bearer; a form
    unless `as_json`); the pair it grants. Not retried after it may have reached the
    server: a refresh token is spent the moment the server reads it."""
    body: dict[str, Any] = (
        {"json": dict(form)} if as_json else {"content": urlencode(form).encode(), "headers": {"Content-Type": _FORM}}
    )
    response = http.request("POST", url, **body, allow=(400, 401), safe_to_retry=False, authenticated=False)
    answer = _json(response.text)
    if response.status_code != 200:
        error = str(answer.get("error") or "")
        description = str(answer.get("error_description") or answer.get("message") or "")
        if error == "invalid_grant":
            raise InvalidGrant(description or error)
        raise AuthError(redact(
            f"{label} refused the token request (HTTP {response.status_code} {error}: {description}): "
            "check client_id and client_secret in the config"
        ))
    try:
        token = Token(
            access_token=str(answer["access_token"]),
            refresh_token=str(answer["refresh_token"]),
            expires_at=now + timedelta(seconds=int(answer["expires_in"])),
            account=None if answer.get("user_id") is None else str(answer["user_id"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AuthError(f"{label}'s token answer lacks {exc}: does the app have offline access?") from None
    _hide(token)
    return token


class StoredBearer:
    """An `http.Auth` whose bearer is one row (`row`) of `owner` in the state file,
    renewed in step with every process sharing it. A subclass says how a new token is
    obtained (`_obtain`)."""

    row: str

    def __init__(
        self,
        *,
        owner: str,
        label: str,
        state: TokenState,
        now: Callable[[], datetime],
        seed: str | None,
        renew_before: timedelta,
    ) -> None:
        self._owner = owner
        self._label = label
        self._state = state
        self._now = now
        self._seed = seed
        self._renew_before = renew_before
        self._lock_dir = paths.lock_dir(state.path)
        self._threads = threading.Lock()
        self._token: Token | None = None

    # -- http.Auth ---------------------------------------------------------------------
    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def refresh(self, rejected: Mapping[str, str]) -> None:
        log.info("%s refused the access token: renewing it", self._label)
        self._renew(rejected=rejected.get("Authorization", "").removeprefix("Bearer "))

    # ----------------------------------------------------------------------------------
    def access_token(self) -> str:
        token = self._token
        if token is None or not token.usable(self._now(), self._renew_before):
            token = self._renew(rejected=None)
        return token.access_token

    def _obtain(self, stored: Token | None) -> Token:
        """A new token, committed with `_store` (or one another process stored), called
        under the lock; `stored` is what the state holds: None, or a token not current."""
        raise NotImplementedError

    def _renew(self, rejected: str | None) -> Token:
        with self._threads:
            token = self._token
            if token is None or not self._current(token, rejected):  # else another thread renewed it meanwhile
                with self._locked():
                    stored = self._load()
                    # A current stored token was renewed by another process.
                    token = stored if stored is not None and self._current(stored, rejected) else self._obtain(stored)
                self._token = token
            return token

    def _current(self, token: Token, rejected: str | None) -> bool:
        return token.usable(self._now(), self._renew_before) and token.access_token != rejected

    def _locked(self) -> AbstractContextManager[None]:
        return locks.wait_for(self._lock_dir, f"token-{self._owner}", LOCK_TIMEOUT_S)

    def _load(self) -> Token | None:
        text = self._state.token(self._owner, self.row)
        if text is None:
            return None
        try:
            token = Token.from_text(text)
        except (ValueError, KeyError, TypeError):
            log.warning("%s: the token in the state file is unreadable; ignored", self._label)
            return None
        _hide(token)
        return token

    def _store(self, token: Token) -> Token:
        """Committed before the token is used: for a rotating pair the old refresh token is spent."""
        token = replace(token, seed=self._seed)
        _hide(token)
        self._state.set_token(self._owner, self.row, token.to_text(), self._now())
        return token


class CachedToken(StoredBearer):
    """A bearer from a login that stays good until it expires, reused across runs while
    it comes from the same credentials (`credentials`, a fingerprint). `login()` sends
    its own request with `authenticated=False`."""

    row = "bearer"

    def __init__(
        self,
        *,
        owner: str,
        label: str,
        state: TokenState,
        now: Callable[[], datetime],
        login: Callable[[], Token],
        credentials: str,
        renew_before: timedelta = RENEW_BEFORE,
    ) -> None:
        super().__init__(owner=owner, label=label, state=state, now=now, seed=credentials, renew_before=renew_before)
        self._login = login

    def _load(self) -> Token | None:
        stored = super()._load()
        return stored if stored is not None and stored.seed == self._seed else None  # else other credentials' token

    def _obtain(self, stored: Token | None) -> Token:
        return self._store(self._login())


class RotatingTokens(StoredBearer):
    """One account's OAuth pair with single-use refresh tokens. `grant(form)` posts a
    token request with the client's credentials added (see `token_request`);
    `reauthorize` says what a person does to start over; `first_refresh_token` is the
    config's, used once (remembered by fingerprint as the pair's seed)."""

    row = "oauth"

    def __init__(
        self,
        *,
        owner: str,
        label: str,
        state: TokenState,
        grant: Callable[[Mapping[str, str]], Token],
        now: Callable[[], datetime],
        reauthorize: str,
        first_refresh_token: str | None = None,
        renew_before: timedelta = RENEW_BEFORE,
    ) -> None:
        seed = fingerprint(first_refresh_token) if first_refresh_token else None
        super().__init__(owner=owner, label=label, state=state, now=now, seed=seed, renew_before=renew_before)
        self._grant = grant
        self._reauthorize = reauthorize
        self._first = first_refresh_token

    def authorize(self, form: Mapping[str, str]) -> Token:
        """Trade an authorization code (or a refresh token) for a pair and store it."""
        with self._threads, self._locked():
            try:
                granted = self._grant(form)
            except InvalidGrant as exc:
                raise AuthError(redact(
                    f"{self._label} refused the grant ({exc}): codes and refresh tokens work once; get a new one"
                )) from None
            self._token = self._store(granted)
            return self._token

    def _obtain(self, stored: Token | None) -> Token:
        return self._rotate(self._refresh_token(stored))

    def _refresh_token(self, stored: Token | None) -> str:
        if self._first and (stored is None or stored.seed != self._seed):
            return self._first  # a refresh token the config has not used yet
        if stored is None or stored.refresh_token is None:
            raise AuthError(
                f"{self._label}: no token pair in the state file and no refresh token in the config: "
                f"{self._reauthorize}"
            )
        return stored.refresh_token

    def _rotate(self, spent: str) -> Token:
        """Trade `spent` for a new pair, stored before it is used. Refused, the store is
        read once more: a fresh pair there was rotated by someone else and is used; an
        older chain there (the config's token was the stale one) is carried on."""
        try:
            return self._store(self._refreshed(spent))
        except InvalidGrant as exc:
            refused = exc
        stored = self._load()
        if stored is None or stored.refresh_token is None or stored.refresh_token == spent:
            raise self._refused(refused)
        if stored.usable(self._now(), self._renew_before):
            return stored
        try:
            return self._store(self._refreshed(stored.refresh_token))
        except InvalidGrant as again:
            raise self._refused(again) from None

    def _refreshed(self, refresh_token: str) -> Token:
        return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _refused(self, error: InvalidGrant) -> AuthError:
        return AuthError(redact(
            f"{self._label} refused the refresh token ({error}): it was used already, expired unused, or the "
            f"authorization was revoked (say, the seller changed the password). Re-authorize: {self._reauthorize}"
        ))


def _hide(token: Token) -> None:
    redact.add(token.access_token)
    redact.add(token.refresh_token)


def _json(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text, parse_float=Decimal)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
