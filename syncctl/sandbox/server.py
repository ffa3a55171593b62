"""Serve a sandbox WSGI app on a loopback port from a daemon thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _QuietRequestHandler(WSGIRequestHandler):
    """No access-log line per request (the demo and benchmarks would drown in them), and no
    Nagle delay between the header and body writes of a response."""

    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class RunningServer:
    """A started server; `stop()` (or leaving the `with` block) shuts it down."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host = f"[{server.host}]" if ":" in server.host else server.host
        self.url = f"http://{host}:{server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start `app` (a WSGI callable) on `host:port`; port 0 picks a free port."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"sandbox servers listen on loopback only, not {host!r}")
    server = make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox:{server.server_port}", daemon=True)
    thread.start()
    return RunningServer(server, thread)
