from django.db import models


class Provider(models.TextChoices):
    # The order is the Connectors checklist's (selectors.source_checklist): the store itself first.
    SHOPIFY = "shopify", "Shopify"  # installed from Shopify or "Add a Shopify store" (connectors/shopify.py)
    META = "meta", "Meta Ads"
    GOOGLE_ADS = "google_ads", "Google Ads"
    KLAVIYO = "klaviyo", "Klaviyo"
    ATTENTIVE = "attentive", "Attentive"


class AuthKind(models.TextChoices):
    OAUTH = "oauth", "OAuth"
    API_KEY = "api_key", "API key"


class CredentialStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    NEEDS_REAUTH = "needs_reauth", "Needs reconnecting"  # terminal until the merchant reconnects
    REVOKED = "revoked", "Revoked"  # by us (disconnect, staff action); terminal
    ERROR = "error", "Error"  # repeated transient refresh failures; the token is used while it lasts


OAUTH_PROVIDERS = (Provider.META, Provider.GOOGLE_ADS)
API_KEY_PROVIDERS = (Provider.KLAVIYO, Provider.ATTENTIVE)
# A credential in one of these may still be used for provider calls.
USABLE_STATUSES = (CredentialStatus.ACTIVE, CredentialStatus.ERROR)


class SourceState(models.TextChoices):
    """What the Connectors page says about a source as a whole (its worst live connection)."""

    CONNECTED = "connected", "Connected"
    NEEDS_REAUTH = "needs_reauth", "Needs reconnecting"
    ERROR = "error", "Error"
    NOT_CONNECTED = "not_connected", "Not connected"
