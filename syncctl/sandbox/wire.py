"""JSON on the wire as every fake writes and reads it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=_number, ensure_ascii=False), status, mimetype="application/json")


def _number(value: Any) -> float:
    # JSON has one number type: Decimal("99.90") goes out as 99.9, Decimal(250) as 250.0.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_json(request: Request, invalid: Exception) -> Any:
    """The request's JSON body (decimals kept exact), None for an empty one; `invalid`
    (the fake's own error) is raised for a body that is not JSON."""
    data = request.get_data()
    if not data.strip():
        return None
    try:
        return json.loads(data, parse_float=Decimal)
    except ValueError:
        raise invalid from None
