"""A fake Jadlog Embarcador tracking API, as the reference's checklist
(shared/reference/carriers-and-nfe.md §11, shapes from §5) describes it.

- POST /embarcador/api/tracking/consultar with `Authorization: Bearer <token>` and
  {"consulta": [{"shipmentId": ...} | {"codigo": ...}, ...]} -> {"consulta": [...]},
  one element per query in order; an unknown id -> {"erro": {"id": 1, "descricao":
  "Não localizado"}}; events oldest first, dates in either of Jadlog's two formats.
- A bad token -> 401 with a plain-text body; more than `max_queries` queries -> 400
  (None: no limit, as far as anyone knows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from syncctl.sandbox.carrier_api import (
    Clock,
    FakeCarrierApi,
    FakeError,
    local_text,
    read_json,
)
from syncctl.sandbox.wire import json_response

ISO_DATE = "%Y-%m-%d %H:%M:%S"
BR_DATE = "%d/%m/%Y %H:%M"
NOT_FOUND = {"id": 1, "descricao": "Não localizado"}


class FakeJadlog(FakeCarrierApi):
    routes = (("POST", "/embarcador/api/tracking/consultar", "consult"),)

    def __init__(
        self,
        token: str = "demo-jadlog-token",
        clock: Clock | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(clock, sleep)
        self._token = token
        self.shipments: dict[str, dict[str, Any]] = {}  # shipmentId -> its `consulta` element
        self.max_queries: int | None = None

    # -- test/demo helpers -------------------------------------------------------------------
    def add_shipment(self, shipment_id: str, codigo: str, issued_at: datetime) -> None:
        with self._lock:
            self.shipments[shipment_id] = {
                "codigo": codigo,
                "shipmentId": shipment_id,
                "previsaoEntrega": local_text(issued_at, "%Y-%m-%d"),
                "tracking": {
                    "codigo": codigo, "shipmentId": shipment_id, "dacte": f"9000{shipment_id[-10:]}",
                    "dtEmissao": local_text(issued_at, "%d/%m/%Y"), "status": "EMISSAO",
                    "valor": Decimal("125.34"), "peso": Decimal("5.6"), "eventos": [],
                },
            }  # fmt: skip

    def add_event(self, shipment_id: str, status: str, at: datetime, unit: str, *, date_format: str = ISO_DATE) -> None:
        """One step of the shipment; `status` becomes its current status."""
        with self._lock:
            tracking = self.shipments[shipment_id]["tracking"]
            tracking["eventos"].append({"data": local_text(at, date_format), "status": status, "unidade": unit})
            tracking["status"] = status

    # -- the API -----------------------------------------------------------------------------
    def _on_consult(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self._token}":
            raise FakeError(401, "Unauthorized")
        body = read_json(request)
        queries = body.get("consulta") if isinstance(body, dict) else None
        if not isinstance(queries, list) or not queries:
            raise FakeError(400, "consulta: informe ao menos uma consulta")
        if self.max_queries is not None and len(queries) > self.max_queries:
            raise FakeError(400, f"consulta: no máximo {self.max_queries} por chamada")
        return json_response({"consulta": [self._answer(query) for query in queries]})

    def _answer(self, query: Any) -> dict[str, Any]:
        if not isinstance(query, dict):
            return {"erro": NOT_FOUND}
        if "shipmentId" in query:
            found = self.shipments.get(str(query["shipmentId"]))
        else:
            found = next((s for s in self.shipments.values() if s["codigo"] == str(query.get("codigo"))), None)
        return found if found is not None else {**query, "erro": NOT_FOUND}

    def error_response(self, status: int, message: str) -> Response:
        return Response(message, status, mimetype="text/plain")  # Jadlog's errors are not always JSON
