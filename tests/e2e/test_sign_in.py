"""A person signs in through the dev sign-in page and lands on their store's page."""

import pytest
from playwright.sync_api import expect

from accounts.choices import Role
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])


def test_demo_user_signs_in_and_lands_on_the_merchant_page(page, app_url, clerk, screenshot):
    clerk.user("user_olivia", first_name="Olivia", last_name="Owner")
    first = MembershipFactory(clerk_user_id="user_olivia", merchant__name="Alpine Gear", role=Role.OWNER)
    second = MembershipFactory(clerk_user_id="user_olivia", merchant__name="Beach Things", role=Role.VIEWER)

    page.goto(app_url + "/")
    expect(page).to_have_url(app_url + "/sign-in/?next=%2F")
    screenshot("sign-in")
    page.get_by_role("button", name="Sign in as Olivia Owner").click()

    # She lands on her first store's overview; its Store tab names the store.
    expect(page).to_have_url(f"{app_url}/m/{first.merchant.pk}/overview/")
    page.get_by_role("navigation", name="Dashboards").get_by_role("link", name="Store", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Alpine Gear")
    screenshot("merchant-home")

    # The switcher takes her to her other store; the page says her role there.
    page.get_by_role("navigation", name="Switch store").get_by_role("link", name="Beach Things").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Beach Things")
    expect(page.locator("dd", has_text="Viewer")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(app_url + "/sign-in/")
    page.goto(f"{app_url}/m/{second.merchant.pk}/")
    expect(page).to_have_url(f"{app_url}/sign-in/?next=%2Fm%2F{second.merchant.pk}%2F")
