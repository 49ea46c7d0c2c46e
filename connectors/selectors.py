"""Reads for credentials. Merchant-facing reads always name the merchant."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import Merchant
from connectors.choices import AuthKind, CredentialStatus, Provider
from connectors.models import ConnectorCredential


def credential_list(*, merchant: Merchant) -> QuerySet[ConnectorCredential]:
    return ConnectorCredential.objects.filter(merchant=merchant).order_by("provider", "account_label")


def credential_get(*, merchant: Merchant, credential_id: int) -> ConnectorCredential:
    try:
        return ConnectorCredential.objects.get(merchant=merchant, pk=credential_id)
    except (ConnectorCredential.DoesNotExist, ValueError, TypeError):
        raise Http404("No such connection.") from None


def refresh_windows() -> dict[str, dt.timedelta]:
    """How far ahead of expiry each provider's tokens are renewed."""
    return {
        Provider.GOOGLE_ADS: dt.timedelta(seconds=settings.CONNECTORS_GOOGLE_REFRESH_AHEAD_SECONDS),
        Provider.META: dt.timedelta(days=settings.CONNECTORS_META_REFRESH_AHEAD_DAYS),
        Provider.SHOPIFY: dt.timedelta(seconds=settings.CONNECTORS_SHOPIFY_REFRESH_AHEAD_SECONDS),
    }


def credential_ids_due_for_refresh(*, now: dt.datetime | None = None) -> list[int]:
    """OAuth credentials, still usable, whose token expires within their provider's window.

    Tokens that never expire (expires_at empty: Meta system users) are never due. A credential in
    backoff after a transient failure waits for its next_attempt_at.
    """
    now = now or timezone.now()
    due = Q()
    for provider, window in refresh_windows().items():
        due |= Q(provider=provider, expires_at__lte=now + window)
    return list(
        ConnectorCredential.objects.filter(
            due,
            auth_kind=AuthKind.OAUTH,
            status__in=[CredentialStatus.ACTIVE, CredentialStatus.ERROR],
            expires_at__isnull=False,
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("expires_at")
        .values_list("pk", flat=True)
    )


def credential_needs_attention_q() -> Q:
    """Credentials a person has to look at: reconnect needed, failing, or about to expire for good."""
    soon = timezone.now() + dt.timedelta(days=7)
    return Q(status__in=[CredentialStatus.NEEDS_REAUTH, CredentialStatus.ERROR]) | Q(
        status=CredentialStatus.ACTIVE, provider=Provider.META, expires_at__lte=soon
    )


def secret_key_usage() -> dict[str, int]:
    """How many stored secret values each key id wrote (across every encrypted column)."""
    from collections import Counter

    from django.apps import apps

    from connectors.crypto import SecretDecryptionError, secret_key_id
    from connectors.models import SECRET_FIELDS

    usage: Counter[str] = Counter()
    for model_name, fields in SECRET_FIELDS.items():
        model = apps.get_model("connectors", model_name)
        for values in model.objects.values_list(*fields).iterator(chunk_size=2000):
            for value in values:
                if value:
                    try:
                        usage[secret_key_id(value)] += 1
                    except SecretDecryptionError:
                        usage["(not ciphertext)"] += 1
    return dict(usage)
