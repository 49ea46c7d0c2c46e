"""The List-Unsubscribe link: GET shows a button (link scanners), POST opts out; critical kinds stay on."""

from __future__ import annotations

import pytest

from notifications.models import NotificationOptOut
from notifications.services import unsubscribe_token, unsubscribe_url
from tests.accounts.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def _path(merchant, kind="data_stale", user="user_1") -> str:
    return (
        "/notifications/unsubscribe/" + unsubscribe_token(merchant_id=merchant.pk, clerk_user_id=user, kind=kind) + "/"
    )


def test_get_only_asks(client):
    merchant = MerchantFactory()
    response = client.get(_path(merchant))
    assert response.status_code == 200
    assert b"Stop receiving this kind of email" in response.content
    assert not NotificationOptOut.objects.exists()


def test_one_click_post_opts_out_once(client):
    merchant = MerchantFactory()
    for _ in range(2):
        response = client.post(_path(merchant), {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    opt_out = NotificationOptOut.objects.get()
    assert (opt_out.merchant_id, opt_out.clerk_user_id, opt_out.kind) == (merchant.pk, "user_1", "data_stale")


def test_url_uses_the_app_base_url(settings):
    settings.APP_BASE_URL = "https://app.example.com/"
    url = unsubscribe_url(merchant_id=1, clerk_user_id="u", kind="data_stale")
    assert url.startswith("https://app.example.com/notifications/unsubscribe/")


@pytest.mark.parametrize("tamper", ["critical", "garbage"])
def test_bad_or_critical_tokens_change_nothing(client, tamper):
    merchant = MerchantFactory()
    path = (
        _path(merchant, kind="credential_needs_reauth") if tamper == "critical" else "/notifications/unsubscribe/x:y/"
    )
    response = client.post(path)
    assert response.status_code == 400
    assert not NotificationOptOut.objects.exists()


def test_member_sets_preferences_and_critical_kinds_stay_on(client, clerk):
    from tests.accounts.factories import MembershipFactory

    membership = MembershipFactory(clerk_user_id=clerk.user("user_pref"))
    other = MerchantFactory()
    client.cookies["__session"] = clerk.token("user_pref")
    url = f"/m/{membership.merchant_id}/notifications/"

    page = client.get(url)
    assert page.status_code == 200
    assert [p["enabled"] for p in page.context["preferences"]] == [True] * 8

    # Only export_ready stays on; the critical kinds cannot be switched off even when posted.
    response = client.post(url, {"kind": ["export_ready"]})
    assert response.status_code == 302
    assert set(NotificationOptOut.objects.values_list("kind", flat=True)) == {
        "dbt_run_failed",
        "data_stale",
        "agency_invitation",
    }
    client.post(url, {"kind": ["export_ready", "data_stale"]})
    assert "data_stale" not in set(NotificationOptOut.objects.values_list("kind", flat=True))
    assert client.get(f"/m/{other.pk}/notifications/").status_code == 404
