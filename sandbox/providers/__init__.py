"""One module per provider; each exposes ``ROUTES``, a tuple of named routes.

Adding a provider: write ``sandbox/providers/<name>.py`` with its routes (named ``<name>.<thing>.<verb>``),
give it a store in ``SandboxState`` if it keeps data, and list it below.
"""

from __future__ import annotations

from sandbox import smtp
from sandbox.providers import airbyte, attentive, clerk, clerk_webhooks, google, klaviyo, meta, shopify
from sandbox.routing import Route

PROVIDERS = (clerk, meta, google, klaviyo, attentive, shopify, airbyte, clerk_webhooks, smtp)


def provider_routes() -> tuple[Route, ...]:
    return tuple(route for module in PROVIDERS for route in module.ROUTES)
