"""Gives each request an id and a place in audit.context, and audits refusals.

Every 403 response, whoever raised it (a permission check, DRF, the CSRF
check), is recorded as a Security Alert (110113) of type Use of Restricted
Function (110132) with a minor-failure outcome: the protection held.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from audit.context import request_id_for, reset_current_request, set_current_request
from audit.services import audit_permission_denied


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_for(request)
        token = set_current_request(request)
        try:
            response = self.get_response(request)
        finally:
            reset_current_request(token)
        response["X-Request-ID"] = request_id
        if response.status_code == 403:
            audit_permission_denied(request=request)
        return response
