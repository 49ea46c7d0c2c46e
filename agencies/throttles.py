"""The throttle of agency-token requests: per token and per agency (all its tokens together), one DRF throttle.

Fixed windows (aligned to the epoch) counted in Redis, the server behind the project's cache (REDIS_URL), so
every web process counts into the same window: one pipelined INCR + EXPIRE per key, both keys in one round
trip. DRF's own SimpleRateThrottle keeps the timestamp of every request in the window and rewrites that list
on each request (600 floats pickled, get then set, two round trips per throttle and racy between processes):
it cost a token request more than everything else it does. A fixed window lets at most twice the rate
through across a window's edge, which these limits (abuse guards, not billing) can bear.

Without REDIS_URL (local development and tests) the counts are in Django's default cache (add, then incr).
If Redis cannot be reached the request goes through, logged: an API that fails because its rate limiter did
would be worse than a minute without one.

Requests not made with an agency token are not counted here. Past a rate DRF answers 429 with Retry-After
(seconds to the end of the window). Rates are read from settings on each request, so `override_settings` in a
test and a changed environment after a restart both apply.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from agencies.models import AgencyToken

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def rate_parse(rate: str) -> tuple[int, int]:
    """DRF's rate notation to (requests, seconds): `600/minute` is (600, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0]]


def _redis(url: str):
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            import redis

            client = _clients[url] = redis.Redis.from_url(url, socket_timeout=0.1, socket_connect_timeout=0.1)
        return client


def _counts(keys: list[tuple[str, int]]) -> list[int] | None:
    """Add one to each (key, window seconds) and return the new counts; None when they could not be counted."""
    if settings.REDIS_URL:
        try:
            pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
            for key, seconds in keys:
                pipe.incr(key)
                pipe.expire(key, seconds + 1)
            return pipe.execute()[::2]
        except Exception as exc:  # any Redis failure: let the request through, say so
            logger.warning("agency token throttle not checked: %s", type(exc).__name__)
            return None
    counts = []
    for key, seconds in keys:
        if cache.add(key, 1, seconds + 1):
            counts.append(1)
        else:
            try:
                counts.append(cache.incr(key))
            except ValueError:  # expired between add and incr: this request opens the window
                cache.set(key, 1, seconds + 1)
                counts.append(1)
    return counts


class AgencyTokenThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, AgencyToken):
            return True
        now = time.time()
        limits = []
        for name, ident, rate in (
            ("token", token.pk, settings.AGENCY_TOKEN_RATE),
            ("agency", token.agency_id, settings.AGENCY_TOKEN_AGENCY_RATE),
        ):
            allowed, seconds = rate_parse(rate)
            window = int(now // seconds)
            key = f"{settings.AGENCY_TOKEN_THROTTLE_PREFIX}{name}:{ident}:{seconds}:{window}"
            limits.append((key, seconds, allowed))
        counts = _counts([(key, seconds) for key, seconds, _ in limits])
        if counts is None:
            return True
        waits = [
            math.ceil((now // seconds + 1) * seconds - now)
            for (_, seconds, allowed), count in zip(limits, counts, strict=True)
            if count > allowed
        ]
        if waits:
            self._wait = max(1, *waits)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


TOKEN_THROTTLES = [AgencyTokenThrottle]
