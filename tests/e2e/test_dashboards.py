"""A merchant signs in, reads every dashboard with real marts, changes the range, exports, saves and applies a template.

The marts come from tests/dashboards/conftest.py (demo data + dbt build, once per session).
"""

import csv
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.choices import Role
from analytics.choices import DbtTrigger
from analytics.models import DbtRun, RawDataChange
from tests.accounts.factories import MembershipFactory
from tests.dashboards.conftest import mart_merchant, marts  # noqa: F401 — the session fixture, reused

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])


def chart_drawn(page, chart_id: str) -> int:
    canvas = page.locator(f"canvas#{chart_id}")
    expect(canvas).to_have_attribute("data-chart-drawn", "1")
    points = int(canvas.get_attribute("data-points"))
    assert points > 0, f"{chart_id} drew no data"
    return points


@pytest.fixture
def csp_violations(page):
    """What the browser reports against the Content-Security-Policy, and any script error on the page."""
    seen: list[str] = []
    page.on(
        "console", lambda msg: seen.append(f"{page.url}: {msg.text}") if "Content Security Policy" in msg.text else None
    )
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def test_merchant_reads_every_dashboard(page, app_url, clerk, marts, screenshot, csp_violations):  # noqa: F811
    clerk.user("user_olivia", first_name="Olivia", last_name="Owner")
    alpine, beach = mart_merchant(0), mart_merchant(1)
    MembershipFactory(clerk_user_id="user_olivia", merchant=alpine, role=Role.OWNER)
    MembershipFactory(clerk_user_id="user_olivia", merchant=beach, role=Role.VIEWER)
    # Alpine's Shopify sync 3 hours ago, taken in by a build: the header names it; Beach has no sync yet.
    loaded = timezone.now() - dt.timedelta(hours=3)
    build = DbtRun.objects.create(
        command="build", triggered_by=DbtTrigger.DATA_CHANGED, status="success", started_at=loaded, finished_at=loaded
    )
    RawDataChange.objects.create(merchant=alpine, source="shopify", at=loaded, consumed_by_run=build)

    page.goto(f"{app_url}/m/{alpine.pk}/overview/")
    page.get_by_role("button", name="Sign in as Olivia Owner").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    chart_drawn(page, "revenue-spend-chart")
    shown = timezone.localtime(loaded, ZoneInfo(alpine.timezone))
    expect(page.get_by_test_id("data-as-of")).to_have_text(
        f"Data as of {shown:%b} {shown.day}, {shown:%H:%M} ({alpine.timezone})"
    )
    expect(page.get_by_test_id("source-as-of")).to_have_text(f"Shopify {shown:%b} {shown.day}, {shown:%H:%M}")
    screenshot("dashboard-overview")

    # A shorter range changes the numbers.
    revenue_30 = page.get_by_test_id("kpi-net_revenue").inner_text()
    page.locator("select[name=preset]").select_option("last_7_days")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(
        f"{app_url}/m/{alpine.pk}/overview/?preset=last_7_days&start=&end=&compare=previous_period"
    )
    expect(page.get_by_test_id("kpi-net_revenue")).not_to_have_text(revenue_30)
    assert chart_drawn(page, "revenue-spend-chart") == 14  # 7 days x (revenue, spend)

    # A custom range, then back to a preset: picking one clears the dates (which would otherwise win).
    page.locator("input[name=start]").fill("2026-09-01")
    page.locator("input[name=end]").fill("2026-09-07")
    expect(page.locator("select[name=preset]")).to_have_value("")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("range")).to_contain_text("Sep 1, 2026")
    expect(page.get_by_test_id("range")).to_contain_text("Sep 7, 2026")
    page.locator("select[name=preset]").select_option("last_7_days")
    expect(page.locator("input[name=start]")).to_have_value("")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("kpi-net_revenue")).not_to_have_text(revenue_30)

    # Export the daily table as CSV.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = open(download.value.path()).read().splitlines()  # noqa: SIM115
    # Text cells are quoted (dashboards/exports.py), the header's too.
    assert next(csv.reader(lines[:1])) == ["date", "orders", "net_revenue", "ad_spend", "new_customers", "currency"]
    assert len(lines) == 8

    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="LTV cohorts").click()
    chart_drawn(page, "cohort-chart")
    page.get_by_role("navigation", name="Cohort metric").get_by_role("link", name="Retention").click()
    expect(page.locator("table.heatmap")).to_have_attribute("data-metric", "retention")
    chart_drawn(page, "cohort-chart")  # redrawn after the htmx swap
    screenshot("dashboard-ltv")

    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Attribution").click()
    chart_drawn(page, "model-chart")
    expect(page.get_by_test_id("lookback")).to_contain_text("30 days")
    page.locator("select[name=model]").select_option("time_decay")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="By channel: Time decay")).to_be_visible()
    page.get_by_test_id("channel-table").get_by_role("link", name="Drill down").first.click()
    expect(page.get_by_role("heading", name="Campaigns in")).to_be_visible()
    screenshot("dashboard-attribution")

    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Email & SMS").click()
    chart_drawn(page, "engagement-chart")
    expect(page.get_by_test_id("engagement-summary")).to_contain_text("Klaviyo")
    screenshot("dashboard-engagement")

    # Save the overview as a template, then open it through the picker.
    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Overview").click()
    page.get_by_text("Save as template").click()
    page.get_by_label("Name").fill("Monday numbers")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Monday numbers")
    expect(page.locator("[data-widget-type]")).to_have_count(11)
    chart_drawn(page, "widget-chart-10")
    screenshot("dashboard-custom")

    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Dashboards").click()
    expect(page.get_by_test_id("saved-templates")).to_contain_text("Monday numbers")
    page.locator("select[name=template]").select_option(label="Monday numbers")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Monday numbers")
    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Dashboards").click()
    screenshot("dashboard-templates")

    # The store switcher keeps the page; Beach Things is in euros.
    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Overview").click()
    page.get_by_role("navigation", name="Switch store").get_by_role("link", name="Beach Things").click()
    expect(page.get_by_test_id("kpi-net_revenue")).to_contain_text("€")
    chart_drawn(page, "revenue-spend-chart")
    no_sync = "No data yet: it appears shortly after the store's first sync"
    expect(page.get_by_test_id("data-as-of")).to_have_text(no_sync)

    assert csp_violations == []


def test_csp_leaves_the_api_docs_and_admin_working(page, app_url, csp_violations):
    page.goto(f"{app_url}/api/docs/")
    expect(page.get_by_text("Marketing analytics API").first).to_be_visible()
    expect(page.get_by_text("/api/merchants/{merchant_id}/metrics/overview/").first).to_be_visible()
    page.goto(f"{app_url}/admin/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert csp_violations == []
