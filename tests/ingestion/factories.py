"""Credentials whose secrets the sandbox accepts, per provider, and their pipelines."""

from __future__ import annotations

from connectors.choices import AuthKind, Provider
from connectors.models import ConnectorCredential
from tests.connectors.factories import CredentialFactory, google_credential, meta_credential, shopify_credential

META_ACCOUNTS = {"ad_accounts": [{"id": "act_111111111111111", "name": "Acme ads"}]}
GOOGLE_CUSTOMERS = {"customers": ["1234567890"]}


def credential_for(provider: str, providers, **kwargs) -> ConnectorCredential:
    if provider == Provider.META:
        return meta_credential(providers, metadata=META_ACCOUNTS, **kwargs)
    if provider == Provider.GOOGLE_ADS:
        return google_credential(providers, metadata=GOOGLE_CUSTOMERS, **kwargs)
    if provider == Provider.SHOPIFY:
        return shopify_credential(providers, **kwargs)
    return CredentialFactory(
        provider=Provider.KLAVIYO,
        auth_kind=AuthKind.API_KEY,
        access_token="",
        api_key=providers.klaviyo_key(),
        expires_at=None,
        external_account_id="klaviyo-account",
        **kwargs,
    )
