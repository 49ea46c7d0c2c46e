"""An agency admin signs in, reads the portfolio of two granted stores (USD and EUR) with blended totals in USD,
sorts it, saves a group and filters by it, and drills into one store's dashboard through the agency's grant.

The marts come from tests/dashboards/conftest.py (demo data + dbt build, once per session). The agency, its
member and the grants are made directly here; the invite → accept → request → approve flow is the other
agency pieces' (and their browser test's)."""

import pytest
from playwright.sync_api import expect

from agencies.portfolio import StoreAccess, portfolio_get
from dashboards.formatting import money
from dashboards.periods import date_range_parse
from tests.agencies.portfolio_fixtures import agency_make, grant_make, member_make
from tests.dashboards.conftest import mart_merchant, marts  # noqa: F401 — the session fixture, reused

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])


@pytest.fixture
def csp_violations(page):
    seen: list[str] = []
    page.on(
        "console", lambda msg: seen.append(f"{page.url}: {msg.text}") if "Content Security Policy" in msg.text else None
    )
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def test_agency_reads_the_portfolio_sorts_groups_and_drills_in(page, app_url, clerk, marts, screenshot,  # noqa: F811
                                                               csp_violations):  # fmt: skip
    alpine, beach = mart_merchant(0), mart_merchant(1)
    agency = agency_make("North Star Agency", currency="USD")
    member_make(agency, clerk.user("user_ada", first_name="Ada", last_name="Admin"))
    grant_make(agency, alpine)
    grant_make(agency, beach)
    expected = portfolio_get(
        agency=agency, stores=[StoreAccess(alpine, True), StoreAccess(beach, True)],
        date_range=date_range_parse({}, timezone="UTC"),
    )  # fmt: skip

    page.goto(f"{app_url}/agencies/{agency.pk}/")
    page.get_by_role("button", name="Sign in as Ada Admin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("North Star Agency")
    tiles = page.get_by_test_id("store-tile")
    expect(tiles).to_have_count(2)
    expect(tiles.nth(0).get_by_test_id("store-link")).to_have_text("Alpine Gear")
    expect(tiles.nth(1).get_by_test_id("store-link")).to_have_text("Beach Things")
    # Blended in USD from the day-by-day converted sums; each tile in its store's currency.
    blended = expected["blended"]["current"]
    expect(page.get_by_test_id("blended-net_revenue")).to_have_text(money(blended["net_revenue"], "USD"))
    expect(page.get_by_test_id("blended-orders")).to_contain_text(f"{blended['orders']:,}")
    beach_tile = expected["tiles"][1]
    expect(tiles.nth(1).get_by_test_id("store-net_revenue")).to_contain_text(
        money(beach_tile["current"]["net_revenue"], "EUR")
    )
    screenshot("agency-portfolio")

    # Sort by orders, fewest first.
    page.get_by_test_id("sort-select").select_option("orders")
    page.get_by_test_id("dir-select").select_option("asc")
    page.get_by_role("button", name="Apply").click()
    by_orders = sorted(expected["tiles"], key=lambda t: t["current"]["orders"])
    expect(page.get_by_test_id("store-tile").nth(0).get_by_test_id("store-link")).to_have_text(by_orders[0]["name"])

    # Save a group with Beach only: the page then shows Beach, and the totals are Beach's (in USD).
    form = page.get_by_test_id("group-create")
    form.get_by_label("New group").fill("Europe")
    form.get_by_label("Beach Things").check()
    form.get_by_role("button", name="Save group").click()
    expect(page.get_by_test_id("store-tile")).to_have_count(1)
    expect(page.get_by_test_id("store-link")).to_have_text("Beach Things")
    expect(page.get_by_test_id("group-select")).to_have_value(str(agency.groups.get().pk))

    # Drill into the store: its own overview, through the agency's grant.
    page.get_by_test_id("store-link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    assert f"/m/{beach.pk}/overview/" in page.url
    expect(page.get_by_test_id("kpi-net_revenue")).to_have_text(money(beach_tile["current"]["net_revenue"], "EUR"))
    assert csp_violations == []
