"""An agency's grant hides PII and costs alike in pages, CSV exports and API bodies (dashboards.masking)."""

from __future__ import annotations

import csv
import io

import pytest

from accounts.choices import Role
from agencies.choices import AgencyRole, GrantLevel
from dashboards.masking import HIDDEN_BY_GRANT, PII_MASK, Masking, mask, mask_csv
from dashboards.models import DashboardTemplate
from tests.accounts.factories import MembershipFactory
from tests.agencies.factories import AccessGrantFactory, AgencyFactory, AgencyMemberFactory
from tests.dashboards import conftest as dashboards_conftest

marts = dashboards_conftest.marts
alpine = dashboards_conftest.alpine

AGENT = "user_agent_mo"
RANGE = {"preset": "last_30_days"}


def test_mask_hides_costs_and_pii_without_touching_the_original():
    body = {
        "kpis": {"current": {"net_revenue": "10.00", "ad_spend": "4.00", "mer": "2.50"}},
        "tiles": [{"key": "ad_spend", "value": "4.00", "change": "0.1"}, {"key": "orders", "value": 3}],
        "customers": [{"email": "a@example.com", "customer_name": "Ann", "phone": "", "orders": 2}],
        "widgets": [{"metric": "mer", "data": {"value": "2.5", "change": None}}],
    }
    masked = mask(body, Masking(hide_pii=True, hide_costs=True))
    assert masked == {
        "kpis": {"current": {"net_revenue": "10.00", "ad_spend": None, "mer": None}},
        "tiles": [
            {"key": "ad_spend", "value": None, "change": None, "hidden": HIDDEN_BY_GRANT},
            {"key": "orders", "value": 3},
        ],
        "customers": [{"email": PII_MASK, "customer_name": PII_MASK, "phone": "", "orders": 2}],
        "widgets": [
            {
                "metric": "mer",
                "data": {"value": None, "change": None, "hidden": HIDDEN_BY_GRANT},
                "hidden": HIDDEN_BY_GRANT,
            }
        ],
    }
    assert body["kpis"]["current"]["ad_spend"] == "4.00"  # a cached body shared with members stays whole
    assert mask(body, Masking(hide_pii=True))["kpis"] == body["kpis"]
    assert mask(body, Masking()) is body


def test_mask_csv_empties_hidden_columns_and_keeps_the_header():
    rows = [["date", "spend", "first_touch_roas", "email", "orders"], ["2026-01-01", "5", "2.1", "a@x.io", 3]]
    assert list(mask_csv(rows, Masking(hide_pii=True, hide_costs=True))) == [
        ["date", "spend", "first_touch_roas", "email", "orders"],
        ["2026-01-01", "", "", PII_MASK, 3],
    ]
    assert list(mask_csv(rows, Masking())) == rows


@pytest.fixture
def agent(clerk):
    agency = AgencyFactory(name="Mask Agency")
    return AgencyMemberFactory(agency=agency, clerk_user_id=clerk.user(AGENT), role=AgencyRole.ADMIN)


def _grant(agent, alpine, *, costs: bool):
    return AccessGrantFactory(agency=agent.agency, merchant=alpine, level=GrantLevel.ANALYST, can_see_costs=costs)


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_overview_page_says_costs_are_hidden_and_a_member_still_sees_them(client, clerk, alpine, agent):
    _grant(agent, alpine, costs=False)
    MembershipFactory(merchant=alpine, clerk_user_id=clerk.user("user_owner_m"), role=Role.OWNER)
    client.cookies["__session"] = clerk.token(AGENT)
    html = client.get(f"/m/{alpine.pk}/overview/", RANGE).content.decode()
    for kpi in ("ad_spend", "mer", "blended_cac", "new_customer_cac"):
        assert f'data-testid="kpi-{kpi}" data-hidden="grant">{HIDDEN_BY_GRANT}<' in html.replace("&#x27;", "'")
    assert '"label": "Ad spend"' not in html
    client.cookies["__session"] = clerk.token("user_owner_m")
    owner_html = client.get(f"/m/{alpine.pk}/overview/", RANGE).content.decode()
    assert 'data-hidden="grant"' not in owner_html and 'data-testid="kpi-ad_spend">$' in owner_html


@pytest.mark.django_db(databases=["default", "warehouse"])
@pytest.mark.parametrize("costs", [False, True])
def test_api_cost_fields_are_null_unless_the_grant_shows_costs(client, clerk, alpine, agent, costs):
    _grant(agent, alpine, costs=costs)
    headers = clerk.auth_header(AGENT)
    api = f"/api/merchants/{alpine.pk}/"
    overview = client.get(api + "metrics/overview/", RANGE, **headers).json()
    attribution = client.get(api + "metrics/attribution/compare/", RANGE, **headers).json()
    ltv = client.get(api + "metrics/ltv/", **headers).json()
    figures = [overview["kpis"]["current"][k] for k in ("ad_spend", "mer", "blended_cac", "new_customer_cac")]
    figures += [d["ad_spend"] for d in overview["daily"]]
    figures += [c["spend"] for c in attribution["channels"]] + [
        m["roas"] for c in attribution["channels"] for m in c["models"].values()
    ]
    figures += [c["cac"] for c in ltv["cohorts"]]
    assert overview["kpis"]["current"]["net_revenue"] is not None
    if costs:
        assert any(v is not None for v in figures)
    else:
        assert figures and all(v is None for v in figures)


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_csv_export_leaves_cost_columns_empty(client, clerk, alpine, agent):
    _grant(agent, alpine, costs=False)
    client.cookies["__session"] = clerk.token(AGENT)
    response = client.get(f"/m/{alpine.pk}/export/overview-daily.csv", RANGE)
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["date", "orders", "net_revenue", "ad_spend", "new_customers", "currency"]
    assert len(rows) > 1 and {r[3] for r in rows[1:]} == {""} and all(r[2] for r in rows[1:])


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_applied_template_widgets_over_costs_are_hidden(client, clerk, alpine, agent):
    _grant(agent, alpine, costs=False)
    layout = [
        {"type": "kpi", "metric": "ad_spend", "options": {}},
        {"type": "timeseries", "metric": "ad_spend", "options": {}},
    ]
    template = DashboardTemplate.objects.create(merchant=alpine, name="Spend", layout=layout, created_by="x")
    body = client.post(
        f"/api/merchants/{alpine.pk}/dashboard-templates/{template.pk}/apply/", **clerk.auth_header(AGENT)
    ).json()
    kpi, series = body["widgets"]
    assert kpi["hidden"] == HIDDEN_BY_GRANT and kpi["data"]["value"] is None
    assert series["hidden"] == HIDDEN_BY_GRANT and {p["value"] for p in series["data"]} == {None}
    client.cookies["__session"] = clerk.token(AGENT)
    page = client.get(f"/m/{alpine.pk}/dashboards/{template.pk}/", RANGE)
    assert page.status_code == 200 and page.content.decode().count('data-hidden="grant"') == 2
