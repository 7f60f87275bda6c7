"""What every JSON API view shares (REST_FRAMEWORK in config/settings.py): JSON nested deeper
than Python's parser follows is a 400, not a RecursionError, and a body past
DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 with a JSON message, not Django's empty HTML 400; and the
number field the serializers use, which refuses true and false."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler


class NestingSafeJSONParser(JSONParser):
    """DRF's JSON parser, with nesting deeper than Python's parser follows refused as malformed."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply") from None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus 413 for a body over the limit."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"the request body is larger than the limit of {limit} bytes"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return exception_handler(exc, context)


class NumberField(serializers.FloatField):
    """A float that is a number: DRF's FloatField takes true and false as 1.0 and 0.0."""

    default_error_messages = {"boolean": "A number is required, not true or false."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("boolean")
        value: float = super().to_internal_value(data)
        return value
