"""Schemathesis over the whole OpenAPI schema drf-spectacular serves, in process, signed in as tenant A.

Every operation gets the same bounded, derandomized run: the schema's examples, boundary cases (coverage) and
a fixed number of generated cases, valid and invalid, with path and body ids drawn half the time from tenant
A's, tenant B's and missing rows. Each case runs in a savepoint that is rolled back, so every case sees the
same data and the run is repeatable. Four checks: no 5xx, every status documented, the documented content
type, and the documented body.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.fuzz.conftest import (
    CREDENTIAL_A,
    MERCHANT_A,
    MERCHANT_B,
    MERCHANT_VIEWER,
    MISSING_ID,
    STATUSES,
    TEMPLATE_A,
    TEMPLATE_B,
)

MAX_EXAMPLES = 20  # generated cases per operation, on top of its examples and boundary cases

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "dictionaries": {
            "merchants": {"values": [MERCHANT_A, MERCHANT_B, MERCHANT_VIEWER, MISSING_ID]},
            "templates": {"values": [TEMPLATE_A, TEMPLATE_B, CREDENTIAL_A, MISSING_ID]},
            "versions": {"values": [1]},  # the version of TEMPLATE_A: updates that are not stale
        },
        "parameters": {
            "path.merchant_id": {"dictionary": "merchants", "probability": 0.5},
            "body.merchant_id": {"dictionary": "merchants", "probability": 0.5},
            "path.template_id": {"dictionary": "templates", "probability": 0.5},
            "body.version": {"dictionary": "versions", "probability": 0.5},
        },
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)

KNOWN_IDS = {MERCHANT_A, MERCHANT_B, MERCHANT_VIEWER, TEMPLATE_A, TEMPLATE_B, CREDENTIAL_A, MISSING_ID}
TENANT_A_IDS = {"merchant_id": MERCHANT_A, "template_id": TEMPLATE_A}


def tenant_a_unless_known(name: str, value):
    """A random id is nobody's and would only ever test the 404: make it tenant A's, so that the query and the
    body get tested. B's and missing ids come from the dictionaries; values that are not ids at all (invalid
    cases: `true`, `null,null`, `-1`) are sent as they are."""
    if (type(value) is int or (isinstance(value, str) and value.isdigit())) and int(value) not in KNOWN_IDS:
        return TENANT_A_IDS.get(name, value)
    return value


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.django_db(databases=["default", "warehouse"])
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_operation(case, tenants, in_process_requests):
    # A savepoint per case, rolled back (an exception rolls it back too): every case sees the same rows.
    if case.path_parameters:
        case.path_parameters = {name: tenant_a_unless_known(name, v) for name, v in case.path_parameters.items()}
    with transaction.atomic():
        response = case.call_and_validate(headers={"Authorization": f"Bearer {tenants.token_a}"}, checks=CHECKS)
        transaction.set_rollback(True)
    STATUSES[(case.operation.label, response.status_code)] += 1


BODY_MEDIA_TYPES = {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}


def test_every_operation_documents_the_errors_it_can_answer():
    """The static half of status_code_conformance: what every operation shares is documented everywhere,
    with the shared bodies (a new view without `error_responses` fails here before any request is made)."""
    raw = schema.raw_schema
    error_bodies = {"#/components/schemas/Detail", "#/components/schemas/FieldErrors"}
    for path, operations in raw["paths"].items():
        for method, operation in operations.items():
            label, responses = f"{method.upper()} {path}", operation["responses"]
            assert "401" in responses, label
            if "{" in path:
                assert "404" in responses, label
            if "requestBody" in operation:
                assert {"400", "415"} <= set(responses), label
                # The parsers of REST_FRAMEWORK (JSON, form, multipart); anything else is the documented 415.
                assert set(operation["requestBody"]["content"]) == BODY_MEDIA_TYPES, label
            for status, response in responses.items():
                if status in ("400", "401", "403", "404", "409", "415", "429"):
                    assert response["content"]["application/json"]["schema"]["$ref"] in error_bodies, (label, status)
    field_errors = raw["components"]["schemas"]["FieldErrors"]
    assert field_errors["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
