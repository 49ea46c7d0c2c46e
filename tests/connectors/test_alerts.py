"""Entering needs_reauth (or expiring for good) notifies owners and admins once per credential per day."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from accounts.choices import Role
from connectors import services
from connectors.crypto import decrypt_secret
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import google_credential, meta_credential
from tests.connectors.test_refresh_failing_provider import end_failure_window

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(clerk):
    owner = MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    MembershipFactory(merchant=owner.merchant, clerk_user_id=clerk.user("user_admin"), role=Role.ADMIN)
    MembershipFactory(merchant=owner.merchant, clerk_user_id=clerk.user("user_viewer"), role=Role.VIEWER)
    return owner.merchant


def test_invalid_grant_alerts_owners_and_admins_once(team, providers, caplog):
    credential = google_credential(providers, expired=True, merchant=team, account_label="Main Ads")
    providers.google_revoke(decrypt_secret(credential.refresh_token_enc))

    with caplog.at_level(logging.ERROR, logger="connectors.alerts"):
        for _ in range(3):
            with pytest.raises(services.CredentialUnusable):
                services.credential_refresh(credential_id=credential.pk)

    notifications = Notification.objects.filter(kind="credential_needs_reauth")
    assert sorted(notifications.values_list("clerk_user_id", flat=True)) == ["user_admin", "user_owner"]
    context = notifications.first().context
    assert context["provider"] == "Google Ads" and context["account_name"] == "Main Ads"
    assert context["reconnect_url"].endswith(f"/m/{team.pk}/connectors/")
    assert [r.levelname for r in caplog.records if r.name == "connectors.alerts"] == ["ERROR"]
    body = notifications.first().body_text
    assert f"/m/{team.pk}/connectors/" in body
    assert decrypt_secret(credential.refresh_token_enc) not in body


def test_alert_is_deduped_per_credential_per_day(team, providers):
    credential = google_credential(providers, merchant=team)
    error = services.Unauthorized("refused", code="invalid_grant")
    services.credential_mark_needs_reauth(credential_id=credential.pk, error=error)
    credential.status = "active"
    credential.save()
    services.credential_mark_needs_reauth(credential_id=credential.pk, error=error)
    assert Notification.objects.filter(kind="credential_needs_reauth").count() == 2  # two recipients, once each


def test_meta_token_that_cannot_be_extended_alerts_expiring(team, providers):
    credential = meta_credential(providers, ttl=3 * 86400, merchant=team)
    token = decrypt_secret(credential.access_token_enc)
    providers.control.fault(
        "meta.oauth.access_token", 200, body={"access_token": token, "token_type": "bearer", "expires_in": 3 * 86400}
    )

    services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert credential.status == "active"
    assert credential.expires_at < timezone.now() + dt.timedelta(days=4)
    notifications = Notification.objects.filter(kind="credential_expiring")
    assert notifications.count() == 2
    assert notifications.first().context["expires_on"] == credential.expires_at.date().isoformat()


def test_repeated_transient_failures_of_an_expired_token_turn_error_and_alert_once(team, providers, settings):
    settings.CONNECTORS_REFRESH_MAX_FAILURES = 2
    credential = google_credential(providers, expired=True, merchant=team)
    providers.control.fault("google.oauth.token", 503, times=2)
    for _ in range(2):
        with pytest.raises(services.RefreshRetryable):
            services.credential_refresh(credential_id=credential.pk)
        end_failure_window(credential)
    credential.refresh_from_db()
    assert credential.status == "error"
    # Expired before the next retry: the owners hear it, once a day (two recipients).
    assert Notification.objects.filter(kind="credential_expiring").count() == 2


def test_an_outbox_failure_does_not_lose_the_status_change(team, providers, monkeypatch, caplog):
    import notifications.services

    def broken(**kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(notifications.services, "merchant_admins_notify", broken)
    credential = google_credential(providers, expired=True, merchant=team)
    providers.google_revoke(decrypt_secret(credential.refresh_token_enc))
    with pytest.raises(services.CredentialUnusable):
        services.credential_refresh(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == "needs_reauth"
    assert "could not queue" in caplog.text
