"""Attentive: validate an API key (GET /v1/me)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from connectors.clients.base import BaseClient, Forbidden, Unauthorized

# Attentive does not document a key format; refuse only what cannot be a bearer token.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,512}$")


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
