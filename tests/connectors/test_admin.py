from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from compliance.models import AuditEvent
from connectors import tasks
from connectors.choices import CredentialStatus, Provider
from connectors.crypto import decrypt_secret, encrypt_secret, key_id_for, secret_key_id
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


@pytest.fixture
def staff_client(client, django_user_model):
    """A staff operator (not a superuser) who may view credentials, signed in to the real admin."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username="operator", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_connectorcredential"))
    client.force_login(user)
    client.user = user
    return client


def audit_rows(action: str, credential) -> list[tuple[str, str, str]]:
    return list(
        AuditEvent.objects.filter(action=action, target_id=str(credential.pk)).values_list(
            "actor_type", "actor_id", "actor_label"
        )
    )


def test_refresh_now_is_queued_after_commit_and_audited(staff_client, django_capture_on_commit_callbacks):
    credential = CredentialFactory()
    patch = mock.patch.object(tasks.credential_refresh_task, "apply_async")
    with patch as apply_async, django_capture_on_commit_callbacks(execute=True):
        response = act(staff_client, "refresh_now", credential)
    assert response.status_code == 200
    assert apply_async.call_count == 1
    assert apply_async.call_args.args == ((credential.pk,), {"force": True})
    user = staff_client.user
    assert audit_rows("credential.refresh_requested", credential) == [("staff", str(user.pk), "operator")]


@pytest.mark.django_db(transaction=True)
def test_revoke_forgets_the_secrets_and_is_audited(staff_client):
    credential = CredentialFactory(provider=Provider.KLAVIYO, auth_kind="api_key", api_key="pk_" + "a" * 34)
    response = act(staff_client, "revoke", credential)
    assert response.status_code == 200
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.REVOKED and credential.api_key_enc == ""
    user = staff_client.user
    assert audit_rows("credential.revoked", credential) == [("staff", str(user.pk), "operator")]


@pytest.mark.django_db(transaction=True)
def test_reencrypt_through_the_admin_moves_to_the_primary_key_and_is_audited(staff_client, settings, encryption_key):
    """Outside a test transaction, as in production: the action used to fail on `select_for_update`."""
    credential = CredentialFactory(refresh_token="1//refresh-token-for-tests")
    current = CredentialFactory(merchant=credential.merchant)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, encryption_key]
    ConnectorCredential.objects.filter(pk=current.pk).update(access_token_enc=encrypt_secret("ya29.current-token"))

    response = act(staff_client, "reencrypt", credential, current)

    assert response.status_code == 200
    assert "Re-encrypted 1 credential(s)." in response.content.decode()
    credential = ConnectorCredential.objects.get(pk=credential.pk)
    assert secret_key_id(credential.access_token_enc) == key_id_for(new_key)
    assert secret_key_id(credential.refresh_token_enc) == key_id_for(new_key)
    assert decrypt_secret(credential.refresh_token_enc) == "1//refresh-token-for-tests"
    user = staff_client.user
    for row in (credential, current):
        assert audit_rows("credential.reencrypted", row) == [("staff", str(user.pk), "operator")]
    event = AuditEvent.objects.get(action="credential.reencrypted", target_id=str(credential.pk))
    assert event.metadata["fields"] == ["access_token_enc", "refresh_token_enc"]
    assert event.metadata["key_id"] == key_id_for(new_key)
    assert AuditEvent.objects.get(action="credential.reencrypted", target_id=str(current.pk)).metadata["fields"] == []


def test_every_admin_action_writes_an_audit_row(staff_client, django_capture_on_commit_callbacks):
    """Walks the admin's own action list, so an action added later without an audit row fails here."""
    from django.contrib import admin as django_admin

    model_admin = django_admin.site._registry[ConnectorCredential]
    actions = list(model_admin.actions)
    assert set(actions) == {"refresh_now", "revoke", "reencrypt"}
    for name in actions:
        credential = CredentialFactory()
        before = AuditEvent.objects.filter(target_id=str(credential.pk), actor_type="staff").count()
        queue = mock.patch.object(tasks.credential_refresh_task, "apply_async")
        with queue, django_capture_on_commit_callbacks(execute=True):
            act(staff_client, name, credential)
        after = AuditEvent.objects.filter(target_id=str(credential.pk), actor_type="staff").count()
        assert after == before + 1, f"admin action {name!r} wrote no audit row"
