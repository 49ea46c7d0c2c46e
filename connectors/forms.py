"""Input of the connectors pages, validated in one place before anything calls a provider.

`ApiKeyConnectForm` is the gate of every API-key connect: the page binds it to the POST, and
`services.credential_connect_api_key` runs it again for every other caller (the JSON API), so no
provider is called for input that could not be stored. Django's CharField already refuses NUL
characters (PostgreSQL cannot store them); lone surrogates (which cannot be encoded) are refused too
(config.validators, shared with the dashboards' forms and serializers).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from config.validators import prohibit_surrogates
from connectors.choices import API_KEY_PROVIDERS, OAUTH_PROVIDERS, Provider
from connectors.clients.attentive import KEY_PATTERN as ATTENTIVE_KEY_PATTERN
from connectors.clients.klaviyo import KEY_PATTERN as KLAVIYO_KEY_PATTERN

MALFORMED_KLAVIYO_KEY = "A Klaviyo private API key is 'pk_' followed by 34 letters and digits."
MALFORMED_ATTENTIVE_KEY = "That does not look like an Attentive API key."
NOT_API_KEY_PROVIDER = "Connect {provider} with its sign-in flow, not an API key."
UNKNOWN_PROVIDER = "Choose {choices}."

KEY_PATTERNS = {
    Provider.KLAVIYO: (KLAVIYO_KEY_PATTERN, MALFORMED_KLAVIYO_KEY),
    Provider.ATTENTIVE: (ATTENTIVE_KEY_PATTERN, MALFORMED_ATTENTIVE_KEY),
}


class ApiKeyConnectForm(forms.Form):
    provider = forms.CharField(max_length=20, validators=[prohibit_surrogates])
    api_key = forms.CharField(max_length=512, validators=[prohibit_surrogates])
    label = forms.CharField(max_length=255, required=False, validators=[prohibit_surrogates])

    def clean_provider(self) -> str:
        provider = self.cleaned_data["provider"]
        if provider in API_KEY_PROVIDERS:
            return provider
        if provider in OAUTH_PROVIDERS:
            raise ValidationError(NOT_API_KEY_PROVIDER.format(provider=Provider(provider).label), code="oauth")
        choices = " or ".join(str(Provider(p).label) for p in API_KEY_PROVIDERS)
        raise ValidationError(UNKNOWN_PROVIDER.format(choices=choices), code="invalid_choice")

    def clean(self) -> dict:
        cleaned = super().clean()
        provider, api_key = cleaned.get("provider"), cleaned.get("api_key")
        if provider and api_key:
            pattern, message = KEY_PATTERNS[Provider(provider)]
            if not pattern.match(api_key):
                self.add_error("api_key", ValidationError(message, code="malformed"))
        return cleaned


class OAuthCallbackForm(forms.Form):
    """The query of a provider's redirect back to us; nothing is looked up or sent for input that fails it."""

    state = forms.CharField(max_length=2048, required=False, validators=[prohibit_surrogates])
    code = forms.CharField(max_length=2048, required=False, validators=[prohibit_surrogates])
    error = forms.CharField(max_length=256, required=False, validators=[prohibit_surrogates])


class ShopifyAddForm(forms.Form):
    """ "Add a Shopify store": the shop's myshopify domain (or its handle alone)."""

    shop = forms.CharField(max_length=255, validators=[prohibit_surrogates])

    def clean_shop(self) -> str:
        from connectors.shopify import ShopifyFailed, shop_domain_clean

        try:
            return shop_domain_clean(self.cleaned_data["shop"])
        except ShopifyFailed as exc:
            raise ValidationError(exc.message, code="invalid_shop") from None
