"""Drive the sandbox's Meta, Google, Klaviyo and Attentive stores over its control API."""

from __future__ import annotations

from typing import Any

from sandbox.server import SandboxControl


class ProviderSandbox:
    def __init__(self, control: SandboxControl) -> None:
        self.control = control
        self.url = control.base_url

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        response = self.control._request("POST", path, json=payload)
        return response.json() if response.content else None

    # Google
    def google_tokens(self, *, ttl: int = 3599, scope: str | None = None) -> dict[str, Any]:
        return self._post("/_control/google/tokens", {"ttl": ttl, **({"scope": scope} if scope else {})})

    def google_expire(self, access_token: str) -> None:
        self._post("/_control/google/tokens/expire", {"access_token": access_token})

    def google_revoke(self, token: str) -> None:
        self._post("/_control/google/tokens/revoke", {"token": token})

    def google_configure(self, **options: Any) -> None:
        self._post("/_control/google/configure", options)

    # Meta
    def meta_token(self, *, kind: str = "long", ttl: int | None = None, **extra: Any) -> str:
        payload = {"kind": kind, **extra, **({"ttl": ttl} if ttl is not None else {})}
        return self._post("/_control/meta/tokens", payload)["access_token"]

    def meta_invalidate(self, access_token: str, subcode: int = 463) -> None:
        self._post("/_control/meta/tokens/invalidate", {"access_token": access_token, "subcode": subcode})

    def meta_configure(self, **options: Any) -> None:
        self._post("/_control/meta/configure", options)

    # Klaviyo, Attentive
    def klaviyo_key(self, *, scopes: list[str] | None = None, name: str = "Demo Store") -> str:
        return self.control.klaviyo_key_create(name=name, scopes=scopes)

    def attentive_key(self, *, company: str = "Demo Store") -> str:
        return self.control.attentive_key_create(company=company)

    # Shopify
    def shopify_tokens(self, shop: str, *, ttl: int = 3600) -> dict[str, Any]:
        return self._post("/_control/shopify/tokens", {"shop": shop, "ttl": ttl})

    def shopify_expire(self, access_token: str) -> None:
        self._post("/_control/shopify/tokens/expire", {"access_token": access_token})

    def shopify_revoke_refresh(self, refresh_token: str) -> None:
        self._post("/_control/shopify/tokens/revoke", {"refresh_token": refresh_token})

    def shopify_shop(self, shop: str, **fields: Any) -> dict[str, Any]:
        return self._post("/_control/shopify/shops", {"shop": shop, **fields})["shop"]

    def shopify_install_url(self, shop: str, app_url: str) -> str:
        return self._post("/_control/shopify/install_url", {"shop": shop, "app_url": app_url})["url"]

    def shopify_webhook(self, shop: str, topic: str, **options: Any) -> dict[str, Any]:
        return self._post("/_control/shopify/webhooks", {"shop": shop, "topic": topic, **options})

    def calls(self, route: str) -> int:
        return len(self.control.calls(route))

    def attentive_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook registered at the sandbox's Attentive, signing keys included."""
        return self.control._request("GET", "/_control/attentive/webhooks").json()["webhooks"]

    def attentive_emit(self, webhook_id: str, **payload: Any) -> dict[str, Any]:
        """Deliver events to a registered webhook (signed, retried); returns the emitter's report."""
        response = self.control.session.post(
            f"{self.url}/_control/attentive/webhooks/{webhook_id}/emit", json=payload, timeout=600
        )
        response.raise_for_status()
        return response.json()
