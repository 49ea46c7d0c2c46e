"""A person installs the app in Chromium: from "Add a Shopify store", and from Shopify's admin, through the
sandbox's Shopify consent page, with the production CSP."""

import re

import pytest
from playwright.sync_api import expect

from accounts.choices import Role
from accounts.models import Membership, Merchant
from connectors.choices import CredentialStatus, Provider
from connectors.models import ConnectorCredential
from tests.connectors.conftest import providers  # noqa: F401 — every provider setting pointed at the sandbox

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])


@pytest.fixture
def shopify_app(app_url, providers, settings):  # noqa: F811
    """Shopify (the sandbox's) sends the browser back to the live server; tasks run inline."""
    from config.celery import app

    settings.SHOPIFY_APP_URL = app_url
    app.conf.task_always_eager = True
    yield providers
    app.conf.task_always_eager = False


@pytest.fixture
def csp_violations(page):
    seen: list[str] = []
    page.on(
        "console", lambda msg: seen.append(f"{page.url}: {msg.text}") if "Content Security Policy" in msg.text else None
    )
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def test_a_brand_new_user_adds_a_store_and_lands_on_it(page, app_url, clerk, shopify_app, screenshot, csp_violations):
    clerk.user("user_nina", first_name="Nina", last_name="New")

    page.goto(app_url + "/shopify/add/")
    page.get_by_role("button", name="Sign in as Nina New").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a Shopify store")
    page.get_by_label("Store address").fill("x.myshopify.com.evil.com")
    page.get_by_role("button", name="Continue to Shopify").click()
    expect(page.get_by_role("alert")).to_contain_text("myshopify.com address")
    page.get_by_label("Store address").fill("nina-outdoors")
    screenshot("shopify-add")
    page.get_by_role("button", name="Continue to Shopify").click()

    # Shopify's consent screen (the sandbox's), then back to the app.
    expect(page.get_by_role("heading", level=1)).to_have_text("Install app on nina-outdoors.myshopify.com")
    screenshot("shopify-consent")
    page.get_by_role("button", name="Install app").click()

    expect(page).to_have_url(re.compile(re.escape(app_url) + r"/m/\d+/overview/$"))
    merchant = Merchant.objects.get(shop_domain="nina-outdoors.myshopify.com")
    expect(page).to_have_url(f"{app_url}/m/{merchant.pk}/overview/")
    expect(page.get_by_text("Nina Outdoors is connected")).to_be_visible()
    screenshot("shopify-installed")
    assert Membership.objects.get(merchant=merchant).role == Role.OWNER
    credential = ConnectorCredential.objects.get(merchant=merchant, provider=Provider.SHOPIFY)
    assert credential.status == CredentialStatus.ACTIVE
    assert csp_violations == []


def test_install_from_shopify_then_sign_in_and_claim(page, app_url, clerk, shopify_app, screenshot, csp_violations):
    clerk.user("user_sam", first_name="Sam", last_name="Shopkeeper")
    install = shopify_app.shopify_install_url("sams-shop.myshopify.com", f"{app_url}/shopify/install")

    page.goto(install)  # what Shopify opens when Sam clicks "Install" in his store's admin
    expect(page.get_by_role("heading", level=1)).to_have_text("Install app on sams-shop.myshopify.com")
    page.get_by_role("button", name="Install app").click()

    # Back at the app with no session: sign in, then claim the store this browser installed.
    page.get_by_role("button", name="Sign in as Sam Shopkeeper").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add Sams Shop to your account")
    screenshot("shopify-claim")
    assert not Merchant.objects.filter(shop_domain="sams-shop.myshopify.com").exists()
    page.get_by_role("button", name="Add Sams Shop").click()

    merchant = Merchant.objects.get(shop_domain="sams-shop.myshopify.com")
    expect(page).to_have_url(f"{app_url}/m/{merchant.pk}/overview/")
    assert Membership.objects.get(merchant=merchant, clerk_user_id="user_sam").role == Role.OWNER

    # The claim was one-time: going back to it finds nothing to claim.
    page.goto(f"{app_url}/shopify/claim/?shop=sams-shop.myshopify.com")
    expect(page.get_by_role("alert")).to_contain_text("cannot be claimed")
    assert csp_violations == []
