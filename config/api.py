"""API-wide behaviour shared by every DRF view."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
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
