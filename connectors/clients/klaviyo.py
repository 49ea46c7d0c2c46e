"""Klaviyo: validate a private API key (GET /api/accounts with the revision header)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from connectors.clients.base import BaseClient, Forbidden, Unauthorized

# Private keys are "pk_" + 34 alphanumerics; anything else is refused before any network call.
KEY_PATTERN = re.compile(r"^pk_[A-Za-z0-9]{34}$")
ACCOUNTS_SCOPE = "accounts:read"


class KlaviyoClient(BaseClient):
    provider = "klaviyo"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.KLAVIYO_API_URL), **kwargs)

    @sensitive_variables()
    def accounts(self, *, api_key: str) -> list[dict[str, Any]]:
        response = self._request(
            "GET",
            "/api/accounts",
            headers={
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": settings.KLAVIYO_REVISION,
                "Accept": "application/vnd.api+json",
            },
            secrets=(api_key,),
        )
        # Klaviyo answers JSON:API; an HTML 401/403 is Cloudflare in front of it, not a verdict on the key.
        body = self._json_object(response)
        errors = body.get("errors")
        code = (
            str(errors[0].get("code", ""))
            if isinstance(errors, list) and errors and isinstance(errors[0], dict)
            else ""
        )
        if response.status_code == 401:
            raise Unauthorized("Klaviyo refused the key", code=code or "authentication_failed", status=401)
        if response.status_code == 403:
            raise Forbidden(
                "Klaviyo accepted the key but it lacks a scope",
                code=code or "permission_denied",
                status=403,
                detail={"missing_scope": ACCOUNTS_SCOPE},
            )
        self._raise_common(response, f"Klaviyo refused the request ({code})")
        data = body.get("data", [])
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
