"""API-wide behaviour shared by every DRF view."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"


def exception_handler(exc, context):
    """Model-level validation errors become field-level 400s; marts that are not built yet, a 503."""
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
    401: OpenApiResponse(DetailSerializer, "No session token, or one that was rejected (expired, wrong party…)."),
    403: OpenApiResponse(
        DetailSerializer,
        "Not allowed: your role on this merchant does not allow it, or a request authenticated by the"
        " `__session` cookie failed the CSRF check (send the bearer token instead).",
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
