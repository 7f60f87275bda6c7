"""Who is acting, for code that has no request at hand (signal receivers).

`AuditMiddleware` puts the current request here for the length of each
request; receivers of model signals (a user saved in the admin) read it to
record who made the change.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from typing import Final

from django.http import HttpRequest

_current_request: ContextVar[HttpRequest | None] = ContextVar("audit_current_request", default=None)

REQUEST_ID_HEADER: Final = "HTTP_X_REQUEST_ID"
# A proxy's request id is kept when it looks like one (no spaces or control characters).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{8,64}")


def current_request() -> HttpRequest | None:
    return _current_request.get()


def set_current_request(request: HttpRequest | None) -> Token[HttpRequest | None]:
    return _current_request.set(request)


def reset_current_request(token: Token[HttpRequest | None]) -> None:
    _current_request.reset(token)


def request_id_for(request: HttpRequest) -> str:
    """The request's id: the reverse proxy's X-Request-ID when well-formed, else a new one."""
    existing = getattr(request, "audit_request_id", None)
    if existing:
        return str(existing)
    offered = request.META.get(REQUEST_ID_HEADER, "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    request.audit_request_id = request_id  # type: ignore[attr-defined]
    return request_id
