from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from connectors.choices import AuthKind, CredentialStatus, Provider
from connectors.crypto import encrypt_secret
from connectors.models import ConnectorCredential
from tests.accounts.factories import MerchantFactory


class CredentialFactory(factory.django.DjangoModelFactory):
    """Pass plaintext as `access_token=`, `refresh_token=`, `api_key=`; it is stored encrypted."""

    class Meta:
        model = ConnectorCredential
        exclude = ("access_token", "refresh_token", "api_key")

    merchant = factory.SubFactory(MerchantFactory)
    provider = Provider.GOOGLE_ADS
    auth_kind = AuthKind.OAUTH
    external_account_id = factory.Sequence(lambda n: f"{1000000000 + n}")
    account_label = "Test account"
    status = CredentialStatus.ACTIVE
    access_token = "ya29.test-access-token"
    refresh_token = ""
    api_key = ""
    access_token_enc = factory.LazyAttribute(lambda o: encrypt_secret(o.access_token) if o.access_token else "")
    refresh_token_enc = factory.LazyAttribute(lambda o: encrypt_secret(o.refresh_token) if o.refresh_token else "")
    api_key_enc = factory.LazyAttribute(lambda o: encrypt_secret(o.api_key) if o.api_key else "")
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(hours=1))


def google_credential(providers, *, expired: bool = False, **kwargs) -> ConnectorCredential:
    tokens = providers.google_tokens(ttl=-10 if expired else 3599)
    return CredentialFactory(
        provider=Provider.GOOGLE_ADS,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_at=timezone.now() + dt.timedelta(seconds=-10 if expired else 3599),
        **kwargs,
    )


def meta_credential(providers, *, ttl: int = 5183944, kind: str = "long", **kwargs) -> ConnectorCredential:
    token = providers.meta_token(kind=kind, ttl=None if kind == "system" else ttl)
    expires_at = None if kind == "system" else timezone.now() + dt.timedelta(seconds=ttl)
    return CredentialFactory(provider=Provider.META, access_token=token, expires_at=expires_at, **kwargs)


def shopify_credential(providers, *, shop: str = "", expired: bool = False, **kwargs) -> ConnectorCredential:
    """A Shopify credential whose tokens the sandbox really issued (an expiring offline pair)."""
    from tests.accounts.factories import MerchantFactory

    merchant = kwargs.pop("merchant", None) or MerchantFactory(**({"shop_domain": shop} if shop else {}))
    tokens = providers.shopify_tokens(merchant.shop_domain, ttl=-10 if expired else 3600)
    return CredentialFactory(
        merchant=merchant,
        provider=Provider.SHOPIFY,
        external_account_id=merchant.shop_domain,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_at=timezone.now() + dt.timedelta(seconds=-10 if expired else 3600),
        **kwargs,
    )
