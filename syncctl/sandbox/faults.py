"""Fault injection and request recording shared by the sandbox fakes.

A fake hands every request to `Faults.run`, which consults the rules (first
matching rule with uses left wins), runs the fake's handler when the rule lets
it, and records what reached the fake:

    faults.add(method="PUT", path_prefix="/api/logistics", status=429,
               headers={"Retry-After": "1"}, times=2)
    faults.add(method="PUT", path_prefix="/api/logistics", status=500, apply_first=True)
    faults.add(path_prefix="/api/oms", delay_s=40)        # slower than the client's timeout
    faults.add(path_prefix="/api/orders/feed", drop_connection=True)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

import httpx
from werkzeug.wrappers import Request, Response

DROPPED = 0
"""`RequestRecord.status` of a request whose connection was dropped."""

ErrorBody = Callable[[int, str], Response]
"""The fake's own error response for a status and message (its API's error style)."""


@dataclass
class FaultRule:
    """What to do to matching requests. `times=None` means every matching request."""

    method: str | None = None
    path_prefix: str = "/"
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # str -> text/plain; other -> JSON; None -> the fake's error body
    times: int | None = 1
    delay_s: float = 0
    apply_first: bool = False  # run the real handler (the write happens), then answer the fault
    drop_connection: bool = False
    malformed_body: bool = False  # answer `status` (default 200) with truncated JSON
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.times is None or self.hits < self.times)
            and (self.method is None or self.method.upper() == method.upper())
            and path.startswith(self.path_prefix)
        )

    @property
    def replaces_response(self) -> bool:
        return self.status is not None or self.drop_connection or self.malformed_body


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON (Decimal for fractions), None when absent or not JSON
    status: int  # DROPPED when the connection was dropped


class Faults:
    """Thread-safe rule list plus a log of every request the fake received."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._log: list[RequestRecord] = []

    def add(
        self,
        *,
        method: str | None = None,
        path_prefix: str = "/",
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int | None = 1,
        delay_s: float = 0,
        apply_first: bool = False,
        drop_connection: bool = False,
        malformed_body: bool = False,
    ) -> FaultRule:
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for every request)")
        rule = FaultRule(
            method=method,
            path_prefix=path_prefix,
            status=status,
            headers=dict(headers or {}),
            body=body,
            times=times,
            delay_s=delay_s,
            apply_first=apply_first,
            drop_connection=drop_connection,
            malformed_body=malformed_body,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (the request log is kept)."""
        with self._lock:
            self._rules.clear()

    @property
    def requests_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, method: str | None = None, path_prefix: str = "/") -> int:
        """How many logged requests match `method` (any when None) and `path_prefix`."""
        return sum(
            1
            for record in self.requests_log
            if (method is None or record.method == method.upper()) and record.path.startswith(path_prefix)
        )

    def run(self, request: Request, handle: Callable[[], Response], error_body: ErrorBody) -> Response:
        """Answer `request`: through `handle`, the matching rule, or both (apply_first)."""
        rule = self._take(request.method, request.path)
        if rule is not None and rule.delay_s:
            self._sleep(rule.delay_s)
        if rule is None or not rule.replaces_response:
            response = handle()
        else:
            if rule.apply_first:
                handle()
            if rule.drop_connection:
                self._record(request, DROPPED)
                _drop_connection(request.environ)
            response = _fault_response(rule, error_body)
        self._record(request, response.status_code)
        return response

    def _take(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, request: Request, status: int) -> None:
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(),
            body=_json_or_none(request.get_data()),
            status=status,
        )
        with self._lock:
            self._log.append(record)


def _fault_response(rule: FaultRule, error_body: ErrorBody) -> Response:
    status = rule.status or 200
    if rule.malformed_body:
        response = Response('{"truncated": ', status, mimetype="application/json")
    elif rule.body is None:
        response = error_body(status, f"Injected fault (HTTP {status})")
    elif isinstance(rule.body, str):
        response = Response(rule.body, status, mimetype="text/plain")
    else:
        response = Response(json.dumps(rule.body), status, mimetype="application/json")
    response.headers.update(rule.headers)
    return response


def _drop_connection(environ: Mapping[str, Any]) -> NoReturn:
    sock = environ.get("werkzeug.socket")
    if sock is None:
        # In-process (httpx.WSGITransport): raise what httpx raises when a server hangs up.
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    sock.shutdown(socket.SHUT_RDWR)
    # werkzeug's server treats ConnectionError as a client disconnect: no 500, no traceback.
    raise ConnectionAbortedError("connection dropped by fault injection")


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data, parse_float=Decimal) if data else None
    except ValueError:
        return None
