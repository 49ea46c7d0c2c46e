"""`connect_demo`: the demo stores are connected through the merchant's own services, against the sandbox."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from compliance.models import AuditEvent
from connectors.choices import CredentialStatus, Provider
from connectors.models import ConnectorCredential

pytestmark = pytest.mark.django_db

APP_URL = "http://127.0.0.1:8000"


def _connect(providers) -> str:
    out = StringIO()
    call_command("connect_demo", sandbox_url=providers.url, app_url=APP_URL, stdout=out)
    return out.getvalue()


def test_every_demo_store_is_connected_to_every_provider_once(providers, tmp_path):
    from accounts.models import Merchant

    call_command("seed_demo", password_file=str(tmp_path / "pw"))
    before = {m.key: (m.name, m.timezone, m.currency) for m in Merchant.objects.all()}

    first = _connect(providers)

    credentials = ConnectorCredential.objects.all()
    assert {(c.merchant.key, c.provider) for c in credentials} == {
        (key, p) for key in ("demo_store", "demo_second")
        for p in (Provider.SHOPIFY, Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO, Provider.ATTENTIVE)
    }  # fmt: skip
    assert {c.status for c in credentials} == {CredentialStatus.ACTIVE}
    # Google's refresh token came from the real code exchange (PKCE and all), not from a row written here.
    google = credentials.get(merchant__key="demo_store", provider=Provider.GOOGLE_ADS)
    assert google.refresh_token_enc and google.expires_at is not None
    assert providers.calls("google.oauth.token") == 2 and providers.calls("meta.oauth.access_token") >= 2
    # The same audit trail a merchant's clicks leave.
    # Shopify's install read the store's own record: the demo store keeps its name, time zone and currency.
    shop = credentials.get(merchant__key="demo_store", provider=Provider.SHOPIFY)
    assert shop.refresh_token_enc and shop.expires_at is not None
    assert (shop.merchant.name, shop.merchant.timezone, shop.merchant.currency) == (
        before["demo_store"]
    )  # fmt: skip
    assert providers.calls("shopify.oauth.access_token") == 2
    assert AuditEvent.objects.filter(action="credential.connected").count() == 10
    assert first.count("demo_store: ") == 5 and "already" not in first

    again = _connect(providers)

    assert ConnectorCredential.objects.count() == 10
    assert again.count("already connected") == 10
    assert providers.calls("google.oauth.token") == 2


def test_a_store_that_needs_reconnecting_is_reconnected(providers, tmp_path):
    call_command("seed_demo", password_file=str(tmp_path / "pw"))
    _connect(providers)
    meta = ConnectorCredential.objects.get(merchant__key="demo_store", provider=Provider.META)
    ConnectorCredential.objects.filter(pk=meta.pk).update(status=CredentialStatus.NEEDS_REAUTH)

    out = _connect(providers)

    assert "demo_store: meta connected" in out
    assert ConnectorCredential.objects.filter(
        merchant__key="demo_store", provider=Provider.META, status=CredentialStatus.ACTIVE
    ).exists()


def test_a_provider_refusing_stops_with_a_clear_error(providers, tmp_path):
    call_command("seed_demo", password_file=str(tmp_path / "pw"))
    providers.control.fault("klaviyo.accounts.list", status=503, times=10)

    with pytest.raises(CommandError, match="demo_second: Klaviyo"):
        _connect(providers)


def test_without_demo_stores_it_says_so(providers):
    with pytest.raises(CommandError, match="run seed_demo first"):
        _connect(providers)


def test_refused_outside_development(providers, settings):
    settings.DEV = False
    with pytest.raises(CommandError, match="DJANGO_DEV=1"):
        _connect(providers)
