"""The second-factor pages: give a code (/login/otp/) and enrol a device (/login/otp/setup/)."""

from __future__ import annotations

from base64 import b32encode
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods

from config.otp.policy import (
    STEP_SESSION_KEY,
    Step,
    otp_applies,
    otp_confirmed_device,
    otp_step_for,
    otp_step_owed,
)
from config.otp.services import (
    CodeResult,
    otp_code_check,
    otp_device_confirm,
    otp_device_pending,
    otp_session_pass,
)


class CodeForm(forms.Form):
    code = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": "Enter the 6-digit code from your authenticator app."},
    )


@require_http_methods(["GET", "POST"])
def otp_verify(request: HttpRequest) -> HttpResponse:
    """Asks an admin who has a device for its current code; passes the session on a good one."""
    step = _step_now(request)
    if step is Step.SETUP:
        return HttpResponseRedirect(_with_next(reverse("otp-setup"), request))
    device = otp_confirmed_device(request.user) if step is Step.VERIFY else None
    if device is None:
        return HttpResponseRedirect(_next_url(request))
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        result = otp_code_check(request=request, device=device, code=form.cleaned_data["code"].strip())
        if result.passed:
            otp_session_pass(request=request, device=device)
            return HttpResponseRedirect(_next_url(request))
        error = _refusal(result)
    context = {"form": form, "error": error, "next": _next_url(request)}
    return render(request, "registration/otp_verify.html", context)


@require_http_methods(["GET", "POST"])
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Enrols an authenticator app for an admin who has none: a QR code, then a first good code."""
    if not otp_applies(request.user):
        raise PermissionDenied("the second factor is for admins")
    if otp_confirmed_device(request.user) is not None:  # a second device is added by resetting the first
        return HttpResponseRedirect(_with_next(reverse("otp-verify"), request))
    device = otp_device_pending(user=request.user)
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        result = otp_code_check(request=request, device=device, code=form.cleaned_data["code"].strip())
        if result.passed:
            otp_device_confirm(request=request, device=device)
            otp_session_pass(request=request, device=device)
            return HttpResponseRedirect(_next_url(request))
        error = _refusal(result)
    context = {
        "form": form,
        "error": error,
        "next": _next_url(request),
        "qr_svg": _qr_svg(device.config_url),
        "secret": _grouped(b32encode(device.bin_key).decode()),
        "required": settings.OTP_REQUIRED_FOR_ADMINS,
    }
    return render(request, "registration/otp_setup.html", context)


def _step_now(request: HttpRequest) -> Step:
    """The session's step, re-read from the database (a device may have been reset meanwhile)."""
    if otp_step_for(request) is Step.NONE:
        return Step.NONE
    step = otp_step_owed(request.user)
    request.session[STEP_SESSION_KEY] = step.value
    return step


def _refusal(result: CodeResult) -> str:
    if result.wait_seconds:
        return f"Too many wrong codes: wait {result.wait_seconds} s before trying again."
    return "That code is not right (or was already used). Enter the current code."


def _next_url(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return wanted if safe else settings.LOGIN_REDIRECT_URL


def _with_next(url: str, request: HttpRequest) -> str:
    wanted = request.GET.get("next")
    return f"{url}?{urlencode({'next': wanted})}" if wanted else url  # re-checked where it goes


def _qr_svg(data: str) -> SafeString:
    """The QR code as inline SVG markup, drawn here: no image request, no script, no CDN."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=8)
    svg = image.to_string(encoding="unicode")
    svg = svg.replace(
        "<svg ", '<svg class="otp-qr" role="img" aria-label="QR code for your authenticator app" ', 1
    )
    return mark_safe(svg)  # noqa: S308 (markup generated here from our own URL, no user text)


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
