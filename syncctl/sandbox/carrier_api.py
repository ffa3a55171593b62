"""What the fake carrier APIs share: a clock that tests move, fault injection and the
request log (`faults.Faults`), routing, and the carriers' zone-less São Paulo times."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from syncctl.sandbox import wire
from syncctl.sandbox.clocked import Clocked
from syncctl.sandbox.faults import Faults

Clock = Callable[[], datetime]
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


class FakeError(Exception):
    """A handler's refusal, rendered in the fake's own error style."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def local_text(moment: datetime, layout: str = "%Y-%m-%dT%H:%M:%S") -> str:
    """An aware moment as Brazilian carriers write it: São Paulo time, no offset."""
    return moment.astimezone(SAO_PAULO).strftime(layout)


def read_json(request: Request) -> Any:
    return wire.read_json(request, FakeError(400, "The request body is not valid JSON"))


class FakeCarrierApi(Clocked):
    """Base of the carrier fakes: call it as a WSGI app. Subclasses list `routes`
    ((method, path, endpoint) handled by `_on_<endpoint>(request, **args)`) and render
    errors their API's way in `error_response`. Every request holds one lock."""

    routes: ClassVar[Iterable[tuple[str, str, str]]]

    def __init__(self, clock: Clock | None, sleep: Callable[[float], None]) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._offset = timedelta()
        self._lock = threading.RLock()
        self.faults = Faults(sleep=sleep)
        self._urls = Map(
            [Rule(path, methods=[method], endpoint=endpoint) for method, path, endpoint in self.routes],
            strict_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.faults.run(request, lambda: self._dispatch(request), self.error_response)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = self._urls.bind_to_environ(request.environ).match()
            with self._lock:
                return getattr(self, f"_on_{endpoint}")(request, **args)
        except FakeError as error:
            return self.error_response(error.status, error.message)
        except HTTPException as error:  # no such route, or wrong method
            return self.error_response(error.code or 500, error.name)

    def error_response(self, status: int, message: str) -> Response:
        raise NotImplementedError
