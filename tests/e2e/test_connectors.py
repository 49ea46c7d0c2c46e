"""A store's owner connects every source on the Connectors page in Chromium, under the production CSP.

The consent pages are the sandbox's, on another origin than the app: the connect buttons work only because
that page's `form-action` names the configured consent origins (docs/csp.md). Every test fails on any CSP
report or script error in the console.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.choices import Role
from connectors.choices import CredentialStatus, Provider
from connectors.models import ConnectorCredential
from tests.accounts.factories import MembershipFactory
from tests.connectors import conftest as connectors_conftest

providers = connectors_conftest.providers  # the provider sandbox fixture, reused

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])


@pytest.fixture
def csp_violations(page):
    seen: list[str] = []
    page.on(
        "console", lambda msg: seen.append(f"{page.url}: {msg.text}") if "Content Security Policy" in msg.text else None
    )
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    yield seen
    assert seen == []


@pytest.fixture
def owner(clerk):
    clerk.user("user_olivia", first_name="Olivia", last_name="Owner", email="olivia@alpine.example")
    return MembershipFactory(clerk_user_id="user_olivia", merchant__name="Alpine Gear", role=Role.OWNER)


def sign_in_to_connectors(page, app_url, owner):
    page.goto(f"{app_url}/m/{owner.merchant_id}/connectors/")
    page.get_by_role("button", name="Sign in as Olivia Owner").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connections")


def row(page, provider: str):
    return page.locator(f"[data-source='{provider}']")


def test_meta_connect_goes_through_the_consent_page_and_back(
    page,
    app_url,
    owner,
    providers,
    csp_violations,
    screenshot,
):
    sign_in_to_connectors(page, app_url, owner)
    consent_requests: list[str] = []
    page.on("request", lambda r: consent_requests.append(r.url) if "/meta/www/" in r.url else None)

    page.get_by_role("button", name="Connect Meta Ads").click()

    # Meta appends "#_=_" to its redirect; the browser keeps it through ours.
    expect(page).to_have_url(re.compile(rf"^{re.escape(app_url)}/m/{owner.merchant_id}/connectors/(#_=_)?$"))
    expect(page.get_by_role("status")).to_contain_text("Meta Ads connected")
    expect(row(page, "meta")).to_have_attribute("data-state", "connected")
    assert [u.split("?")[0] for u in consent_requests] == [f"{providers.url}/meta/www/v25.0/dialog/oauth"]
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    assert (credential.provider, credential.status) == (Provider.META, CredentialStatus.ACTIVE)
    screenshot("connectors-meta-connected")
