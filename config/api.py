"""API-wide behaviour shared by every DRF view: errors, the JSON parser, pagination."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, fields, pagination, parsers, serializers

# No document our API takes nests deeper than a handful of levels (a layout is list → widget → options).
# Python's json raises RecursionError (a 500) near 1,000 levels; far below that we refuse with a 400.
MAX_JSON_DEPTH = 32
JSON_TOO_DEEP = f"JSON may nest at most {MAX_JSON_DEPTH} levels deep."

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000  # far beyond any list we have, far below bigint
LIMIT_INVALID = f"Enter a whole number from 1 to {MAX_LIMIT}; larger numbers are read as {MAX_LIMIT}."
OFFSET_INVALID = f"Enter a whole number from 0 to {MAX_OFFSET}."


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"


def exception_handler(exc, context):
    """Model-level validation errors become field-level 400s; marts that are not built yet, a 503."""
    # Imported here: DRF's views module reads DEFAULT_PARSER_CLASSES (this module's JSONParser) on import, so
    # importing it at the top is a circular import whenever DRF's settings load this module first (its
    # pagination system check does, and Django runs checks in an arbitrary order).
    from rest_framework.views import exception_handler as drf_exception_handler

    from dashboards.selectors import MartsNotBuilt

    if isinstance(exc, MartsNotBuilt):
        exc = ServiceUnavailable("The analytics models have not been built yet; try again after the first dbt build.")
    elif isinstance(exc, DjangoValidationError):
        if hasattr(exc, "message_dict"):
            exc = exceptions.ValidationError(detail=exc.message_dict)
        else:
            exc = exceptions.ValidationError(detail={"non_field_errors": exc.messages})
    return drf_exception_handler(exc, context)


# --- documented error bodies ------------------------------------------------------------------------
# Every operation lists the errors it really answers (tests/fuzz checks each status against the schema), with
# one of these bodies: field errors for 400/409/422, `{"detail": …}` for the rest.


class FieldErrorsSerializer(serializers.Serializer):
    """`{field: [message, …]}`; `non_field_errors` concerns the whole input; `detail` alone when the body
    could not be parsed at all (malformed JSON, an unsupported media type)."""

    detail = serializers.CharField(required=False)
    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


class FieldErrorsScheme(OpenApiSerializerExtension):
    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        return {**schema, "additionalProperties": {"type": "array", "items": {"type": "string"}}}


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ProviderUnavailableSerializer(DetailSerializer):
    retry_after = serializers.IntegerField(help_text="Seconds; also sent as the Retry-After header.")


ERROR_RESPONSES = {
    400: OpenApiResponse(FieldErrorsSerializer, "Invalid input: the errors by field."),
    401: OpenApiResponse(
        DetailSerializer,
        "No session token, or one that was rejected (expired, wrong party…); or an agency token that is invalid,"
        " expired or revoked.",
    ),
    403: OpenApiResponse(
        DetailSerializer,
        "Not allowed: your role on this merchant does not allow it, a request authenticated by the"
        " `__session` cookie failed the CSRF check (send the bearer token instead), or an agency token lacks"
        " the operation's scope (or cannot be used here at all).",
    ),
    404: OpenApiResponse(DetailSerializer, "No such object among yours (another merchant's answers the same)."),
    409: OpenApiResponse(FieldErrorsSerializer, "Conflicts with the current state: the field that conflicts."),
    415: OpenApiResponse(DetailSerializer, "The body is not `application/json`."),
    429: OpenApiResponse(DetailSerializer, "Too many attempts; the Retry-After header says when to try again."),
    503: OpenApiResponse(DetailSerializer, "The analytics models have not been built yet; try again later."),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented errors of one operation, e.g. `error_responses(400, 401, 404)`."""
    return {code: ERROR_RESPONSES[code] for code in codes}


# --- JSON ---------------------------------------------------------------------------------------------


class JsonTooDeep(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than max_depth; iterative, so depth costs no stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def json_loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON (no NaN or Infinity) nested at most max_depth deep; ValueError (JsonTooDeep) otherwise.

    The one JSON reader for request input: the API's parser and the pages' forms both use it. Python's
    parser raises RecursionError (not a ValueError) on documents nested about a thousand deep."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise JsonTooDeep(JSON_TOO_DEEP) from exc
    if _too_deep(value, max_depth):
        raise JsonTooDeep(JSON_TOO_DEEP)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with json_loads: over-deep documents are a 400 (ParseError), never a RecursionError."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(stream.read().decode(encoding))
        except ValueError as exc:  # includes UnicodeDecodeError and json.JSONDecodeError
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc


class JSONField(fields.JSONField):
    """DRF's JSONField, reading JSON text with json_loads. A form or multipart body carries the JSON as text,
    which DRF's own field hands to json.loads: 10,000 brackets there were a RecursionError (a 500)."""

    def to_internal_value(self, data):
        if self.binary or getattr(data, "is_json_string", False):
            try:
                return json_loads(data)
            except ValueError:
                self.fail("invalid")
        return super().to_internal_value(data)


# --- pagination ---------------------------------------------------------------------------------------


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset, bounded: a limit above MAX_LIMIT is read as MAX_LIMIT, and a limit or offset that is
    not a whole number in range is a 400 naming the parameter (DRF's own passes 99999999999999999999 to
    PostgreSQL, which answers "bigint out of range" — a 500 — and silently ignores `limit=abc`)."""

    max_limit = MAX_LIMIT

    def _int(self, request, name: str, default: int, minimum: int, maximum: int | None, message: str) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:  # not digits, or more digits than int() will read
            raise exceptions.ValidationError({name: [message]}) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise exceptions.ValidationError({name: [message]})
        return value

    def get_limit(self, request):
        if self.default_limit is None:
            return None
        value = self._int(request, self.limit_query_param, self.default_limit, 1, None, LIMIT_INVALID)
        return min(value, self.max_limit)

    def get_offset(self, request):
        return self._int(request, self.offset_query_param, 0, 0, MAX_OFFSET, OFFSET_INVALID)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        # No maximum for limit: a larger one is accepted and read as MAX_LIMIT.
        bounds = {
            self.limit_query_param: {"minimum": 1},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET},
        }
        for parameter in parameters:
            if parameter["name"] in bounds:
                parameter["schema"] = {**parameter["schema"], **bounds[parameter["name"]]}
        return parameters
