"""What every DICOMweb view shares: authentication, errors as HTTP answers, URLs.

Scripts and viewers sign in with an API token (`Authorization: Token ...`),
HTTP Basic (dicomweb-client, curl -u) or the browser session. A request that is
not signed in gets 401 with WWW-Authenticate, never the login page's redirect:
DICOMweb clients cannot follow one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.authentication import (
    BasicAuthentication,
    SessionAuthentication,
    TokenAuthentication,
    get_authorization_header,
)

from config.otp.policy import Step, otp_step_owed
from viewer.decode import FrameError

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]

# A Token challenge: a Basic one would make browsers pop up a password dialog
# over the viewer when a session ends. Scripts send Basic credentials unasked.
WWW_AUTHENTICATE = 'Token realm="Overread DICOMweb"'


class DicomwebError(Exception):
    """A request we answer with an HTTP error status and a specific message."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> HttpResponse:
        answer = JsonResponse({"detail": self.message}, status=self.status)
        for name, value in self.headers.items():
            answer[name] = value
        return answer


class NotFound(DicomwebError):
    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class BadRequest(DicomwebError):
    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class NotAcceptable(DicomwebError):
    def __init__(self, message: str) -> None:
        super().__init__(406, message)


def dicomweb_view(*methods: str) -> Callable[[View], View]:
    """Makes a view a DICOMweb endpoint answering `methods` (GET also answers HEAD).

    CSRF is exempted at the middleware and enforced by DRF's session
    authentication for session-signed-in unsafe requests, so token and Basic
    clients (STOW-RS scripts) need no CSRF token and browsers still do.
    """
    allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorate(view: View) -> View:
        @wraps(view)
        def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in allowed:
                return HttpResponseNotAllowed(sorted(allowed))
            try:
                authenticate(request)
                return view(request, *args, **kwargs)
            except DicomwebError as error:
                return error.response()
            except FrameError:
                # The detail may name storage paths: it goes to the log, not to the client.
                logger.exception("cannot serve %s", request.path)
                return DicomwebError(500, "the stored object cannot be read or decoded").response()

        return csrf_exempt(login_not_required(endpoint))

    return decorate


def authenticate(request: HttpRequest) -> None:
    """Signs the request in (token, Basic or session) or raises a 401/403 DicomwebError.

    Sets `request.user`, and `request.dicomweb_scope`: what "one session" means
    for the audit (the session, the token or the Basic-authenticated user).
    DRF's authenticators are given the Django request itself, so what they
    trigger (axes, the audit of failed sign-ins) sees a plain request.
    """
    if getattr(request, "dicomweb_scope", None):
        return  # signed in already: the STOW view runs inside the /studies dispatcher
    try:
        signed_in = _credentials(request)
    except exceptions.AuthenticationFailed as exc:
        raise DicomwebError(401, str(exc.detail), headers={"WWW-Authenticate": WWW_AUTHENTICATE}) from None
    except exceptions.PermissionDenied as exc:  # a session request without its CSRF token
        raise DicomwebError(403, str(exc.detail)) from None
    if signed_in is None:
        raise DicomwebError(401, "sign in first", headers={"WWW-Authenticate": WWW_AUTHENTICATE})
    request.user, request.dicomweb_scope = signed_in  # type: ignore[attr-defined]


def _credentials(request: HttpRequest) -> tuple[Any, str] | None:
    scheme = get_authorization_header(request).split(b" ", 1)[0].lower()  # type: ignore[arg-type]
    if scheme == b"token":
        result = TokenAuthentication().authenticate(request)  # type: ignore[arg-type]
        if result is not None:
            digest = hashlib.sha256(str(result[1]).encode()).hexdigest()[:32]
            return result[0], f"token:{digest}"
    elif scheme == b"basic":
        result = BasicAuthentication().authenticate(request)  # type: ignore[arg-type]
        # A password alone does not pass for a user who owes a second factor (admins with a
        # TOTP device): they use an API token, as every integration does.
        if result is not None and otp_step_owed(result[0]) is Step.NONE:
            return result[0], f"user:{result[0].pk}"
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    SessionAuthentication().enforce_csrf(request)  # type: ignore[arg-type]
    return user, f"session:{request.session.session_key}"


def dicomweb_root(request: HttpRequest) -> str:
    """The absolute URL of the DICOMweb root, without a trailing slash."""
    studies = reverse("dicomweb:studies")
    return request.build_absolute_uri(studies.removesuffix("/studies"))


def study_url(request: HttpRequest, study_uid: str) -> str:
    return f"{dicomweb_root(request)}/studies/{study_uid}"


def series_url(request: HttpRequest, study_uid: str, series_uid: str) -> str:
    return f"{study_url(request, study_uid)}/series/{series_uid}"


def instance_url(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{series_url(request, study_uid, series_uid)}/instances/{sop_uid}"
