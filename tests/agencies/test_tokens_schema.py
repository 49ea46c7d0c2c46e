"""The OpenAPI schema documents both ways in: Clerk sessions everywhere, agency tokens where they are taken."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_both_schemes_are_defined(openapi):
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["clerkSession"]["bearerFormat"] == "JWT"
    assert schemes["agencyToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "mkt_at_…",
        "description": schemes["agencyToken"]["description"],
    }
    assert "403" in schemes["agencyToken"]["description"] and "429" in schemes["agencyToken"]["description"]


def test_the_metrics_take_either_and_document_401_403_429(openapi):
    metrics = [(p, ops["get"]) for p, ops in openapi["paths"].items() if "/metrics/" in p]
    assert len(metrics) == 5
    for path, operation in metrics:
        assert operation["security"] == [{"agencyToken": []}, {"clerkSession": []}], path
        assert {"401", "403", "429"} <= set(operation["responses"]), path


def test_routes_that_refuse_tokens_document_clerk_only(openapi):
    assert openapi["paths"]["/api/merchants/"]["get"]["security"] == [{"clerkSession": []}]
    templates = openapi["paths"]["/api/merchants/{merchant_id}/dashboard-templates/"]
    assert templates["get"]["security"] == [{"agencyToken": []}, {"clerkSession": []}]
    assert templates["post"]["security"] == [{"clerkSession": []}]
