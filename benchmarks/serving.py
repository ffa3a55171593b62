"""The fake VTEX as the benchmarks serve it: behind a layer that adds network latency
and enforces a rate limit, counting what it answers.

`Network` is WSGI middleware, so the fake itself stays as the tests use it. Each
request first waits `latency_s` (the round trip to a remote API), then takes a token
from a server-side bucket of `rate_per_s`: none left means 429 with Retry-After, as
VTEX answers. It records how many requests came, which were writes, how many were
refused, and when the last accepted write was answered.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from syncctl.sandbox.server import RunningServer, serve
from syncctl.sandbox.vtex import FakeVtex

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ACCOUNT, APP_KEY, APP_TOKEN = "bench", "vtexappkey-bench-BENCH", "bench-app-token-not-a-secret"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Tally:
    requests: int = 0
    writes: int = 0  # PUT, POST, PATCH, DELETE that reached the fake
    refused: int = 0  # answered 429 by the rate limit
    first_request: float | None = None  # time.monotonic() when the first request arrived
    last_accepted_write: float | None = None  # ... and when the last 2xx answer to a write went out


class Network:
    """Latency and a rate limit in front of `app`; thread-safe."""

    def __init__(
        self, app: WSGIApp, *, latency_s: float = 0.0, rate_per_s: float | None = None, burst: int = 50,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.app = app
        self.latency_s = latency_s
        self.rate_per_s = rate_per_s
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()
        self.tally = Tally()

    def reset(self) -> Tally:
        """Start counting afresh; returns the counts so far."""
        with self._lock:
            done, self.tally = self.tally, Tally()
            return done

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = environ["REQUEST_METHOD"] not in _READS
        arrived = self._clock()
        if self.latency_s:
            self._sleep(self.latency_s)
        with self._lock:
            self.tally.requests += 1
            if self.tally.first_request is None:
                self.tally.first_request = arrived
            allowed = self._take()
            if not allowed:
                self.tally.refused += 1
        if not allowed:
            start_response("429 Too Many Requests", [("Content-Type", "application/json"), ("Retry-After", "1")])
            return [b'{"Message":"Too many requests"}']
        if not write:
            return self.app(environ, start_response)
        with self._lock:
            self.tally.writes += 1

        def recording(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if status.startswith("2"):
                with self._lock:
                    self.tally.last_accepted_write = self._clock()
            return start_response(status, headers, *rest)

        return self.app(environ, recording)

    def _take(self) -> bool:
        if self.rate_per_s is None:
            return True
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as real APIs serve: werkzeug's development server (the
    sandbox's) closes every connection, so each request would pay a TCP connect and a
    new server thread, and the server, not the client, would set the pace. The request
    body is read whole and the response buffered, so every response has a
    Content-Length and the connection is always ready for the next request."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    app: WSGIApp

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ = {
            "REQUEST_METHOD": self.command, "SCRIPT_NAME": "", "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version, "CONTENT_LENGTH": str(length),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            **{
                "HTTP_" + name.upper().replace("-", "_"): value
                for name, value in self.headers.items()
                if name.lower() not in ("content-type", "content-length")
            },
        }
        answer: list[Any] = []
        chunks = self.app(environ, lambda status, headers, *_: answer.extend((status, headers)))
        try:
            payload = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        status, headers = answer
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ListeningServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets some of the push workers' first
    # connections, which all arrive at once.
    request_queue_size = 128


class KeepAliveServer:
    """`app` on a loopback port, one thread per connection, from a daemon thread."""

    def __init__(self, app: WSGIApp) -> None:
        handler = type("Handler", (_KeepAliveHandler,), {"app": staticmethod(app)})
        self._server = _ListeningServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="bench-store", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


SERVERS: dict[str, Callable[[WSGIApp], KeepAliveServer | RunningServer]] = {
    "keep-alive": KeepAliveServer,
    "werkzeug": serve,  # the sandbox's own: every request on a new connection
}


@dataclass
class Store:
    """One fake VTEX store on loopback, behind its network."""

    fake: FakeVtex
    network: Network
    server: KeepAliveServer | RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def open_store(*, latency_s: float, rate_per_s: float | None, server: str = "keep-alive") -> Store:
    fake = FakeVtex(account=ACCOUNT, app_key=APP_KEY, app_token=APP_TOKEN)
    network = Network(fake, latency_s=latency_s, rate_per_s=rate_per_s)
    return Store(fake, network, SERVERS[server](network))
