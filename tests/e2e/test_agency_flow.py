"""The whole agency story in a browser, each step the way a person takes it: an agency founder creates the agency
(a Clerk organization), invites a colleague who accepts in Clerk, asks two stores for access; each store's owner
approves; the portfolio then shows both stores with blended totals, and a click opens one store's dashboard."""

from __future__ import annotations

import base64

import pytest
from playwright.sync_api import expect

from accounts.choices import Role
from accounts.models import Membership
from agencies.choices import GrantLevel, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyInvitation
from agencies.portfolio import StoreAccess, portfolio_get
from config.celery import app
from dashboards.formatting import money
from dashboards.periods import date_range_parse
from tests.dashboards.conftest import mart_merchant, marts  # noqa: F401 — the session fixture, reused

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])

SECRET = "whsec_" + base64.b64encode(b"e2e-agency-flow-webhook-secret").decode()


@pytest.fixture
def eager():
    """The invitation task runs right after the request that queued it commits, as a worker would."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def csp_violations(page):
    seen: list[str] = []
    page.on("console", lambda msg: seen.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def _sign_in_as(page, app_url: str, path: str, name: str) -> None:
    page.context.clear_cookies()  # signed out
    page.goto(app_url + path)
    page.get_by_role("button", name=f"Sign in as {name}").click()


def test_agency_created_invites_asks_owners_approve_and_the_portfolio_shows_both(
    page,
    app_url,
    clerk,
    sandbox,
    settings,
    eager,
    marts,  # noqa: F811 — the imported session fixture
    screenshot,
    csp_violations,
):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    alpine, beach = mart_merchant(0), mart_merchant(1)
    clerk.user("user_olive", first_name="Olive", last_name="Owner", email="olive@shops.example")
    for store in (alpine, beach):
        Membership.objects.create(merchant=store, clerk_user_id="user_olive", role=Role.OWNER)
    clerk.user("user_nora", first_name="Nora", last_name="Northwind", email="nora@northwind.example")

    # 1. Nora creates the agency.
    _sign_in_as(page, app_url, "/agencies/new/", "Nora Northwind")
    page.get_by_label("Name").fill("Northwind Growth")
    page.get_by_label("Reporting currency").fill("USD")
    page.get_by_role("button", name="Create agency").click()
    agency = Agency.objects.get()
    expect(page).to_have_url(f"{app_url}/agencies/{agency.pk}/members/")

    # 2. She invites Ann, who accepts in Clerk; Clerk's webhook tells the app.
    page.get_by_label("Email").fill("ann@northwind.example")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("tr[data-invitation='ann@northwind.example']")).to_contain_text("Pending")
    invitation = AgencyInvitation.objects.get(email="ann@northwind.example")
    sandbox.clerk_invitation_accept(agency.clerk_org_id, invitation.clerk_invitation_id, "user_ann")
    assert {d["status"] for d in sandbox.clerk_events_deliver(f"{app_url}/webhooks/clerk/", secret=SECRET)} == {200}
    page.reload()
    expect(page.locator("tr[data-invitation='ann@northwind.example']")).to_contain_text("Accepted")
    expect(page.locator("tr[data-member='user_ann']")).to_contain_text("Member")

    # 3. She asks both stores for access.
    page.goto(f"{app_url}/agencies/{agency.pk}/grants/")
    for store in (alpine, beach):
        page.get_by_label("Shop domain").fill(store.shop_domain)
        page.get_by_role("button", name="Request access").click()
    expect(page.get_by_test_id("agency-grants")).to_contain_text("Pending")
    assert set(AccessGrant.objects.values_list("status", flat=True)) == {GrantStatus.PENDING}
    # Before approval the agency sees neither store.
    assert page.goto(f"{app_url}/m/{alpine.pk}/overview/").status == 404

    # 4. The stores' owner approves each request: analyst, costs visible.
    _sign_in_as(page, app_url, f"/m/{alpine.pk}/agencies/", "Olive Owner")
    for store in (alpine, beach):
        page.goto(f"{app_url}/m/{store.pk}/agencies/")
        approve = page.get_by_role("form", name="Approve Northwind Growth")
        approve.get_by_label("Level").select_option(GrantLevel.ANALYST)
        approve.get_by_label("Costs").check()
        approve.get_by_role("button", name="Approve").click()
        expect(page.get_by_test_id("grants")).to_contain_text("Active")
    screenshot("agency-flow-approved")
    assert set(AccessGrant.objects.values_list("status", "level", "can_see_costs")) == {
        (GrantStatus.ACTIVE, GrantLevel.ANALYST, True)
    }

    # 5. Nora's portfolio: both stores, blended totals in USD; a click opens one store's own overview.
    expected = portfolio_get(
        agency=agency,
        stores=[StoreAccess(alpine, True), StoreAccess(beach, True)],
        date_range=date_range_parse({}, timezone="UTC"),
    )
    _sign_in_as(page, app_url, f"/agencies/{agency.pk}/", "Nora Northwind")
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Growth")
    tiles = page.get_by_test_id("store-tile")
    expect(tiles).to_have_count(2)
    blended = expected["blended"]["current"]
    expect(page.get_by_test_id("blended-net_revenue")).to_have_text(money(blended["net_revenue"], "USD"))
    expect(page.get_by_test_id("blended-orders")).to_contain_text(f"{blended['orders']:,}")
    screenshot("agency-flow-portfolio")
    tiles.filter(has_text=alpine.name).get_by_test_id("store-link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    assert f"/m/{alpine.pk}/overview/" in page.url
    alpine_tile = next(t for t in expected["tiles"] if t["name"] == alpine.name)
    expect(page.get_by_test_id("kpi-net_revenue")).to_have_text(
        money(alpine_tile["current"]["net_revenue"], alpine.currency)
    )
    assert csp_violations == []
