"""Throttles of agency-token requests: per token and per agency (all its tokens together).

DRF's SimpleRateThrottle on Django's default cache (Redis in production, so every web process counts into
the same window). Requests not made with an agency token are not counted here: Clerk sessions have throttles
of their own where a view needs one. Past a rate, DRF answers 429 with Retry-After (seconds until the oldest
request in the window falls out of it).

The rates are read from settings on each request (not frozen into the class when DRF's settings load), so
`override_settings` in a test and a changed environment after a restart both apply.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from agencies.models import AgencyToken


class AgencyTokenRateThrottle(SimpleRateThrottle):
    scope = "agency_token"
    rate_setting = "AGENCY_TOKEN_RATE"

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def ident(self, token: AgencyToken) -> str:
        return str(token.pk)

    def get_cache_key(self, request, view) -> str | None:
        token = request.auth
        if not isinstance(token, AgencyToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.ident(token)}


class AgencyRateThrottle(AgencyTokenRateThrottle):
    """One agency's tokens together: minting more tokens does not buy more requests."""

    scope = "agency_token_agency"
    rate_setting = "AGENCY_TOKEN_AGENCY_RATE"

    def ident(self, token: AgencyToken) -> str:
        return str(token.agency_id)


TOKEN_THROTTLES = [AgencyTokenRateThrottle, AgencyRateThrottle]
