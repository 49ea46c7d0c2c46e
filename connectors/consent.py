"""Where a connect button sends the browser: the providers' consent-page origins, from settings.

A page that carries a connect form lets its form submissions (and their redirects) reach exactly these
origins and no other (`form-action`, dashboards.middleware); see docs/csp.md for why.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from connectors.choices import Provider

# The setting holding each OAuth provider's consent page (the authorize URL the connect form redirects to).
# A provider added later (Shopify: a per-shop URL) adds its entry or its own origins here.
CONSENT_URL_SETTINGS = {
    Provider.META: "META_DIALOG_URL",
    Provider.GOOGLE_ADS: "GOOGLE_OAUTH_AUTHORIZE_URL",
}


def consent_origins() -> list[str]:
    """The configured consent pages' origins (`scheme://host[:port]`), each once, in provider order.

    Read per call, not at import: tests and a settings reload point them elsewhere. A setting that is not an
    absolute http(s) URL contributes nothing (the connect would fail anyway; the policy stays 'self').
    """
    origins: list[str] = []
    for name in CONSENT_URL_SETTINGS.values():
        parts = urlsplit(getattr(settings, name, "") or "")
        if parts.scheme not in ("https", "http") or not parts.netloc or "@" in parts.netloc:
            continue
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if origin not in origins:
            origins.append(origin)
    return origins
