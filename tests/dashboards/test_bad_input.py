"""Bad input to the dashboards, their API and the API's shared machinery answers 4xx, never 500 (issue 12, item 4).

Each case here was a 500: year-1 and year-9999 dates (the comparison periods and cohort months left the
calendar), JSON nested 10,000 deep (RecursionError in the parser), NUL characters and lone surrogates in
names and layouts (PostgreSQL and the UTF-8 encoder refuse them), `?offset=` beyond bigint, and
`OPTIONS /api/docs/`. The test client re-raises a view's exception, so a 500 fails the test outright.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from compliance.choices import ActorType
from compliance.models import AuditEvent
from compliance.services import Actor
from config import api as config_api
from dashboards import forms as dashboard_forms
from dashboards import periods, services
from dashboards.exports import CSV_TABLES
from dashboards.models import DashboardTemplate

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

OUT = periods.DATE_OUT_OF_RANGE
# (params, the field errors every page, export and metrics endpoint must answer)
BAD_RANGES = [
    ({"start": "0001-01-01", "end": "0001-01-10"}, {"start": [OUT], "end": [OUT]}),
    ({"start": "0001-01-01", "end": "0001-01-10", "compare": "previous_year"}, {"start": [OUT], "end": [OUT]}),
    ({"start": "1999-12-31", "end": "2000-01-31"}, {"start": [OUT]}),
    ({"start": "9999-12-01", "end": "9999-12-31"}, {"start": [OUT], "end": [OUT]}),
    ({"start": "2099-12-01", "end": "2100-01-01"}, {"end": [OUT]}),
    ({"start": "0000-01-01", "end": "0001-01-01"}, {"start": [periods.DATE_INVALID], "end": [OUT]}),
    ({"start": "0001-01-01"}, {"start": [OUT], "end": [periods.RANGE_INCOMPLETE]}),
]  # fmt: skip
METRICS = ["overview", "ltv", "attribution", "attribution/compare", "engagement"]
PAGES = ["overview", "ltv", "attribution", "engagement"]


@pytest.fixture
def signed_in(client, clerk, owner):
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    return client


@pytest.fixture
def bearer(clerk, owner):
    return clerk.auth_header(owner.clerk_user_id)


def page_url(merchant, name, *args):
    return reverse(f"dashboards:{name}", args=[merchant.pk, *args])


def templates_url(merchant, path=""):
    return f"/api/merchants/{merchant.pk}/dashboard-templates/{path}"


def post_json(client, url, body: str, headers, method="post"):
    return getattr(client, method)(url, body, content_type="application/json", **headers)


def a_template(alpine, owner) -> DashboardTemplate:
    return services.dashboard_template_create(
        merchant=alpine,
        name="Weekly",
        layout=[{"type": "kpi", "metric": "orders"}],
        actor=Actor(type=ActorType.CLERK_USER, id=owner.clerk_user_id, label=owner.clerk_user_id),
    )


# --- dates at the edges of the calendar --------------------------------------------------------------


@pytest.mark.parametrize(("params", "errors"), BAD_RANGES)
@pytest.mark.parametrize("endpoint", METRICS)
def test_metrics_api_refuses_dates_outside_the_calendar_it_can_compute(
    client, bearer, alpine, endpoint, params, errors
):
    response = client.get(f"/api/merchants/{alpine.pk}/metrics/{endpoint}/", params, **bearer)
    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize(("params", "errors"), BAD_RANGES)
@pytest.mark.parametrize("page", PAGES)
def test_pages_show_the_date_errors_with_the_default_range(signed_in, alpine, page, params, errors):
    response = signed_in.get(page_url(alpine, page), params)
    assert response.status_code == 400
    assert response.context["range_errors"] == errors
    assert response.context["date_range"].preset in ("last_30_days", "last_12_months")


@pytest.mark.parametrize("params", [params for params, _ in BAD_RANGES])
def test_template_pages_show_the_date_errors(signed_in, alpine, owner, params):
    template = a_template(alpine, owner)
    for url in (page_url(alpine, "starter_detail", "retention"), page_url(alpine, "template_detail", template.pk)):
        response = signed_in.get(url, params)
        assert response.status_code == 400
        assert response.context["range_errors"]


@pytest.mark.parametrize(("params", "errors"), BAD_RANGES)
@pytest.mark.parametrize("table", sorted(CSV_TABLES))
def test_exports_refuse_dates_outside_the_calendar(signed_in, alpine, table, params, errors):
    response = signed_in.get(page_url(alpine, "export_csv", table), params)
    assert response.status_code == 400
    body = response.content.decode()
    for field, messages in errors.items():
        assert f"{field}: {' '.join(messages)}" in body


@pytest.mark.parametrize(("params", "errors"), BAD_RANGES[:2])
def test_apply_refuses_dates_outside_the_calendar(client, bearer, alpine, owner, params, errors):
    template = a_template(alpine, owner)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = client.post(templates_url(alpine, f"{template.pk}/apply/?{query}"), **bearer)
    assert response.status_code == 400
    assert response.json() == errors


def test_the_edges_of_the_calendar_are_accepted_and_compute(client, bearer, alpine):
    for params in (
        {"start": "2000-01-01", "end": "2000-01-31", "compare": "previous_year"},
        {"start": "2000-01-01", "end": "2000-01-31", "compare": "previous_period"},
        {"start": "2099-01-01", "end": "2099-12-31"},
    ):
        for endpoint in METRICS:
            response = client.get(f"/api/merchants/{alpine.pk}/metrics/{endpoint}/", params, **bearer)
            assert response.status_code == 200, (endpoint, params, response.content[:300])


# --- JSON nested deep --------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [10_000, 1_000, config_api.MAX_JSON_DEPTH + 1])
def test_api_refuses_json_nested_too_deep_with_a_400(client, bearer, alpine, owner, depth):
    template = a_template(alpine, owner)
    for method, url in (("post", templates_url(alpine)), ("patch", templates_url(alpine, f"{template.pk}/"))):
        response = post_json(client, url, nested(depth), bearer, method)
        assert response.status_code == 400
        assert config_api.JSON_TOO_DEEP in response.json()["detail"]
    body = json.dumps({"name": "Deep", "layout": json.loads(nested(config_api.MAX_JSON_DEPTH - 1))})
    assert post_json(client, templates_url(alpine), body, bearer).status_code == 400  # a layout error, not a parse one
    assert DashboardTemplate.objects.count() == 1


@pytest.mark.parametrize("depth", [10_000, config_api.MAX_JSON_DEPTH + 1])
def test_a_form_encoded_layout_nested_too_deep_is_a_field_error(client, bearer, alpine, owner, depth):
    """A form or multipart body carries the layout as JSON text; the serializer's field parses it."""
    template = a_template(alpine, owner)
    data = {"name": "Deep", "layout": nested(depth), "version": "1"}
    response = client.post(templates_url(alpine), data, **bearer)  # multipart
    assert response.status_code == 400
    assert list(response.json()) == ["layout"]
    response = client.patch(
        templates_url(alpine, f"{template.pk}/"), urlencode(data), "application/x-www-form-urlencoded", **bearer
    )
    assert response.status_code == 400
    assert list(response.json()) == ["layout"]
    assert DashboardTemplate.objects.count() == 1


def test_json_at_the_maximum_depth_is_parsed():
    assert config_api.json_loads(nested(config_api.MAX_JSON_DEPTH)) == json.loads(nested(config_api.MAX_JSON_DEPTH))
    with pytest.raises(config_api.JsonTooDeep):
        config_api.json_loads('{"a": ' * 33 + "1" + "}" * 33)
    with pytest.raises(ValueError):
        config_api.json_loads("[NaN]")


@pytest.mark.parametrize("depth", [10_000, config_api.MAX_JSON_DEPTH + 1])
def test_the_layout_editor_refuses_json_nested_too_deep(signed_in, alpine, owner, depth):
    template = a_template(alpine, owner)
    response = signed_in.post(
        page_url(alpine, "template_edit", template.pk), {"version": 1, "layout": nested(depth)}, follow=True
    )
    assert dashboard_forms.LAYOUT_NOT_JSON in response.content.decode()
    template.refresh_from_db()
    assert template.version == 1


# --- NUL and lone surrogates --------------------------------------------------------------------------

# A form post cannot carry a lone surrogate (Django decodes undecodable bytes as U+FFFD); JSON can, as an
# escape, so the API cases below have them, and tests/dashboards/test_properties.py gives them to the forms.


def test_save_as_template_refuses_nul_in_names_and_descriptions(signed_in, alpine):
    for data in ({"name": "Week\x00ly"}, {"name": "Fine", "description": "a\x00b"}):
        response = signed_in.post(page_url(alpine, "template_save"), {"source": "page:ltv", **data}, follow=True)
        assert response.status_code == 200
        assert "Not saved:" in response.content.decode()
    assert not DashboardTemplate.objects.exists()
    assert not AuditEvent.objects.filter(action="dashboard_template.created").exists()


def test_save_as_template_with_an_unstorable_source_or_back_url_is_not_a_500(signed_in, alpine):
    assert signed_in.post(page_url(alpine, "template_save"), {"source": "page:ltv\x00", "name": "x"}).status_code == 404
    response = signed_in.post(page_url(alpine, "template_save"), {"source": "page:ltv", "name": "", "back": "/m\x00/"})
    assert response.url == page_url(alpine, "template_list")


@pytest.mark.parametrize(
    "data",
    [
        {"name": "Week\x00ly"},
        {"description": "a\x00b"},
        {"layout": '[{"type": "kpi", "metric": "orders", "options": {"title": "a\\u0000b"}}]'},
        {"layout": '[{"type": "kpi", "metric": "orders", "options": {"title": "a\\ud800b"}}]'},
        {"layout": '[{"type": "kpi\\u0000", "metric": "orders"}]'},
        {"layout": '[{"type": "kpi", "metric": "orders", "\\ud800": 1}]'},
        {"layout": "[\x00]"},
        {"version": "99999999999999999999"},
        {"version": "1\x00"},
        {"version": ""},
    ],
)
def test_the_layout_editor_refuses_unstorable_text_and_numbers_out_of_range(signed_in, alpine, owner, data):
    template = a_template(alpine, owner)
    body = {"version": 1, "layout": '[{"type": "kpi", "metric": "orders"}]', **data}
    response = signed_in.post(page_url(alpine, "template_edit", template.pk), body, follow=True)
    assert response.status_code == 200
    assert "Not saved:" in response.content.decode()
    template.refresh_from_db()
    assert (template.name, template.version) == ("Weekly", 1)


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "Week\\u0000ly", "layout": []}',
        '{"name": "Week\\ud800ly", "layout": []}',
        '{"name": "Weekly", "description": "\\u0000", "layout": []}',
        '{"name": "Weekly", "description": "\\udfff", "layout": []}',
        '{"name": "Weekly", "layout": [{"type": "kpi", "metric": "orders", "options": {"title": "\\u0000"}}]}',
        '{"name": "Weekly", "layout": [{"type": "kpi", "metric": "orders", "options": {"title": "\\ud800"}}]}',
        '{"name": "Weekly", "layout": [{"type": "\\ud800", "metric": "orders"}]}',
        '{"name": "Weekly", "layout": [{"type": ["kpi"], "metric": {"a": 1}}]}',
        '{"name": "Weekly", "layout": [{"type": "kpi", "metric": ["orders"], "\\ud800\\u0000": 1}]}',
        '{"name": "Weekly", "layout": [{"type": "kpi", "metric": "orders", "options": {"width": ["wide"]}}]}',
        '{"name": "Weekly", "layout": [], "version": 99999999999999999999}',
    ],
)
def test_the_api_refuses_unstorable_text_in_names_descriptions_and_layouts(client, bearer, alpine, owner, body):
    template = a_template(alpine, owner)
    assert post_json(client, templates_url(alpine), body, bearer).status_code == 400
    patch = json.loads(body) | {"version": 1}
    if "version" in json.loads(body):
        patch["version"] = 99999999999999999999
    response = post_json(client, templates_url(alpine, f"{template.pk}/"), json.dumps(patch), bearer, "patch")
    assert response.status_code == 400
    assert DashboardTemplate.objects.count() == 1
    template.refresh_from_db()
    assert (template.name, template.version) == ("Weekly", 1)


def test_huge_template_ids_are_404_not_500(client, bearer, signed_in, alpine):
    huge = 99999999999999999999
    assert client.get(templates_url(alpine, f"{huge}/"), **bearer).status_code == 404
    assert client.post(templates_url(alpine, f"{huge}/apply/"), **bearer).status_code == 404
    assert signed_in.get(page_url(alpine, "template_detail", huge)).status_code == 404
    assert signed_in.post(page_url(alpine, "template_apply"), {"template": str(huge)}).status_code == 404
    assert signed_in.post(page_url(alpine, "template_apply"), {"template": "1\x00"}).status_code == 404


# --- pagination ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": "99999999999999999999"}, "offset"),
        ({"offset": str(config_api.MAX_OFFSET + 1)}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1e3"}, "offset"),
        ({"offset": "9" * 5000}, "offset"),  # more digits than int() reads
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1\x00"}, "limit"),
    ],
)
def test_list_endpoints_refuse_limits_and_offsets_that_are_not_bounded_whole_numbers(client, bearer, params, field):
    response = client.get("/api/merchants/", params, **bearer)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_limit_beyond_the_maximum_is_read_as_the_maximum(client, bearer, alpine):
    for limit in ("99999999999999999999", str(config_api.MAX_LIMIT + 1)):
        response = client.get("/api/merchants/", {"limit": limit, "offset": "0"}, **bearer)
        assert response.status_code == 200
        assert response.json()["count"] == 1
        assert f"limit={config_api.MAX_LIMIT}" in (response.json()["next"] or f"limit={config_api.MAX_LIMIT}")
    assert client.get("/api/merchants/", {"offset": str(config_api.MAX_OFFSET)}, **bearer).json()["results"] == []


def test_the_project_pagination_is_the_default():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"] == "config.api.LimitOffsetPagination"
    assert settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"][0] == "config.api.JSONParser"


# --- the docs page ------------------------------------------------------------------------------------


def test_options_on_the_docs_page_says_what_it_allows(client):
    response = client.options("/api/docs/")
    assert response.status_code == 200
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert client.get("/api/docs/").status_code == 200


# --- what the schema says -----------------------------------------------------------------------------


def test_the_schema_documents_the_4xx_each_dashboards_operation_returns(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    documented = {}
    for path, operations in schema["paths"].items():
        if "/metrics/" in path or "/dashboard-templates/" in path:
            for method, operation in operations.items():
                documented[(method, path.split("}/", 1)[1])] = {int(code) for code in operation["responses"]}
    metrics = {200, 400, 401, 404, 503}
    own = {
        ("get", "metrics/overview/"): metrics,
        ("get", "metrics/ltv/"): metrics,
        ("get", "metrics/attribution/"): metrics,
        ("get", "metrics/attribution/compare/"): metrics,
        ("get", "metrics/engagement/"): metrics,
        ("get", "dashboard-templates/"): {200, 401, 404},
        ("post", "dashboard-templates/"): {201, 400, 401, 403, 404, 409, 415},
        ("get", "dashboard-templates/starters/"): {200, 401, 404},
        ("get", "dashboard-templates/{template_id}/"): {200, 401, 404},
        ("patch", "dashboard-templates/{template_id}/"): {200, 400, 401, 403, 404, 409, 415},
        ("put", "dashboard-templates/{template_id}/"): {200, 400, 401, 403, 404, 409, 415},
        ("delete", "dashboard-templates/{template_id}/"): {204, 401, 403, 404},
        ("post", "dashboard-templates/{template_id}/apply/"): {200, 400, 401, 403, 404, 503},
    }
    # and, since agency tokens reach these operations: 403 (a scope the token lacks, or a write no token may
    # make) and 429 (the token's or its agency's throttle)
    assert documented == {operation: statuses | {403, 429} for operation, statuses in own.items()}


def test_the_documented_statuses_are_the_ones_answered(client, clerk, bearer, alpine, owner, outsider):
    base = f"/api/merchants/{alpine.pk}"
    assert client.get(f"{base}/metrics/overview/").status_code == 401
    assert client.get(f"{base}/metrics/overview/", **clerk.auth_header(outsider.clerk_user_id)).status_code == 404
    assert client.get(f"{base}/metrics/overview/", {"start": "x"}, **bearer).status_code == 400
    assert client.post(templates_url(alpine), "x", content_type="text/plain", **bearer).status_code == 415
    body = json.dumps({"name": "A", "layout": []})
    assert post_json(client, templates_url(alpine), body, bearer).status_code == 201
    assert post_json(client, templates_url(alpine), body, bearer).status_code == 409
    template = DashboardTemplate.objects.get()
    browser = Client(enforce_csrf_checks=True)
    browser.cookies["__session"] = clerk.token(owner.clerk_user_id)  # the cookie, and no CSRF token
    assert browser.delete(templates_url(alpine, f"{template.pk}/")).status_code == 403
    assert DashboardTemplate.objects.filter(pk=template.pk).exists()
