"""Trouble on the channel's side of the wire: a WSGI middleware in front of a sandbox
fake that counts the requests syncctl makes and, at chosen requests, kills the syncctl
process, injects a fault, or cuts the response body short.

Choosing requests by their index, not by route, keeps it channel-agnostic: the
same plans work on any fake that has a `faults` (syncctl.sandbox.faults.Faults).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from syncctl.sandbox.faults import Faults

PHASES = ("before", "after", "between")
"""Where a kill lands around request k: before the fake sees it; after the fake applied
it but before syncctl reads the answer; or shortly after the answer, while syncctl
works on it (ERP transactions, state writes)."""


@dataclass(frozen=True)
class KillPoint:
    request: int  # 1-based, in the order the fake receives them
    phase: str
    delay_s: float = 0.0  # "between": how long after the answer the kill lands

    def __str__(self) -> str:
        extra = f" +{self.delay_s * 1000:.0f} ms" if self.phase == "between" else ""
        return f"SIGKILL {self.phase} request {self.request}{extra}"


@dataclass(frozen=True)
class Fault:
    """One kind of trouble. `rule` goes to the fake's Faults for the one request it hits
    (status, headers, body, delay_s, apply_first, drop_connection, malformed_body);
    `truncate` sends the headers and half the body, then hangs up."""

    name: str
    rule: Mapping[str, Any] = field(default_factory=dict)
    truncate: bool = False


StartResponse = Callable[..., Any]


class Chaos:
    """Wraps `app` (a fake with `.faults`). Thread-safe: the loopback server is threaded."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self._lock = threading.Lock()
        self.count = 0
        self.kill_at: KillPoint | None = None
        self.victim: subprocess.Popen[bytes] | None = None
        self.killed = threading.Event()
        self.killed_on: tuple[str, str] | None = None  # (method, path) of the request the kill landed on
        self.plan: dict[int, Fault] = {}  # request index -> fault
        self.injected: list[tuple[int, str, str, str]] = []  # (index, fault, method, path)
        self.hooks: list[Callable[[str, str, Mapping[str, str]], None]] = []  # after each answer
        self.latency_s = 0.0  # added to every answer: stretches runs so processes overlap
        self._in_flight = 0
        self._last_seen = time.monotonic()
        self._idle = threading.Condition(self._lock)

    def reset(self) -> None:
        with self._lock:
            self.count = 0
            self.kill_at = None
            self.victim = None
            self.killed.clear()
            self.killed_on = None
            self.plan = {}

    def settle(self, quiet_s: float = 0.1, timeout_s: float = 10.0) -> None:
        """Wait until no request is being handled and none has arrived for `quiet_s`. A
        killed process's last requests may still be in the server's socket queue; moving
        the fake's clock before they land would date what they do in the future (a feed
        read then hides events for another visibility timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while time.monotonic() < deadline:
                quiet_for = time.monotonic() - self._last_seen
                if self._in_flight == 0 and quiet_for >= quiet_s:
                    return
                self._idle.wait(max(quiet_s - quiet_for, 0.01))
        raise AssertionError(f"requests still arriving after {timeout_s} s")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self._in_flight += 1
            self._last_seen = time.monotonic()
        try:
            return self._handle(environ, start_response)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._last_seen = time.monotonic()
                self._idle.notify_all()

    def _handle(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.count += 1
            index = self.count
            kill = self.kill_at if self.kill_at and self.kill_at.request == index else None
            fault = self.plan.get(index)
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if kill:
            self.killed_on = (method, path)
        if self.latency_s:
            time.sleep(self.latency_s)
        if kill and kill.phase == "before":
            self._kill()
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        if fault is not None:
            self._inject(index, fault, method, path)
        status, headers, body = self._call(environ)
        for hook in self.hooks:
            hook(method, path, _query(environ))
        if kill and kill.phase == "after":
            self._kill()
        elif kill:
            threading.Timer(kill.delay_s, self._kill).start()
        start_response(status, headers)
        if fault is not None and fault.truncate:
            return _truncated(body, environ)
        return [body]

    def _inject(self, index: int, fault: Fault, method: str, path: str) -> None:
        self.injected.append((index, fault.name, method, path))
        if fault.rule:  # taken by this very request (a concurrent one to the same path may take it instead)
            self.faults.add(method=method, path_prefix=path, times=1, **fault.rule)

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            answer["status"], answer["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        return answer["status"], answer["headers"], body

    def _kill(self) -> None:
        victim = self.victim
        if victim is not None and victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            self.killed.set()


def _query(environ: Mapping[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(environ.get("QUERY_STRING", "")))


def _truncated(body: bytes, environ: Mapping[str, Any]) -> Iterable[bytes]:
    """Half the body under the full Content-Length, then the connection closes."""
    yield body[: len(body) // 2]
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)
    # werkzeug's server takes a ConnectionError as the client going away: no 500, no traceback.
    raise ConnectionAbortedError("response cut short by the reliability suite")
