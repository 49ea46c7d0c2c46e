"""Attentive: validate an API key (GET /v1/me), register and delete webhooks (/v1/webhooks), INGESTION.md §5."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from connectors.clients.base import BaseClient, Forbidden, Permanent, Unauthorized

# Attentive does not document a key format; refuse only what cannot be a bearer token.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,512}$")
WEBHOOKS_SCOPE = "webhooks:write"


class AttentiveClient(BaseClient):
    provider = "attentive"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.ATTENTIVE_API_URL), **kwargs)

    @sensitive_variables()
    def me(self, *, api_key: str) -> dict[str, Any]:
        response = self._request("GET", "/v1/me", headers={"Authorization": f"Bearer {api_key}"}, secrets=(api_key,))
        if response.status_code == 401:
            raise Unauthorized("Attentive refused the key", code="unauthorized", status=401)
        if response.status_code == 403:
            raise Forbidden("Attentive accepted the key but denied access", code="forbidden", status=403)
        self._raise_common(response, "")
        # Its error bodies are undocumented, so 401/403 count by status alone; a success must be JSON.
        return self._json_object(response)

    def _refusals(self, response, what: str) -> None:
        if response.status_code == 401:
            raise Unauthorized("Attentive refused the key", code="unauthorized", status=401)
        if response.status_code == 403:
            raise Forbidden(
                f"Attentive accepted the key but denied {what}",
                code="forbidden",
                status=403,
                detail={"missing_scope": WEBHOOKS_SCOPE},
            )

    @sensitive_variables()
    def webhook_create(self, *, api_key: str, url: str, events: list[str]) -> dict[str, Any]:
        """POST /v1/webhooks → {"id", "events", "signingKey", ...}; the signing key is shown only in this answer."""
        response = self._request(
            "POST",
            "/v1/webhooks",
            json={"url": url, "events": events},
            headers={"Authorization": f"Bearer {api_key}"},
            secrets=(api_key, url),
        )
        self._refusals(response, "registering a webhook")
        self._raise_common(response, "Attentive refused to register the webhook")
        body = self._json_object(response)
        if not body.get("id") or not isinstance(body.get("signingKey"), str) or not body["signingKey"]:
            raise Permanent("Attentive registered no usable webhook (no id or signing key)", code="no_signing_key")
        return body

    @sensitive_variables()
    def webhook_delete(self, *, api_key: str, webhook_id: str) -> None:
        """DELETE /v1/webhooks/{id}; a webhook Attentive no longer has (404) counts as deleted."""
        response = self._request(
            "DELETE",
            f"/v1/webhooks/{webhook_id}",
            headers={"Authorization": f"Bearer {api_key}"},
            secrets=(api_key,),
        )
        if response.status_code in (204, 200, 404):
            return
        self._refusals(response, "deleting the webhook")
        self._raise_common(response, "Attentive refused to delete the webhook")
