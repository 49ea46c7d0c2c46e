"""Django's error reports of exceptions raised inside the connect views, the OAuth callback and the services
and clients that hold decrypted secrets carry none of them (issue 12, item 8).

Each test makes a real request (or service call) fail deep inside those frames — the encryption keys
turned malformed after the provider accepted the secret, so `encrypt_secret` raises where the plaintext is
in hand — and renders the report Django would mail or show (the configured reporter and filter,
config/reporting.py), as text and as HTML.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter, get_exception_reporter_class

from accounts.choices import Role
from connectors import services
from connectors.crypto import EncryptionConfigError, decrypt_secret
from connectors.models import ConnectorCredential
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import google_credential, meta_credential

pytestmark = pytest.mark.django_db

MALFORMED_KEYS = ["this-is-not-a-fernet-key"]
PLANTED_SHORT = "EAAplantedShortLivedToken0123456789abcdefABCDEF"
PLANTED_LONG = "EAAplantedLongLivedToken0123456789abcdefABCDEFGH"


@pytest.fixture
def owner(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)


@pytest.fixture
def reports(settings):
    """Every unhandled exception of a request, rendered as Django's error report (text and HTML)."""
    settings.DEBUG = False  # the filter hides nothing in debug mode, by design
    rendered: list[dict] = []

    def render(sender, request, **kwargs):
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        rendered.append(
            {
                "text": reporter.get_traceback_text(),
                "html": reporter.get_traceback_html(),
                "frames": reporter.get_traceback_data()["frames"],
                "exception": sys.exc_info()[1],
            }
        )

    got_request_exception.connect(render)
    yield rendered
    got_request_exception.disconnect(render)


def assert_absent(report: dict, *secrets: str) -> None:
    for secret in secrets:
        for where in ("text", "html"):
            assert secret not in report[where], f"{secret[:8]}… appears in the {where} report"


def test_api_key_page_error_report_carries_no_key(clerk, owner, providers, reports, settings):
    key = providers.klaviyo_key()
    client = Client(raise_request_exception=False)
    settings.FIELD_ENCRYPTION_KEYS = MALFORMED_KEYS  # fails once Klaviyo has accepted the key

    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": key, "label": "Main"},
        **clerk.auth_header("user_owner"),
    )

    assert response.status_code == 500
    [report] = reports
    assert isinstance(report["exception"], EncryptionConfigError)
    assert providers.calls("klaviyo.accounts.list") == 1
    functions = {frame["function"] for frame in report["frames"]}
    assert {"api_key_connect", "credential_connect_api_key", "credential_store", "encrypt_secret"} <= functions
    assert_absent(report, key)
    assert "api_key" in report["text"]  # the POST parameter is listed, its value starred
    assert not ConnectorCredential.objects.exists()


def test_api_key_api_error_report_carries_no_key(clerk, owner, providers, reports, settings):
    key = providers.attentive_key()
    client = Client(raise_request_exception=False)
    settings.FIELD_ENCRYPTION_KEYS = MALFORMED_KEYS

    response = client.post(
        "/api/connectors/api-key/connect",
        {"merchant_id": owner.merchant_id, "provider": "attentive", "api_key": key},
        content_type="application/json",
        **clerk.auth_header("user_owner"),
    )

    assert response.status_code == 500
    [report] = reports
    assert "credential_store" in {frame["function"] for frame in report["frames"]}
    assert_absent(report, key)


def test_oauth_callback_error_report_carries_no_token(clerk, owner, providers, reports, settings):
    client = Client(raise_request_exception=False)
    auth = clerk.auth_header("user_owner")
    start = client.post(f"/m/{owner.merchant_id}/connectors/meta/connect/", **auth)
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    code = "AQplantedAuthorizationCode0123456789"
    # Meta hands out tokens we know, so the test can look for them.
    token_route = "meta.oauth.access_token"
    providers.control.fault(token_route, 200, body={"access_token": PLANTED_SHORT, "expires_in": 5400})
    providers.control.fault(token_route, 200, body={"access_token": PLANTED_LONG, "expires_in": 5183944})
    providers.control.fault("meta.debug_token.get", 200, body={"data": {"user_id": "42", "scopes": ["ads_read"]}})
    providers.control.fault("meta.adaccounts.list", 200, body={"data": [{"id": "act_1", "name": "Ads"}]})
    settings.FIELD_ENCRYPTION_KEYS = MALFORMED_KEYS

    response = client.get("/connectors/oauth/meta/callback/", {"state": state, "code": code}, **auth)

    assert response.status_code == 500
    [report] = reports
    functions = {frame["function"] for frame in report["frames"]}
    assert {"oauth_callback", "oauth_complete", "credential_store", "encrypt_secret"} <= functions
    assert_absent(report, PLANTED_SHORT, PLANTED_LONG, settings.META_APP_SECRET)
    # Nor the code and state, which came in the URL: the report shows the callback's query redacted, in its
    # URL, GET section, META and the request's repr (config/reporting.py).
    assert_absent(report, code, state)
    assert "/connectors/oauth/meta/callback/?[REDACTED]" in report["text"]
    ours = [f for f in report["frames"] if f["function"] in {"oauth_callback", "oauth_complete", "credential_store"}]
    assert len(ours) == 3
    for frame in ours:
        for name, value in frame["vars"]:
            assert name == "request" or code not in str(value), (frame["function"], name)


def test_a_report_from_inside_an_authorised_call_carries_no_token(providers, settings):
    """A failure inside whatever `credential_call` runs with the decrypted token, under any name."""
    settings.DEBUG = False
    credential = google_credential(providers, expired=True)  # refreshed first: a new token, held in frames
    refresh = decrypt_secret(credential.refresh_token_enc)

    def provider_call(access_token: str):
        held = {"Authorization": f"Bearer {access_token}"}
        raise RuntimeError(f"the call failed ({len(held)} header)")

    with pytest.raises(RuntimeError) as caught:
        services.credential_call(credential_id=credential.pk, call=provider_call)

    token = decrypt_secret(ConnectorCredential.objects.get(pk=credential.pk).access_token_enc)
    reporter = ExceptionReporter(None, caught.type, caught.value, caught.tb.tb_next)  # from the service down
    report = {"text": reporter.get_traceback_text(), "html": reporter.get_traceback_html()}
    assert "credential_call" in report["text"] and "provider_call" in report["text"]
    assert_absent(report, token, refresh)


@pytest.mark.parametrize("kind", ["google", "meta"])
def test_a_report_from_inside_a_token_request_carries_no_secret(providers, settings, kind):
    """Raised inside the HTTP layer (requests refuses the configured timeout) while the refresh token, the
    client secret and the form body are all in the frames."""
    settings.DEBUG = False
    credential = (
        google_credential(providers, expired=True) if kind == "google" else meta_credential(providers, ttl=86400)
    )
    secrets = [
        decrypt_secret(credential.access_token_enc),
        settings.GOOGLE_OAUTH_CLIENT_SECRET,
        settings.META_APP_SECRET,
    ]
    if credential.refresh_token_enc:
        secrets.append(decrypt_secret(credential.refresh_token_enc))
    settings.CONNECTORS_HTTP_TIMEOUT = ("not-a-number", 1.0)

    with pytest.raises(ValueError) as caught:
        services.credential_refresh(credential_id=credential.pk)

    reporter = ExceptionReporter(None, caught.type, caught.value, caught.tb.tb_next)  # from the service down
    report = {"text": reporter.get_traceback_text(), "html": reporter.get_traceback_html()}
    assert "credential_refresh" in report["text"] and "_request" in report["text"]
    assert_absent(report, *secrets)
