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
    """CSP reports and script errors seen in the console; the test fails if there is any."""
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


@pytest.fixture
def connectors_page(page, app_url, owner, providers, csp_violations):
    """Olivia signed in (through the sandbox's Clerk) and on her store's Connectors page."""
    page.goto(f"{app_url}/m/{owner.merchant_id}/connectors/")
    page.get_by_role("button", name="Sign in as Olivia Owner").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connections")
    expect(page.get_by_test_id("who")).to_have_text("Olivia Owner")  # Clerk's name, not user_olivia
    return page


def source(page, provider: str):
    return page.locator(f"li[data-source='{provider}']")


def connection(page, provider: str):
    return page.locator(f"tr[data-source='{provider}']")


def page_url(app_url, owner) -> re.Pattern:
    # Meta appends "#_=_" to its redirect; the browser keeps it through ours.
    return re.compile(rf"^{re.escape(app_url)}/m/{owner.merchant_id}/connectors/(#_=_)?$")


def consent_requests(page, path: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url.split("?")[0]) if path in r.url else None)
    return seen


def test_meta_connect_goes_through_the_consent_page_and_back(connectors_page, app_url, owner, providers, screenshot):
    page = connectors_page
    expect(source(page, "meta")).to_have_attribute("data-state", "not_connected")
    screenshot("connectors-empty")
    consent = consent_requests(page, "/meta/www/")

    page.get_by_role("button", name="Connect Meta Ads").click()

    expect(page).to_have_url(page_url(app_url, owner))
    expect(page.get_by_role("status")).to_contain_text("Meta Ads connected")
    expect(source(page, "meta")).to_have_attribute("data-state", "connected")
    expect(source(page, "meta")).to_contain_text("No data yet")
    expect(connection(page, "meta")).to_contain_text("Connected")
    assert consent == [f"{providers.url}/meta/www/v25.0/dialog/oauth"]
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    assert (credential.provider, credential.status) == (Provider.META, CredentialStatus.ACTIVE)
    screenshot("connectors-meta-connected")


def test_google_connect_goes_through_the_consent_page_and_back(connectors_page, app_url, owner, providers):
    page = connectors_page
    consent = consent_requests(page, "/google/o/oauth2/")

    page.get_by_role("button", name="Connect Google Ads").click()

    expect(page).to_have_url(page_url(app_url, owner))
    expect(page.get_by_role("status")).to_contain_text("Google Ads connected")
    expect(source(page, "google_ads")).to_have_attribute("data-state", "connected")
    assert consent == [f"{providers.url}/google/o/oauth2/v2/auth"]
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    assert (credential.provider, credential.status) == (Provider.GOOGLE_ADS, CredentialStatus.ACTIVE)
    assert credential.refresh_token_enc  # offline access granted at the consent page


@pytest.mark.parametrize(
    ("provider", "label"), [("klaviyo", "Klaviyo"), ("attentive", "Attentive")], ids=["klaviyo", "attentive"]
)
def test_api_key_connect(connectors_page, app_url, owner, providers, provider, label):
    page = connectors_page
    key = providers.klaviyo_key() if provider == "klaviyo" else providers.attentive_key()

    page.get_by_role("link", name=f"Add {label} API key").click()
    expect(page.get_by_label("Source", exact=True)).to_have_value(provider)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Connect with API key").click()

    expect(page.get_by_role("status")).to_contain_text(f"{label} connected")
    expect(source(page, provider)).to_have_attribute("data-state", "connected")
    expect(connection(page, provider)).to_contain_text("••••" + key[-4:])
    assert key not in page.content()
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    assert (credential.provider, credential.status) == (provider, CredentialStatus.ACTIVE)


def test_a_refused_key_is_explained_on_the_form(connectors_page, owner):
    page = connectors_page
    page.get_by_label("Source", exact=True).select_option("klaviyo")
    page.get_by_label("API key", exact=True).fill("pk_" + "b" * 34)
    page.get_by_role("button", name="Connect with API key").click()

    expect(page.get_by_role("alert")).to_contain_text("invalid key")
    expect(source(page, "klaviyo")).to_have_attribute("data-state", "not_connected")
    assert not ConnectorCredential.objects.exists()


def test_reconnect_after_a_credential_needs_reconnecting(connectors_page, app_url, owner, providers, screenshot):
    page = connectors_page
    page.get_by_role("button", name="Connect Google Ads").click()
    expect(source(page, "google_ads")).to_have_attribute("data-state", "connected")
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    # What the refresh machinery leaves behind when Google refuses the refresh token.
    ConnectorCredential.objects.filter(pk=credential.pk).update(
        status=CredentialStatus.NEEDS_REAUTH, last_error_code="invalid_grant", last_error_message="Bad Request"
    )

    page.reload()
    expect(source(page, "google_ads")).to_have_attribute("data-state", "needs_reauth")
    expect(source(page, "google_ads")).to_contain_text("Needs reconnecting")
    expect(connection(page, "google_ads")).to_contain_text("Google Ads no longer accepts our access")
    expect(connection(page, "google_ads")).not_to_contain_text("Bad Request")
    screenshot("connectors-needs-reconnecting")
    page.get_by_role("button", name="Reconnect Google Ads").click()

    expect(page.get_by_role("status")).to_contain_text("Google Ads connected")
    expect(source(page, "google_ads")).to_have_attribute("data-state", "connected")
    expect(page.get_by_role("button", name="Reconnect Google Ads")).to_have_count(0)
    credential.refresh_from_db()
    assert (credential.status, credential.last_error_code) == (CredentialStatus.ACTIVE, "")
    assert ConnectorCredential.objects.count() == 1  # the same account's row, renewed


def test_disconnect(connectors_page, owner, providers):
    page = connectors_page
    page.get_by_role("link", name="Add Klaviyo API key").click()
    page.get_by_label("API key", exact=True).fill(providers.klaviyo_key())
    page.get_by_role("button", name="Connect with API key").click()
    expect(source(page, "klaviyo")).to_have_attribute("data-state", "connected")

    page.get_by_role("button", name=re.compile("^Disconnect Klaviyo")).click()

    expect(page.get_by_role("status")).to_contain_text("Klaviyo disconnected")
    expect(source(page, "klaviyo")).to_have_attribute("data-state", "not_connected")
    expect(connection(page, "klaviyo")).to_have_count(0)
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    assert (credential.status, credential.api_key_enc) == (CredentialStatus.REVOKED, "")


def test_each_connection_shows_its_last_and_next_sync_and_a_failing_sync_in_plain_words(
    connectors_page, owner, providers, screenshot
):
    import datetime as dt

    from django.utils import timezone

    from ingestion.choices import JobStatus, PipelineStatus
    from ingestion.models import Pipeline, SyncJob

    page = connectors_page
    page.get_by_role("link", name="Add Klaviyo API key").click()
    page.get_by_label("API key", exact=True).fill(providers.klaviyo_key())
    page.get_by_role("button", name="Connect with API key").click()
    expect(source(page, "klaviyo")).to_have_attribute("data-state", "connected")
    expect(connection(page, "klaviyo")).to_have_attribute("data-sync", "none")  # no pipeline yet: nothing claimed
    credential = ConnectorCredential.objects.get(merchant=owner.merchant)
    # What ingestion leaves after a good sync and then three failed ones (the state here is just data).
    now = timezone.now()
    pipeline = Pipeline.objects.create(
        credential=credential, merchant=owner.merchant, source_type="klaviyo", connection_id="conn-e2e",
        status=PipelineStatus.ACTIVE, start_date=dt.date(2026, 1, 1), last_synced_at=now - dt.timedelta(days=1),
        next_sync_at=now + dt.timedelta(minutes=5), consecutive_failures=3, last_error_code="sync_failed",
        last_error_message="Airbyte: worker stack trace",
    )  # fmt: skip
    pipeline.last_job = SyncJob.objects.create(
        pipeline=pipeline, connection_id="conn-e2e", airbyte_job_id=7, status=JobStatus.FAILED,
        started_at=now - dt.timedelta(minutes=2), finished_at=now - dt.timedelta(minutes=1),
        error_type="sync_failed", error_message="Airbyte: worker stack trace",
    )  # fmt: skip
    pipeline.save(update_fields=["last_job"])

    page.reload()
    row = connection(page, "klaviyo")
    expect(row).to_have_attribute("data-sync", "failed")
    expect(row.locator(".sync")).to_contain_text("Failed")
    expect(row.locator(".sync")).to_contain_text("The last 3 syncs failed; we keep retrying")
    expect(row).not_to_contain_text("stack trace")
    expect(source(page, "klaviyo")).to_contain_text("Last synced")
    expect(source(page, "klaviyo")).to_contain_text("The last 3 syncs failed")
    screenshot("connectors-sync-failing")


def test_a_new_user_without_a_store_is_asked_to_add_one(page, app_url, clerk, csp_violations, screenshot):
    clerk.user("user_nina", first_name="Nina", last_name="New", email="nina@new.example")
    page.goto(app_url + "/")
    page.get_by_role("button", name="Sign in as Nina New").click()

    expect(page).to_have_url(app_url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Add your Shopify store")
    expect(page.get_by_test_id("who")).to_have_text("Nina New")
    screenshot("onboarding-add-store")
    page.get_by_test_id("shopify-add").click()
    expect(page).to_have_url(app_url + "/shopify/add/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a Shopify store")
