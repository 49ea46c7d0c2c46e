"""Tell a merchant's owners and admins that a connection needs them, through the notifications outbox.

Who hears what: NEEDS_REAUTH (the provider refused for good: reconnect) and EXPIRING (the token will be
dead before we can renew it — a Meta token that re-exchange did not extend, or a failing refresh whose
next try falls after the token's expiry) go to the merchant. FAILING (repeated transient failures the
retries may still outrun) is an ERROR line for staff only: merchants cannot fix a provider's outage.

Called inside the transaction that changes the credential's status, so the notification exists
exactly when the status change does. Deduped per credential per kind per day by the outbox. The
context carries plain values only — provider, account label, the reconnect URL — never a secret.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from connectors.models import ConnectorCredential

logger = logging.getLogger(__name__)

NEEDS_REAUTH = "credential_needs_reauth"
EXPIRING = "credential_expiring"
FAILING = "failing"  # repeated transient failures: an ERROR line and admin's "needs attention"

DEDUPE_WINDOW = dt.timedelta(days=1)
_LOG_TEXT = {
    NEEDS_REAUTH: "needs reconnecting",
    EXPIRING: "expires before it can be renewed",
    FAILING: "keeps failing to refresh",
}


def reconnect_url(credential: ConnectorCredential) -> str:
    path = reverse("connectors:list", kwargs={"merchant_id": credential.merchant_id})
    base = getattr(settings, "APP_BASE_URL", "") or ""
    return f"{base.rstrip('/')}{path}"


def credential_alert(*, credential: ConnectorCredential, kind: str) -> None:
    logger.error(
        "connector credential %s (%s %s, merchant %s) %s: %s",
        credential.pk,
        credential.provider,
        credential.external_account_id,
        credential.merchant_id,
        _LOG_TEXT[kind],
        credential.last_error_code or "-",
    )
    if kind == FAILING:
        return
    notify_kind = kind
    from notifications.services import merchant_admins_notify

    try:
        # A savepoint: if the outbox refuses, the credential's status change must still be saved.
        with transaction.atomic():
            merchant_admins_notify(
                merchant=credential.merchant,
                kind=notify_kind,
                context={
                    # Keys as the notification templates read them; plain values only, never a secret.
                    "provider": credential.get_provider_display(),
                    "provider_key": credential.provider,
                    "account_name": credential.account_label or credential.external_account_id,
                    "expires_on": credential.expires_at.date().isoformat() if credential.expires_at else None,
                    "reason": credential.last_error_code or None,
                    "reconnect_url": reconnect_url(credential),
                },
                dedupe_key=f"credential:{credential.pk}:{notify_kind}",
                dedupe_window=DEDUPE_WINDOW,
            )
    except Exception:
        logger.exception("could not queue the %s alert for credential %s", notify_kind, credential.pk)
