"""Sessions: idle expiry without a database write on every request, and a store that reports a
lost database as what it is.

Sessions end after SESSION_COOKIE_AGE of inactivity. Django's
SESSION_SAVE_EVERY_REQUEST would renew the expiry by writing the session on
every request, which is one write per image frame while a viewer loads a
series. This middleware renews it at most once a minute instead, so the idle
limit holds to within a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.http import HttpRequest, HttpResponse

from config.errors import database_unavailable

RENEW_AFTER_SECONDS = 60
_KEY = "_renewed_at"


def _now() -> float:
    return time.time()


class SessionRenewalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and session.session_key and not session.is_empty():
            now = _now()
            if now - float(session.get(_KEY, 0)) >= RENEW_AFTER_SECONDS:
                session[_KEY] = now  # marks the session modified: saved with a fresh expiry
        return response


class SessionStore(db.SessionStore):
    """The database session store (SESSION_ENGINE = "config.sessions").

    Django's store turns any database error while saving a session into
    UpdateError, which its middleware answers 400 ("the session was deleted"):
    right when another request deleted the session, wrong when the database
    was unreachable. Here the latter stays a database error (answered 503 by
    config.errors.server_error).
    """

    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create=must_create)
        except UpdateError as exc:
            cause = exc.__context__
            if cause is not None and database_unavailable(cause):
                raise cause from None
            raise
