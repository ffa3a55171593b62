"""A fake Correios: the Token API and the API Rastro, as the reference's checklist
(shared/reference/carriers-and-nfe.md §11, shapes from §1.2-1.5) describes them.

- POST /token/v1/autentica/cartaopostagem: Basic user:access_code and the postcard in
  the body -> 201 with a 24 h token (`expiraEm` local time without offset, `zoneOffset`).
- GET /srorastro/v1/objetos/{code} (default resultado=T) and
  GET /srorastro/v1/objetos?codigosObjetos=...&codigosObjetos=... (default resultado=U,
  at most `max_codes`): Bearer token; unknown code -> `mensagem` SRO-020, malformed or
  bad check digit -> SRO-019; events newest first, `dtHrCriado` local without offset.
- Switches: `token_apis` (a token without 87 gets 403 on tracking), `expire_tokens()`,
  and the shared fault rules (429 with an empty body, 503, ...).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from syncctl.carriers.codes import is_valid_s10
from syncctl.sandbox.carrier_api import (
    Clock,
    FakeCarrierApi,
    FakeError,
    local_text,
    read_json,
)
from syncctl.sandbox.wire import json_response

VERSION = "3.5.38"
MAX_CODES = 50
OBJECT_NOT_FOUND = "SRO-020: Objeto não encontrado na base de dados dos Correios."
OBJECT_INVALID = "SRO-019: Objeto inválido"

# The usual text of the events the scenarios use (§3).
DESCRIPTIONS: dict[tuple[str, int], str] = {
    ("PO", 1): "Objeto postado",
    ("RO", 1): "Objeto em transferência - por favor aguarde",
    ("OEC", 1): "Objeto saiu para entrega ao destinatário",
    ("OEC", 9): "Objeto saiu para entrega ao remetente",
    ("BDE", 1): "Objeto entregue ao destinatário",
    ("BDE", 4): "A entrega não pode ser efetuada - Cliente recusou-se a receber",
    ("BDE", 20): "A entrega não pode ser efetuada - Carteiro não atendido",
    ("BDE", 23): "Objeto entregue ao remetente",
    ("BDE", 80): "Objeto extraviado",
    ("LDI", 1): "Objeto aguardando retirada no endereço indicado",
    ("EST", 1): "Favor desconsiderar a informação anterior",
}
# (event type, status number, hours after the start, city) per scenario of the checklist.
# Starting at 09:00 São Paulo time, the scans fall at plausible hours.
Step = tuple[str, int, float, str]
_ON_THE_WAY: list[Step] = [("PO", 1, 0, "SAO PAULO"), ("RO", 1, 13, "SAO PAULO"), ("OEC", 1, 47.5, "CAMPINAS")]
SCENARIOS: dict[str, list[Step]] = {
    "delivered": [*_ON_THE_WAY, ("BDE", 1, 53, "CAMPINAS")],
    "failed_then_pickup": [*_ON_THE_WAY, ("BDE", 20, 52, "CAMPINAS"), ("LDI", 1, 77, "CAMPINAS")],
    "returned": [*_ON_THE_WAY, ("BDE", 4, 52, "CAMPINAS"), ("OEC", 9, 119, "SAO PAULO"), ("BDE", 23, 125, "SAO PAULO")],
    "estorno": [*_ON_THE_WAY, ("BDE", 1, 53, "CAMPINAS"), ("EST", 1, 53.25, "CAMPINAS")],
    "lost": [("PO", 1, 0, "SAO PAULO"), ("RO", 1, 13, "SAO PAULO"), ("BDE", 80, 200, "SAO PAULO")],
    "unknown_code": [("PO", 1, 0, "SAO PAULO"), ("XYZ", 7, 30, "SAO PAULO")],
}
UNIT_TYPES = {"PO": "Agência dos Correios", "RO": "Unidade de Tratamento"}


class FakeCorreios(FakeCarrierApi):
    routes = (
        ("POST", "/token/v1/autentica/cartaopostagem", "token"),
        ("GET", "/srorastro/v1/objetos/<code>", "one_object"),
        ("GET", "/srorastro/v1/objetos", "objects"),
    )

    def __init__(
        self,
        user: str = "demo-user",
        access_code: str = "demo-access-code",
        postcard: str = "0012345678",
        clock: Clock | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(clock, sleep)
        self._credentials = (user, access_code)
        self.postcard = postcard
        self.objects: dict[str, list[dict[str, Any]]] = {}  # code -> events, oldest first
        self.tokens: dict[str, tuple[datetime, tuple[int, ...]]] = {}  # token -> (expires at, API ids)
        self.token_apis: tuple[int, ...] = (87,)  # what tokens issued from now on may call
        self.token_lifetime = timedelta(hours=24)
        self.max_codes = MAX_CODES
        self.asked: list[list[str]] = []  # the codes of each tracking request that reached the fake

    # -- test/demo helpers -------------------------------------------------------------------
    def add_event(
        self, code: str, event_type: str, number: int, at: datetime, *,
        description: str | None = None, city: str = "SAO PAULO", uf: str = "SP",
    ) -> None:  # fmt: skip
        """One scan of parcel `code` at the aware moment `at`."""
        event = {
            "codigo": event_type,
            "tipo": f"{number:02d}",
            "dtHrCriado": local_text(at),
            "descricao": description or DESCRIPTIONS.get((event_type, number), f"Evento {event_type} {number:02d}"),
            "unidade": {
                "tipo": UNIT_TYPES.get(event_type, "Unidade de Distribuição"),
                "endereco": {"cidade": city, "uf": uf},
            },
        }
        with self._lock:
            self.objects.setdefault(code, []).append(event)

    def add_scenario(self, code: str, name: str, start: datetime, *, upto: int | None = None) -> None:
        """The scenario's events (the first `upto` of them) from `start` on."""
        for event_type, number, hours, city in SCENARIOS[name][:upto]:
            self.add_event(code, event_type, number, start + timedelta(hours=hours), city=city)

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (a cached token goes stale)."""
        with self._lock:
            expired = self.now() - timedelta(seconds=1)
            self.tokens = {token: (expired, apis) for token, (_, apis) in self.tokens.items()}

    # -- token -------------------------------------------------------------------------------
    def _on_token(self, request: Request) -> Response:
        if _basic(request) != self._credentials:
            raise FakeError(401, "Usuário ou código de acesso inválido")
        body = read_json(request)
        if not isinstance(body, dict) or str(body.get("numero", "")) != self.postcard:
            raise FakeError(400, "Cartão de postagem inválido ou não vinculado ao usuário")
        now = self.now()
        expires = now + self.token_lifetime
        token = f"eyJhbGciOiJSUzUxMiJ9.fake-correios-{len(self.tokens) + 1}.c2lnbmF0dXJl"
        self.tokens[token] = (expires, self.token_apis)
        return json_response({
            "ambiente": "PRODUCAO", "id": "11222333000181", "ip": "203.0.113.10", "perfil": "PJ",
            "cnpj": "11222333000181",
            "cartaoPostagem": {"numero": self.postcard, "contrato": "9912345678", "dr": 72,
                               "api": [34, 35, 36, 41, 76, *self.token_apis]},
            "api": list(self.token_apis),
            "emissao": local_text(now), "expiraEm": local_text(expires), "zoneOffset": "-03:00",
            "token": token,
        }, 201)  # fmt: skip

    # -- tracking ----------------------------------------------------------------------------
    def _on_one_object(self, request: Request, code: str) -> Response:
        self.asked.append([code])
        return self._track(request, [code], request.args.get("resultado", "T"))

    def _on_objects(self, request: Request) -> Response:
        codes = request.args.getlist("codigosObjetos")
        self.asked.append(codes)
        if not codes:
            raise FakeError(400, "Informe ao menos um objeto (codigosObjetos)")
        if len(codes) > self.max_codes:
            raise FakeError(400, f"Quantidade de objetos excede o limite de {self.max_codes}")
        return self._track(request, codes, request.args.get("resultado", "U"))  # the batch form's default

    def _track(self, request: Request, codes: Sequence[str], result: str) -> Response:
        self._authorize(request)
        objects = [self._object(code, result) for code in codes]
        kind = {"T": "Todos os eventos", "U": "Último evento", "P": "Primeiro evento"}.get(result, result)
        return json_response({"versao": VERSION, "quantidade": len(objects), "objetos": objects, "tipoResultado": kind})

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        expires, apis = self.tokens.get(header.removeprefix("Bearer "), (None, ()))
        if not header.startswith("Bearer ") or expires is None or expires <= self.now():
            raise FakeError(401, "Token inválido ou expirado")
        if 87 not in apis:
            raise FakeError(403, "Acesso negado: o token não dá acesso à API 87 (SRO Rastro)")

    def _object(self, code: str, result: str) -> dict[str, Any]:
        if not is_valid_s10(code) or code != code.upper():
            return {"codObjeto": code, "mensagem": OBJECT_INVALID}
        events = self.objects.get(code)
        if events is None:
            return {"codObjeto": code, "mensagem": OBJECT_NOT_FOUND}
        # Newest first; among equal times the later scan first.
        order = sorted(range(len(events)), key=lambda index: (events[index]["dtHrCriado"], index), reverse=True)
        newest_first = [events[index] for index in order]
        chosen = {"U": newest_first[:1], "P": newest_first[-1:]}.get(result, newest_first)
        return {
            "codObjeto": code,
            "tipoPostal": {"sigla": code[:2], "descricao": "ETIQUETA LOGICA SEDEX", "categoria": "SEDEX"},
            "modalidade": "F", "formato": "Pacote",
            "eventos": chosen,
        }  # fmt: skip

    def error_response(self, status: int, message: str) -> Response:
        """The gateway's MessageResponse; a 429 comes with an empty body (§1.5)."""
        if status == 429:
            return Response(status=429)
        return json_response({
            "msgs": [message], "causa": _REASONS.get(status, "Erro"), "date": local_text(self.now()),
            "method": None, "path": None, "stackTrace": None,
        }, status)  # fmt: skip


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"}


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    except ValueError:
        return None
    return user, secret
