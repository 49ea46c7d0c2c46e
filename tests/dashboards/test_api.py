"""The metrics API: validated ranges, and the same numbers as the pages."""

from decimal import Decimal

import pytest

from dashboards import periods
from dashboards.api.views import jsonable

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


@pytest.fixture
def api(client, clerk, owner):
    headers = clerk.auth_header(owner.clerk_user_id)
    base = f"/api/merchants/{owner.merchant.pk}/metrics"

    def get(path: str, **params):
        return client.get(f"{base}/{path}/", params, **headers)

    return get


@pytest.fixture
def page(client, clerk, owner):
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)

    def get(name: str, **params):
        response = client.get(f"/m/{owner.merchant.pk}/{name}/", params)
        assert response.status_code == 200, response.content[:500]
        return response

    return get


def test_overview_body(api, alpine):
    body = api("overview", preset="last_7_days").json()
    assert body["currency"] == "USD"
    assert body["timezone"] == "America/New_York"
    assert body["range"]["preset"] == "last_7_days"
    assert body["kpis"]["has_data"] is True
    assert set(body["kpis"]["current"]) == {
        "net_revenue", "orders", "aov", "new_customers", "returning_customer_rate", "ad_spend", "mer", "blended_cac",
        "new_customer_cac",
    }  # fmt: skip
    assert len(body["daily"]) == 7
    assert Decimal(body["kpis"]["current"]["net_revenue"]) == sum(Decimal(d["net_revenue"]) for d in body["daily"])


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"start": "2026-02-30", "end": "2026-03-01"}, {"start": [periods.DATE_INVALID]}),
        ({"start": "2026-03-10", "end": "2026-03-01"}, {"end": [periods.RANGE_REVERSED]}),
        ({"start": "2023-01-01", "end": "2026-01-01"}, {"end": [periods.RANGE_TOO_LONG]}),
        ({"start": "2026-03-10"}, {"end": [periods.RANGE_INCOMPLETE]}),
    ],
)
@pytest.mark.parametrize("endpoint", ["overview", "ltv", "attribution", "attribution/compare", "engagement"])
def test_bad_ranges_answer_400_with_field_errors(api, endpoint, params, errors):
    response = api(endpoint, **params)
    assert response.status_code == 400
    assert response.json() == errors


def test_unknown_attribution_model_is_a_field_error(api):
    response = api("attribution", model="u_shaped")
    assert response.status_code == 400
    assert list(response.json()) == ["model"]


def test_overview_page_and_api_agree(api, page):
    params = {"start": "2026-09-01", "end": "2026-10-15", "compare": "previous_year"}
    context = page("overview", **params).context
    assert api("overview", **params).json()["kpis"] == jsonable(context["kpis"])
    default = page("overview").context
    assert api("overview").json()["kpis"] == jsonable(default["kpis"])


def test_ltv_page_and_api_agree(api, page):
    context = page("ltv").context
    cohorts = api("ltv").json()["cohorts"]
    assert cohorts and len(cohorts) == len(context["cohorts"])
    for from_api, from_page in zip(cohorts, context["cohorts"], strict=True):
        page_cohort = {k: v for k, v in from_page.items() if k != "cells"}
        assert from_api == jsonable(page_cohort)


def test_attribution_page_and_api_agree(api, page):
    for model in ("first_touch", "time_decay"):
        context = page("attribution", model=model, preset="last_90_days").context
        body = api("attribution", model=model, preset="last_90_days").json()
        assert body["channels"] == jsonable(context["channels"])
        assert body["campaigns"] == jsonable(context["campaigns"])
        assert body["lookback_days"] == 30
    compare = api("attribution/compare", preset="last_90_days").json()
    assert compare["channels"] == jsonable(context["comparison"])


def test_engagement_page_and_api_agree(api, page):
    context = page("engagement", preset="last_90_days").context
    body = api("engagement", preset="last_90_days").json()
    assert body["summary"] == jsonable(context["summary"])
    assert body["messages"] == jsonable(context["top_messages"])
    assert body["daily"] == jsonable(context["daily"])
    assert body["summary"]


def test_the_api_needs_a_clerk_session(client, alpine):
    assert client.get(f"/api/merchants/{alpine.pk}/metrics/overview/").status_code in (401, 403)


def test_metrics_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "/api/merchants/{merchant_id}/metrics/overview/" in paths
    assert "/api/merchants/{merchant_id}/dashboard-templates/{template_id}/apply/" in paths
    params = {p["name"] for p in paths["/api/merchants/{merchant_id}/metrics/attribution/"]["get"]["parameters"]}
    assert {"start", "end", "preset", "compare", "model"} <= params
