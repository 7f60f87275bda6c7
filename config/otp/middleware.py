"""Holds a signed-in admin at the second-factor page until they have given a code.

Until the session has passed its step (config.otp.policy), every page answers
with a redirect to /login/otp/ (or /login/otp/setup/ to enrol), keeping the page
asked for as `next`; htmx requests get an HX-Redirect instead. The session does
not count as signed in for the JSON API and DICOMweb meanwhile (they answer
401); API tokens are a credential of their own and work as before. Signing in,
signing out, the two second-factor pages and /health/ stay open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from urllib.parse import urlencode

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from config.otp.policy import Step, otp_step_for

# Requests under these answer 401 rather than redirect: clients cannot follow a redirect to a form.
API_PREFIXES: Final = ("/api/", "/dicomweb/")
_OPEN_URL_NAMES: Final = ("login", "logout", "otp-verify", "otp-setup", "health", "admin:logout")


class SecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._open_paths: frozenset[str] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        step = otp_step_for(request)
        if step is Step.NONE or request.path in self._open():
            return self.get_response(request)
        if request.path_info.startswith(API_PREFIXES):
            request.user = AnonymousUser()  # the session no longer counts; a token still does
            return self.get_response(request)
        return _to_step(request, step)

    def _open(self) -> frozenset[str]:
        if self._open_paths is None:  # the URLconf is not loaded yet when middleware is built
            self._open_paths = frozenset(reverse(name) for name in _OPEN_URL_NAMES)
        return self._open_paths


def _to_step(request: HttpRequest, step: Step) -> HttpResponse:
    url = reverse("otp-setup" if step is Step.SETUP else "otp-verify")
    if request.headers.get("HX-Request") == "true":
        return HttpResponseClientRedirect(url)
    if request.method in {"GET", "HEAD"}:
        url += "?" + urlencode({"next": request.get_full_path()})
    return HttpResponseRedirect(url)
