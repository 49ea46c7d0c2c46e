"""Klaviyo: validate a private API key (GET /api/accounts with the revision header)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from connectors.clients.base import BaseClient, Forbidden, Unauthorized

# Private keys are "pk_" + 34 alphanumerics; anything else is refused before any network call.
KEY_PATTERN = re.compile(r"^pk_[A-Za-z0-9]{34}$")
ACCOUNTS_SCOPE = "accounts:read"


class KlaviyoClient(BaseClient):
    provider = "klaviyo"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.KLAVIYO_API_URL), **kwargs)

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
        body = self._json(response) or {}
        errors = body.get("errors") if isinstance(body, dict) else None
        code = str(errors[0].get("code", "")) if errors else ""
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
        return body.get("data", [])
