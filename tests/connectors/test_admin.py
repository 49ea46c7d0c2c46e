from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from connectors import tasks
from connectors.choices import CredentialStatus, Provider
from connectors.crypto import key_id_for, secret_key_id
from connectors.models import ConnectorCredential
from tests.connectors.factories import CredentialFactory

pytestmark = pytest.mark.django_db

URL = "/admin/connectors/connectorcredential/"


def act(admin_client, action: str, *credentials):
    return admin_client.post(URL, {"action": action, "_selected_action": [c.pk for c in credentials]}, follow=True)


def test_changelist_shows_expiry_and_attention_filter(admin_client):
    soon = CredentialFactory(provider=Provider.META, expires_at=timezone.now() + dt.timedelta(days=3))
    broken = CredentialFactory(status=CredentialStatus.NEEDS_REAUTH)
    fine = CredentialFactory(expires_at=timezone.now() + dt.timedelta(hours=1))
    page = admin_client.get(URL).content.decode()
    assert "2 days" in page or "3 days" in page
    attention = admin_client.get(URL + "?attention=needs").context["cl"].result_list
    assert {c.pk for c in attention} == {soon.pk, broken.pk}
    assert fine.pk not in {c.pk for c in attention}


def test_refresh_now_is_queued_after_commit(admin_client, django_capture_on_commit_callbacks):
    credential = CredentialFactory()
    patch = mock.patch.object(tasks.credential_refresh_task, "apply_async")
    with patch as apply_async, django_capture_on_commit_callbacks(execute=True):
        act(admin_client, "refresh_now", credential)
    assert apply_async.call_count == 1
    assert apply_async.call_args.args == ((credential.pk,), {"force": True})


def test_revoke_forgets_the_secrets(admin_client):
    credential = CredentialFactory(provider=Provider.KLAVIYO, auth_kind="api_key", api_key="pk_" + "a" * 34)
    act(admin_client, "revoke", credential)
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.REVOKED and credential.api_key_enc == ""


def test_reencrypt_moves_to_the_primary_key(admin_client, settings, encryption_key):
    credential = CredentialFactory()
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, encryption_key]
    act(admin_client, "reencrypt", credential)
    credential = ConnectorCredential.objects.get(pk=credential.pk)
    assert secret_key_id(credential.access_token_enc) == key_id_for(new_key)
