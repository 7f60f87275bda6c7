"""What a request that failed is answered. On the server: 503 while the database is unreachable,
else 500; JSON for the API and DICOMweb, a page for people. Neither says more than that (no
traceback, no driver message: those go to the log). A route that does not exist, or a request
Django could not read, is answered in JSON too where a program asked.

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
from django.views import defaults

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


def wants_json(request: HttpRequest) -> bool:
    """Whether the caller is a program (the API, DICOMweb, or it asked for JSON)."""
    return request.path.startswith(_JSON_PREFIXES) or "json" in request.headers.get("Accept", "")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: called by Django while the unhandled exception is being handled."""
    status = 503 if database_unavailable(sys.exc_info()[1]) else 500
    response = error_response(request, status, _MESSAGES[status])
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def error_response(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """`{"detail": message}` for a program, a page saying it for people."""
    if wants_json(request):
        return JsonResponse({"detail": message}, status=status)
    page = loader.get_template("server_error.html").render({"status": status, "message": message})
    return HttpResponse(page, status=status)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON for a program (a client parses the answer), Django's page for people."""
    if wants_json(request):
        return JsonResponse({"detail": "not found"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400 (an unreadable request body, a disallowed host): JSON for a program."""
    if wants_json(request):
        return JsonResponse({"detail": "the request could not be read"}, status=400)
    return defaults.bad_request(request, exception)
