"""What a request that failed on the server is answered: 503 while the database is unreachable,
else 500; JSON for the API and DICOMweb, a page for people. Neither says more than that (no
traceback, no driver message: those go to the log).

A dropped database connection (PostgreSQL restarting, a failover, a terminated session) is a
temporary outage the client can retry, so it gets 503 with Retry-After, as a load balancer
expects; Django would answer 500 (or 400 when it met the outage saving the session, see
config.sessions.SessionStore).
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

RETRY_AFTER_SECONDS = 5
_JSON_PREFIXES = ("/api/", "/dicomweb/")
_MESSAGES = {
    503: "The database is unavailable for a moment. Try again in a few seconds.",
    500: "Something went wrong on the server. It has been logged; try again, or tell your administrator.",
}


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it was raised from) is a lost or refused database connection."""
    while exc is not None:
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: called by Django while the unhandled exception is being handled."""
    status = 503 if database_unavailable(sys.exc_info()[1]) else 500
    message = _MESSAGES[status]
    response: HttpResponse
    if request.path.startswith(_JSON_PREFIXES) or "json" in request.headers.get("Accept", ""):
        response = JsonResponse({"detail": message}, status=status)
    else:
        page = loader.get_template("server_error.html").render({"status": status, "message": message})
        response = HttpResponse(page, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
