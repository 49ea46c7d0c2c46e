"""Dashboard pages: rendering, range errors, empty states, CSV export, CSP, and templates from the UI."""

import csv
import io

import pytest
from django.urls import reverse

from accounts.choices import Role
from compliance.models import AuditEvent
from dashboards import periods
from dashboards.models import DashboardTemplate
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


@pytest.fixture
def signed_in(client, clerk, owner):
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    return client


def url(merchant, name, *args):
    return reverse(f"dashboards:{name}", args=[merchant.pk, *args])


def test_overview_shows_kpis_chart_data_and_table(signed_in, alpine):
    response = signed_in.get(url(alpine, "overview"))
    html = response.content.decode()
    assert response.status_code == 200
    for key in ("net_revenue", "orders", "aov", "new_customers", "returning_customer_rate", "ad_spend", "mer",
                "blended_cac", "new_customer_cac"):  # fmt: skip
        assert f'data-testid="kpi-{key}"' in html
    assert 'id="revenue-spend-chart-data" type="application/json"' in html
    assert response.context["tiles"][0]["value"] == response.context["kpis"]["current"]["net_revenue"]
    assert "$" in html and "<caption" in html
    assert len(response.context["daily_rows"]) == 30


def test_bad_range_on_a_page_shows_the_errors_with_the_default_range(signed_in, alpine):
    response = signed_in.get(url(alpine, "overview"), {"start": "2026-03-10", "end": "2026-03-01"})
    assert response.status_code == 400
    assert periods.RANGE_REVERSED in response.content.decode()
    assert response.context["date_range"].preset == "last_30_days"


def test_currency_follows_the_merchant(client, clerk, beach):
    MembershipFactory(clerk_user_id=clerk.user("user_eu"), merchant=beach, role=Role.VIEWER)
    client.cookies["__session"] = clerk.token("user_eu")
    html = client.get(url(beach, "overview")).content.decode()
    assert "€" in html and "Europe/Berlin" in html


def test_a_merchant_without_data_gets_an_empty_state(client, clerk):
    membership = MembershipFactory(clerk_user_id=clerk.user("user_new"))
    client.cookies["__session"] = clerk.token("user_new")
    for name in ("overview", "ltv", "attribution", "engagement"):
        response = client.get(url(membership.merchant, name))
        assert response.status_code == 200
        assert 'data-testid="empty-state"' in response.content.decode()


def test_the_header_says_data_as_of_per_source_from_the_syncs_built(signed_in, alpine):
    import datetime as dt

    from django.utils import timezone

    from analytics.models import DbtRun, RawDataChange

    html = signed_in.get(url(alpine, "overview")).content.decode()
    assert "No data yet: it appears shortly after the store's first sync" in html

    synced = dt.datetime(2026, 11, 2, 15, 30, tzinfo=dt.UTC)  # 10:30 in New York
    build = DbtRun.objects.create(
        command="build", triggered_by="data_changed", status="success", started_at=timezone.now(),
        finished_at=timezone.now(),
    )  # fmt: skip
    RawDataChange.objects.create(merchant=alpine, source="shopify", at=synced, consumed_by_run=build)
    earlier = synced - dt.timedelta(hours=2)
    RawDataChange.objects.create(merchant=alpine, source="meta", at=earlier, consumed_by_run=build)
    html = signed_in.get(url(alpine, "overview")).content.decode()  # a new dbt run: a new page
    assert "Data as of Nov 2, 08:30 (America/New_York)" in html  # Meta, the stalest
    assert 'data-source="meta">Meta Ads Nov 2, 08:30 · over 48 h old</li>' in html
    assert 'data-source="shopify">Shopify Nov 2, 10:30 · over 48 h old</li>' in html


def test_ltv_metric_switcher_and_heatmap(signed_in, alpine):
    revenue = signed_in.get(url(alpine, "ltv"))
    retention = signed_in.get(url(alpine, "ltv"), {"metric": "retention"})
    assert 'data-metric="revenue"' in revenue.content.decode()
    assert 'data-metric="retention"' in retention.content.decode()
    assert "100.0%" in retention.content.decode()  # month 0 retention
    assert "heat-9" in retention.content.decode()


def test_attribution_shows_models_lookback_and_drill_down(signed_in, alpine):
    response = signed_in.get(url(alpine, "attribution"), {"model": "time_decay", "channel": "paid_search"})
    html = response.content.decode()
    assert "Lookback window: 30 days" in html
    for label in ("First touch", "Last touch", "Linear", "Position-based (40/20/40)", "Time decay"):
        assert label in html
    assert {c["channel"] for c in response.context["campaigns"]} == {"paid_search"}


def test_csv_export_streams_the_table(signed_in, alpine):
    response = signed_in.get(url(alpine, "export_csv", "attribution-channels"), {"model": "first_touch"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["model", "channel", "attributed_orders", "attributed_revenue", "spend", "roas", "currency"]
    assert len(rows) > 3 and {r[0] for r in rows[1:]} == {"first_touch"}


@pytest.mark.parametrize("table", ["overview-daily", "ltv-cohorts", "attribution-comparison", "attribution-campaigns",
                                   "engagement-summary", "engagement-messages", "engagement-daily"])  # fmt: skip
def test_every_table_exports(signed_in, alpine, table):
    response = signed_in.get(url(alpine, "export_csv", table))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) > 1 and rows[0][-1] == "currency"


def test_csv_export_refuses_bad_ranges_and_unknown_tables(signed_in, alpine):
    response = signed_in.get(url(alpine, "export_csv", "overview-daily"), {"start": "2020-01-01", "end": "2026-01-01"})
    assert response.status_code == 400
    assert periods.RANGE_TOO_LONG in response.content.decode()
    assert signed_in.get(url(alpine, "export_csv", "secrets")).status_code == 404


def test_pages_send_a_strict_csp_and_admin_a_relaxed_one(signed_in, alpine, client):
    policy = signed_in.get(url(alpine, "overview"))["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "unsafe-inline" in client.get("/admin/login/")["Content-Security-Policy"]
    assert "unsafe-inline" in client.get("/api/docs/")["Content-Security-Policy"]


def test_save_as_template_then_apply_and_delete(signed_in, alpine, owner):
    response = signed_in.post(url(alpine, "template_save"), {"source": "page:overview", "name": "My overview"})
    template = DashboardTemplate.objects.get()
    assert response.url == url(alpine, "template_detail", template.pk)
    assert len(template.layout) == 11 and template.created_by == owner.clerk_user_id
    duplicate = signed_in.post(url(alpine, "template_save"), {"source": "starter:retention", "name": "my OVERVIEW"})
    assert duplicate.status_code == 302 and DashboardTemplate.objects.count() == 1

    applied = signed_in.post(url(alpine, "template_apply"), {"template": template.pk})
    assert applied.url == url(alpine, "template_detail", template.pk)
    page = signed_in.get(applied.url)
    assert page.status_code == 200
    assert len(page.context["widgets"]) == 11
    assert 'data-testid="kpi-mer"' in page.content.decode()

    signed_in.post(url(alpine, "template_delete", template.pk))
    assert not DashboardTemplate.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="dashboard_template.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["dashboard_template.created", "dashboard_template.applied", "dashboard_template.deleted"]


@pytest.mark.parametrize("key", ["acquisition", "retention", "email-sms"])
def test_starter_templates_render_with_live_data(signed_in, alpine, key):
    response = signed_in.get(url(alpine, "starter_detail", key))
    assert response.status_code == 200
    assert all(w["data"] for w in response.context["widgets"])


def test_merchant_home_links_to_the_dashboards(signed_in, alpine):
    html = signed_in.get(reverse("accounts:merchant_home", args=[alpine.pk])).content.decode()
    assert url(alpine, "overview") in html


def test_engagement_page_shows_its_tables_and_no_stray_flash_messages(signed_in, alpine):
    response = signed_in.get(url(alpine, "engagement"), {"preset": "last_90_days"})
    html = response.content.decode()
    assert 'class="messages"' not in html  # the template's own list must not shadow Django's messages
    assert "Welcome Series" in html and "CTOR" in html


def test_a_failed_save_goes_back_only_to_our_own_pages(signed_in, alpine):
    data = {"source": "page:ltv", "name": "", "back": "https://evil.example/phish"}
    response = signed_in.post(url(alpine, "template_save"), data)
    assert response.url == url(alpine, "template_list")
    response = signed_in.post(url(alpine, "template_save"), {**data, "back": url(alpine, "ltv")})
    assert response.url == url(alpine, "ltv")
    assert not DashboardTemplate.objects.exists()


@pytest.mark.parametrize("key", ["acquisition", "retention", "email-sms"])
def test_every_widget_table_exports_the_same_rows(signed_in, alpine, key):
    page = signed_in.get(url(alpine, "starter_detail", key))
    base = reverse("dashboards:export_csv", args=[alpine.pk, "x"]).removesuffix("x.csv")
    for widget in page.context["widgets"]:
        if widget["type"] == "kpi":
            assert widget["csv"] == ""
            continue
        assert f'href="{base}{widget["csv"]}"'.replace("&", "&amp;") in page.content.decode()
        response = signed_in.get(base + widget["csv"])
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        if widget["type"] == "timeseries" or widget["type"] in ("attribution_table", "engagement_table"):
            assert len(rows) - 1 == len(widget["data"])
        else:  # cohort heat map: one CSV row per cohort month
            assert len(rows) - 1 == sum(len(c["months"]) for c in widget["data"])


def test_edit_a_template_from_its_page_with_optimistic_concurrency(signed_in, alpine):
    signed_in.post(url(alpine, "template_save"), {"source": "starter:retention", "name": "Retention copy"})
    template = DashboardTemplate.objects.get()
    edit = url(alpine, "template_edit", template.pk)
    layout = '[{"type": "kpi", "metric": "orders"}, {"type": "cohort_heatmap", "metric": "retention"}]'
    response = signed_in.post(edit, {"version": 1, "name": "Retention", "layout": layout}, follow=True)
    assert "Saved “Retention” (version 2)." in response.content.decode()
    stale = signed_in.post(edit, {"version": 1, "name": "Lost update", "layout": layout}, follow=True)
    assert "changed by someone else" in stale.content.decode()
    bad = signed_in.post(edit, {"version": 2, "layout": '[{"type": "gauge", "metric": "orders"}]'}, follow=True)
    assert "Widget 1: unknown type" in bad.content.decode()
    template.refresh_from_db()
    assert (template.name, template.version, len(template.layout)) == ("Retention", 2, 2)


@pytest.mark.parametrize(
    ("page", "tab"),
    [("overview", "Overview"), ("ltv", "LTV cohorts"), ("attribution", "Attribution"),
     ("engagement", "Email &amp; SMS"), ("template_list", "Dashboards"), ("starter", "Dashboards")],
)  # fmt: skip
def test_the_tab_of_the_page_is_marked_current(signed_in, alpine, page, tab):
    import re

    path = url(alpine, "starter_detail", "acquisition") if page == "starter" else url(alpine, page)
    html = signed_in.get(path).content.decode()
    assert re.findall(r'aria-current="page">([^<]+)</a>', html) == [tab]
