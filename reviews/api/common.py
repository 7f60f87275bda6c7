"""What the reviews API views share: the error shape, input checking, object lookups.

Errors are JSON objects {"detail": message} with "field" naming the input at fault (400) and
"version", the reading's current version, on a stale write (409). An object the caller may
not see is 404, as if it did not exist; when it does exist the refusal is audited like a 403.
A body past DATA_UPLOAD_MAX_MEMORY_SIZE is 413, and JSON nested too deeply to parse is 400
(config.api, for every API view).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_permission_denied
from reviews.errors import Invalid, ReviewError, StaleVersion
from reviews.models import Reading
from reviews.roles import user_roles
from reviews.selectors import readings_for_user


class HasRole(BasePermission):
    """Any of the four roles."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(user_roles(request.user)) or bool(request.user.is_superuser)


def has(perm: str) -> type[BasePermission]:
    """A DRF permission class for one model (role) permission."""

    class Has(BasePermission):
        def has_permission(self, request: Request, view: Any) -> bool:
            return bool(request.user.has_perm(perm))

    Has.__name__ = f"Has_{perm.replace('.', '_')}"
    return Has


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False, help_text="409 on a stale write: the current version")
    field_errors = serializers.DictField(
        required=False, help_text="400 on malformed input: DRF's errors per field"
    )


class ReviewsApi(APIView):
    """Maps the workflow's refusals (reviews.errors) to their status and JSON shape."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ReviewError):
            body: dict[str, Any] = {"detail": exc.message}
            if exc.field:
                body["field"] = exc.field
            if isinstance(exc, StaleVersion):
                body["version"] = exc.current
            if exc.field_errors:
                body["field_errors"] = exc.field_errors
            return Response(body, status=exc.status)
        return super().handle_exception(exc)


def valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The serializer's validated data, or Invalid naming the first field at fault."""
    given = serializer_class(data=data)
    if given.is_valid():
        return dict(given.validated_data)
    field, messages = next(iter(given.errors.items()))
    error = Invalid(f"{field}: {_first_message(messages)}", field=field)
    error.field_errors = dict(given.errors)
    raise error


def _first_message(messages: Any) -> str:
    """The first of DRF's messages for one field: a list of them, or for a dict field a dict of
    them by key ("1.2.3: This field may not be null.")."""
    if isinstance(messages, dict) and messages:
        key, inner = next(iter(messages.items()))
        return f"{key}: {_first_message(inner)}"
    if isinstance(messages, list) and messages:
        return _first_message(messages[0])
    return str(messages)


def reading_or_404(request: Request, pk: int) -> Reading:
    reading = readings_for_user(user=request.user).filter(pk=pk).first()
    if reading is None:
        hidden_or_missing(request, exists=Reading.objects.filter(pk=pk).exists())
    assert reading is not None
    return reading


def hidden_or_missing(request: Request, *, exists: bool) -> None:
    """Raises 404; audits the refusal when the object exists but is not the caller's to see."""
    if exists:
        audit_permission_denied(request=request._request)
    raise Http404("not found")


def created_or_ok(created: bool) -> int:
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK
