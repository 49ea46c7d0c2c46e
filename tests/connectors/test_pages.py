"""The merchant's connections page, the API-key form and disconnect."""

from __future__ import annotations

import pytest

from accounts.choices import Role
from connectors.choices import CredentialStatus
from connectors.models import ConnectorCredential
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import CredentialFactory, google_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)


def test_list_shows_status_and_masked_secret_only(client, clerk, owner, providers):
    CredentialFactory(
        merchant=owner.merchant, access_token="ya29.abcdefghijklmnopqrstuvwxyz", secret_last4="wxyz",
        status=CredentialStatus.NEEDS_REAUTH,
    )  # fmt: skip
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-status="needs_reauth"' in html and "••••wxyz" in html and "Connect Google Ads" in html
    assert "ya29" not in html


@pytest.mark.parametrize(
    "path",
    [
        "/m/{m}/connectors/",
        "/m/{m}/connectors/api-key/",
        "/m/{m}/connectors/meta/connect/",
        "/m/{m}/connectors/{c}/disconnect/",
    ],
)
def test_another_merchants_pages_are_404(client, clerk, owner, providers, path):
    stranger = MembershipFactory(clerk_user_id=clerk.user("user_stranger"))
    credential = CredentialFactory(merchant=owner.merchant)
    method = client.get if path.endswith("connectors/") else client.post
    response = method(path.format(m=owner.merchant_id, c=credential.pk), **clerk.auth_header(stranger.clerk_user_id))
    assert response.status_code == 404
    assert ConnectorCredential.objects.get().status == CredentialStatus.ACTIVE


def test_disconnect_of_another_merchants_credential_is_404(client, clerk, owner, providers):
    foreign = CredentialFactory()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/{foreign.pk}/disconnect/", **clerk.auth_header("user_owner")
    )
    assert response.status_code == 404


def test_api_key_form_connects(client, clerk, owner, providers):
    key = providers.klaviyo_key()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": key},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 302
    assert ConnectorCredential.objects.get().provider == "klaviyo"


def test_api_key_form_shows_field_errors(client, clerk, owner, providers):
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": "pk_nope"},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 400
    assert "34 letters and digits" in response.content.decode()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": "pk_" + "b" * 34},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 422 and "invalid key" in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_disconnect_forgets_secrets_and_revokes_at_google_after_commit(
    client, clerk, owner, providers, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        credential = google_credential(providers, merchant=owner.merchant)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(
                f"/m/{owner.merchant_id}/connectors/{credential.pk}/disconnect/", **clerk.auth_header("user_owner")
            )
    finally:
        app.conf.task_always_eager = False
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.REVOKED
    assert (credential.access_token_enc, credential.refresh_token_enc) == ("", "")
    assert len(callbacks) == 1
    assert [c["status"] for c in providers.control.calls("google.oauth.revoke")] == [200]


def _form_action(response) -> str:
    directives = [d.strip() for d in response["Content-Security-Policy"].split(";")]
    return next(d for d in directives if d.startswith("form-action"))


def test_connect_page_lets_forms_reach_exactly_the_consent_origins(client, clerk, owner, settings):
    settings.META_DIALOG_URL = "https://www.facebook.com"
    settings.GOOGLE_OAUTH_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    assert _form_action(response) == "form-action 'self' https://www.facebook.com https://accounts.google.com"
    # The rest of the policy is the production one, untouched.
    others = response["Content-Security-Policy"].replace(_form_action(response), "form-action 'self'")
    assert others == settings.CSP_POLICY


def test_consent_origins_follow_the_settings_and_are_listed_once(client, clerk, owner, providers):
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    assert _form_action(response) == f"form-action 'self' {providers.url}"


def test_a_failed_api_key_form_keeps_the_connect_buttons_working(client, clerk, owner, providers):
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": "pk_nope"},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 400 and _form_action(response) == f"form-action 'self' {providers.url}"


def test_pages_without_connect_buttons_keep_form_action_self(client, clerk, owner, providers):
    viewer = MembershipFactory(clerk_user_id=clerk.user("user_viewer"), merchant=owner.merchant, role=Role.VIEWER)
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header(viewer.clerk_user_id))
    assert response.status_code == 200 and "Connect Meta Ads" not in response.content.decode()
    assert _form_action(response) == "form-action 'self'"
    response = client.get(f"/m/{owner.merchant_id}/", **clerk.auth_header("user_owner"))
    assert _form_action(response) == "form-action 'self'"


def test_operator_policy_without_form_action_or_with_none_is_not_widened():
    from dashboards.middleware import with_form_action

    assert with_form_action("default-src 'self'", ["https://a.example"]) == "default-src 'self'"
    assert with_form_action("form-action 'none'", ["https://a.example"]) == "form-action 'none'"
    assert with_form_action("form-action 'self'; base-uri 'self'", []) == "form-action 'self'; base-uri 'self'"
