"""The OpenAPI schema as a contract a client can generate code from: generated without a warning, every success
body typed down to its leaves, every operation's errors listed, and the metric bodies the API really sends
(from built marts, every widget type included) valid against it."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.urls import resolve
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from dashboards.layouts import WIDGET_METRICS, layout_validate
from dashboards.models import DashboardTemplate
from tests.fuzz.test_openapi import schema as served_schema

SCHEMA_KEYWORDS = {"type", "$ref", "allOf", "oneOf", "anyOf", "enum"}
UNSAFE_METHODS = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def openapi() -> dict:
    """The schema drf-spectacular serves, generated in process; fails on any warning or error it reports."""
    GENERATOR_STATS.reset()
    generated = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular reported warnings or errors (see the captured output)"
    validate_schema(generated)  # the OpenAPI 3 JSON schema: raises on an invalid document
    return generated


def operations(openapi: dict):
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def free_form_parts(openapi: dict, node: dict, where: str, seen: set[str]) -> list[str]:
    """Where `node` leaves a value untyped: no type at all, or an object with neither properties nor typed extra
    keys (DRF's DictField and JSONField), following references."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return free_form_parts(openapi, openapi["components"]["schemas"][name], name, seen)
    if not SCHEMA_KEYWORDS & set(node):
        return [where]
    found = []
    extra = node.get("additionalProperties")
    if node.get("type") == "object" and not node.get("properties") and not (isinstance(extra, dict) and extra):
        found.append(where)
    for name, child in node.get("properties", {}).items():
        found += free_form_parts(openapi, child, f"{where}.{name}", seen)
    if "items" in node:
        found += free_form_parts(openapi, node["items"], f"{where}[]", seen)
    if isinstance(extra, dict) and extra:
        found += free_form_parts(openapi, extra, f"{where}{{}}", seen)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for index, child in enumerate(node.get(keyword, [])):
            found += free_form_parts(openapi, child, f"{where}<{keyword}{index}>", seen)
    return found


def test_every_success_body_is_typed_to_its_leaves(openapi):
    untyped = []
    for path, method, operation in operations(openapi):
        label = f"{method.upper()} {path}"
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert successes, label
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response, label
                continue
            body = response["content"]["application/json"]["schema"]
            untyped += [f"{label} {code}: {where}" for where in free_form_parts(openapi, body, "body", set())]
    assert untyped == []


def test_the_metric_payloads_are_described_field_by_field(openapi):
    components = openapi["components"]["schemas"]
    overview = components["OverviewResponse"]["properties"]
    assert overview["kpis"] == {"$ref": "#/components/schemas/OverviewKpis"}
    kpis = components["Kpis"]["properties"]
    assert kpis["orders"] == {"type": "integer"}
    assert kpis["net_revenue"] == {"type": "string", "format": "decimal"}  # as `jsonable` writes a Decimal
    assert components["OverviewDay"]["properties"]["date_day"] == {"type": "string", "format": "date"}
    assert set(components["AttributionModelRevenue"]["properties"]) == set(WIDGET_METRICS["attribution_table"]) - {
        "comparison"
    }
    data = components["AppliedWidget"]["properties"]["data"]
    assert len(data["anyOf"]) == 7


def test_every_operation_lists_the_errors_it_answers(openapi):
    """401 everywhere; 404 wherever an id is in the path; 400 (field errors) wherever there is input; 403 for
    writes (role, or CSRF on cookie sessions); 429 wherever the view is throttled."""
    for path, method, operation in operations(openapi):
        label, statuses = f"{method.upper()} {path}", set(operation["responses"])
        expected = {"401"}
        if "{" in path:
            expected.add("404")
        if operation.get("parameters") and any(p["in"] == "query" for p in operation["parameters"]):
            expected.add("400")
        if "requestBody" in operation:
            expected |= {"400", "415"}
        if method in UNSAFE_METHODS:
            expected.add("403")
        view = resolve(re.sub(r"\{[^}]+\}", "1", path)).func.view_class
        if view.throttle_classes:
            expected.add("429")
        assert expected <= statuses, (label, expected - statuses)
        if "400" in statuses:
            body = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/FieldErrors"}, label


# --- real bodies against the schema -----------------------------------------------------------------------

EVERY_WIDGET = [
    {"type": kind, "metric": metric, "options": {"title": f"{kind} {metric}"}}
    for kind, metrics in WIDGET_METRICS.items()
    for metric in metrics
]
METRICS = ["overview", "ltv", "attribution", "attribution/compare", "engagement"]
RANGES = [
    {"preset": "last_90_days"},
    {"preset": "last_7_days", "compare": "none"},
    {"start": "2020-01-01", "end": "2020-01-31"},  # no data at all: zeros and nulls
]


def call(case, tenants):
    with transaction.atomic():
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {tenants.token_a}"},
            checks=[status_code_conformance, response_schema_conformance],
        )
        transaction.set_rollback(True)
    return response


@pytest.mark.django_db(databases=["default", "warehouse"])
@pytest.mark.parametrize("query", RANGES)
@pytest.mark.parametrize("endpoint", METRICS)
def test_metric_bodies_match_the_schema(endpoint, query, tenants, in_process_requests):
    operation = served_schema[f"/api/merchants/{{merchant_id}}/metrics/{endpoint}/"]["GET"]
    for extra in ({}, {"model": "time_decay"}) if endpoint == "attribution" else ({},):
        case = operation.Case(path_parameters={"merchant_id": tenants.a.pk}, query={**query, **extra})
        response = call(case, tenants)
        assert response.status_code == 200, response.text[:500]


@pytest.mark.django_db(databases=["default", "warehouse"])
@pytest.mark.parametrize("query", RANGES)
def test_applied_dashboard_with_every_widget_matches_the_schema(query, tenants, in_process_requests):
    template = DashboardTemplate.objects.create(
        merchant=tenants.a, name="Every widget", layout=layout_validate(EVERY_WIDGET), created_by="user_fuzz_alice"
    )
    operation = served_schema["/api/merchants/{merchant_id}/dashboard-templates/{template_id}/apply/"]["POST"]
    case = operation.Case(path_parameters={"merchant_id": tenants.a.pk, "template_id": template.pk}, query=query)
    response = call(case, tenants)
    assert response.status_code == 200, response.text[:500]
    widgets = response.json()["widgets"]
    assert [(w["type"], w["metric"]) for w in widgets] == [(w["type"], w["metric"]) for w in EVERY_WIDGET]
