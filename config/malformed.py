"""Requests no view can mean, refused before any view runs: a Content-Length that is not a
number, and a NUL character in the path or the query string.

A NUL is never part of a UID, a name or a filter, and PostgreSQL refuses it in text: a query
parameter carrying one would reach the database as an error (500) instead of "no rows".
Django's form and DRF fields already refuse it in bodies. A non-numeric Content-Length is
refused by a strict front server; this keeps the answer 400 where there is none.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config.errors import error_response


def problem(request: HttpRequest) -> str | None:
    """Why the request is malformed, or None."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if length and not (length.isascii() and length.isdigit()):
        return "the Content-Length header is not a number of bytes"
    if "\x00" in request.path:
        return "the path holds a NUL character"
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return f"the query parameter {key[:40]!r} holds a NUL character"
    return None


class MalformedRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        reason = problem(request)
        if reason is not None:
            return error_response(request, 400, f"Bad request: {reason}.")
        return self.get_response(request)
